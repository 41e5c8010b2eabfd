import test from 'ava';
import {formatLsn, parseLsn} from '../source/lsn.js';

test('WAL positions parse to 64-bit integers that compare and subtract', t => {
	t.is(parseLsn('0/0'), 0n);
	t.is(parseLsn('16/B374D848'), (0x16n << 32n) | 0xB374D848n);
	t.true((parseLsn('1/0') ?? 0n) > (parseLsn('0/FFFFFFFF') ?? 0n));
	t.is((parseLsn('0/3000100') ?? 0n) - (parseLsn('0/3000000') ?? 0n), 256n);
});

test('WAL positions print as PostgreSQL prints them', t => {
	t.is(formatLsn((0x16n << 32n) | 0xB374D848n), '16/B374D848');
	t.is(formatLsn(0n), '0/0');
});

test('anything else is not a WAL position', t => {
	for (const text of [null, undefined, '', '16', '16/', '/1', 'G/1', '123456789/1', ' 0/0', 16]) {
		t.is(parseLsn(text), undefined, String(text));
	}
});
