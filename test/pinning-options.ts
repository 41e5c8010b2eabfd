import test from 'ava';
import {pinningDefaults, resolvePinningOptions} from '../source/pinning-options.js';

test('pinning options default to the seed\'s behaviour', t => {
	t.deepEqual(resolvePinningOptions(undefined), pinningDefaults);
	t.is(pinningDefaults.cookie, 'multidb_pin_writes');
	t.is(pinningDefaults.seconds, 15);
	t.deepEqual(pinningDefaults.readMethods, ['GET', 'HEAD', 'OPTIONS', 'TRACE']);
});

test('pinning options are validated once, with the option named', t => {
	const cases: Array<[Record<string, unknown>, string]> = [
		[{seconds: -1}, 'Expected `seconds` to be a finite number > 0, got -1 (number)'],
		[{seconds: 0}, 'Expected `seconds` to be a finite number > 0, got 0 (number)'],
		[{seconds: Number.POSITIVE_INFINITY}, 'Expected `seconds` to be a finite number > 0, got Infinity (number)'],
		[{seconds: '15'}, 'Expected `seconds` to be a finite number > 0, got "15" (string)'],
		[{cookie: ''}, 'Expected `cookie` to be a non-empty string, got "" (string)'],
		[{cookie: 'a b'}, 'Expected `cookie` to be a cookie name (letters, digits and !#$%&\'*+-.^_`|~), got "a b" (string)'],
		[{path: 'app'}, 'Expected `path` to be a path starting with /, got "app" (string)'],
		[{httpOnly: 'yes'}, 'Expected `httpOnly` to be a boolean, got "yes" (string)'],
		[{sameSite: 'Lax'}, 'Expected `sameSite` to be one of \'lax\', \'strict\', \'none\', got "Lax" (string)'],
		[{secure: 1}, 'Expected `secure` to be a boolean, got 1 (number)'],
		[{readMethods: 'GET'}, 'Expected `readMethods` to be an array of HTTP method names, got "GET" (string)'],
		[{pinWriteMethods: null}, 'Expected `pinWriteMethods` to be a boolean, got null'],
		[{db: {}}, 'Expected `db` to be the handle returned by multidb(), got an object'],
	];
	for (const [options, message] of cases) {
		t.throws(() => resolvePinningOptions(options), {instanceOf: TypeError, message}, JSON.stringify(options));
	}

	t.throws(() => resolvePinningOptions({cookies: 'x'}), {instanceOf: TypeError, message: /^Unknown option `cookies`/});
});

test('pinning read methods are matched case-insensitively', t => {
	t.deepEqual(resolvePinningOptions({readMethods: ['get', 'Report']}).readMethods, ['GET', 'REPORT']);
});
