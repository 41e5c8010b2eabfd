import test from 'ava';
import {multidbDefaults, resolveMultiDbOptions} from '../source/options.js';

test('defaults are used where an option is absent or undefined', t => {
	t.deepEqual(resolveMultiDbOptions(undefined), multidbDefaults);
	t.deepEqual(resolveMultiDbOptions({shuffle: undefined}), multidbDefaults);
	t.deepEqual(resolveMultiDbOptions({shuffle: false}), {...multidbDefaults, shuffle: false});
});

test('resolved options are frozen and the caller\'s object is left alone', t => {
	const given = {shuffle: false};
	const resolved = resolveMultiDbOptions(given);
	t.true(Object.isFrozen(resolved));
	t.not(resolved, given);
	t.deepEqual(given, {shuffle: false});
});

test('a wrong type names the option, what was expected and what was received', t => {
	t.throws(() => resolveMultiDbOptions({shuffle: 'yes'}), {instanceOf: TypeError, message: 'Expected `shuffle` to be a boolean, got "yes" (string)'});
	t.throws(() => resolveMultiDbOptions({shuffle: 1}), {instanceOf: TypeError, message: 'Expected `shuffle` to be a boolean, got 1 (number)'});
});

test('options that are not an object are refused', t => {
	t.throws(() => resolveMultiDbOptions('fast'), {instanceOf: TypeError, message: 'Expected `options` to be an object, got "fast" (string)'});
	t.throws(() => resolveMultiDbOptions([]), {instanceOf: TypeError, message: 'Expected `options` to be an object, got an array'});
	t.throws(() => resolveMultiDbOptions(null), {instanceOf: TypeError, message: 'Expected `options` to be an object, got null'});
});

test('an unknown option is refused by name, so a typo does not pass silently', t => {
	t.throws(() => resolveMultiDbOptions({shufle: true}), {instanceOf: TypeError, message: /^Unknown option `shufle` in `options`; known options are `shuffle`, `cooldownMs`/});
});

test('failover options are validated with the option named', t => {
	const cases: Array<[Record<string, unknown>, string]> = [
		[{cooldownMs: -5}, 'Expected `cooldownMs` to be a finite number >= 0, got -5 (number)'],
		[{fallbackToPrimary: 'no'}, 'Expected `fallbackToPrimary` to be a boolean, got "no" (string)'],
		[{followPrimary: 1}, 'Expected `followPrimary` to be a boolean, got 1 (number)'],
		[{affinity: 'yes'}, 'Expected `affinity` to be a boolean, got "yes" (string)'],
		[{balance: 'fastest'}, 'Expected `balance` to be one of \'round-robin\', \'least-outstanding\', got "fastest" (string)'],
		[{weights: {'db:5432': 0}}, 'Expected `weights.db:5432` to be a finite number > 0, got 0 (number)'],
		[{weights: [2, 1]}, 'Expected `weights` to be an object keyed by replica or group name, got an array'],
		[{groups: {api: []}}, 'Expected `groups.api` to be a non-empty array of replica names, got an array'],
		[{groups: {api: 'db:5432'}}, 'Expected `groups.api` to be a non-empty array of replica names, got "db:5432" (string)'],
		[{maxLagMs: Number.NaN}, 'Expected `maxLagMs` to be a finite number >= 0, got NaN (number)'],
		[{maxLagBytes: '16MB'}, 'Expected `maxLagBytes` to be a finite number >= 0, got "16MB" (string)'],
		[{monitorIntervalMs: -1}, 'Expected `monitorIntervalMs` to be a finite number >= 0, got -1 (number)'],
		[{connectTimeoutMs: 0}, 'Expected `connectTimeoutMs` to be a finite number > 0, got 0 (number)'],
		[{readTimeoutMs: null}, 'Expected `readTimeoutMs` to be a finite number >= 0, got null'],
	];
	for (const [options, message] of cases) {
		t.throws(() => resolveMultiDbOptions(options), {instanceOf: TypeError, message}, JSON.stringify(options));
	}

	t.is(resolveMultiDbOptions({maxLagMs: Number.POSITIVE_INFINITY}).maxLagMs, Number.POSITIVE_INFINITY);
	t.is(resolveMultiDbOptions({readTimeoutMs: 0}).readTimeoutMs, 0);
});

test('multidb defaults are the documented ones', t => {
	t.deepEqual(multidbDefaults, {
		shuffle: true,
		cooldownMs: 30_000,
		fallbackToPrimary: true,
		maxLagMs: 30_000,
		maxLagBytes: 16 * 1024 * 1024,
		monitorIntervalMs: 1000,
		connectTimeoutMs: 5000,
		readTimeoutMs: 10_000,
		keys: [],
		followPrimary: true,
		affinity: false,
		balance: 'round-robin',
		weights: {},
		groups: {},
	});
});
