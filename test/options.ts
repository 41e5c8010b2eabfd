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
	t.throws(() => resolveMultiDbOptions({shufle: true}), {instanceOf: TypeError, message: /^Unknown option `shufle` in `options`; known options are `shuffle`/});
});
