import test from 'ava';
import {classifyFailure, ReplicaHealth} from '../source/health.js';
import {ReplicaTimeoutError} from '../source/errors.js';

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), {code});
/** Sequelize wraps the driver's error in `parent`/`original`. */
const wrapped = (inner: Error) => Object.assign(new Error(inner.message), {name: 'SequelizeDatabaseError', parent: inner, original: inner});

test('connection failures are recognised however node-postgres and Sequelize report them', t => {
	const failures = [
		withCode('ECONNREFUSED'),
		withCode('ECONNRESET'),
		withCode('57P01', 'terminating connection due to administrator command'),
		withCode('57P02'),
		withCode('57P03', 'the database system is starting up'),
		withCode('08006'),
		new Error('Connection terminated unexpectedly'),
		new Error('Connection terminated due to connection timeout'),
		wrapped(new Error('Connection terminated unexpectedly')),
		wrapped(withCode('57P01')),
		Object.assign(new Error('connect ECONNREFUSED'), {name: 'SequelizeConnectionRefusedError'}),
		Object.assign(new Error('x'), {name: 'SequelizeConnectionError'}),
	];
	for (const error of failures) {
		t.is(classifyFailure(error), 'connection', `${error.name}: ${error.message}`);
	}
});

test('recovery conflicts and writes on a replica have kinds of their own', t => {
	t.is(classifyFailure(wrapped(withCode('40001', 'canceling statement due to conflict with recovery'))), 'conflict');
	t.is(classifyFailure(wrapped(withCode('25006', 'cannot execute INSERT in a read-only transaction'))), 'read-only');
});

test('a replica time-out is a kind of its own', t => {
	t.is(classifyFailure(new ReplicaTimeoutError('monitor probe timed out after 10 ms')), 'timeout');
});

test('the caller\'s own errors are not the router\'s to handle', t => {
	for (const error of [wrapped(withCode('42P01', 'relation "x" does not exist')), withCode('23505'), new Error('boom'), 'a string', undefined]) {
		t.is(classifyFailure(error), undefined, String(error));
	}
});

test('quarantine lasts the cooldown, doubles per failed retry, and is capped at 8x', t => {
	const health = new ReplicaHealth(1000);
	let now = 1_000_000;
	t.deepEqual(health.failed(new Error('a'), now), {wentDown: true});
	t.is(health.quarantinedUntil, now + 1000);
	t.false(health.isUsable(now + 999));
	t.true(health.isUsable(now + 1000));
	const expected = [2000, 4000, 8000, 8000, 8000];
	for (const cooldown of expected) {
		now = health.quarantinedUntil;
		// A failure after the cooldown is a failed retry: the replica is still down, no new event.
		t.deepEqual(health.failed(new Error('again'), now), {wentDown: false});
		t.is(health.quarantinedUntil - now, cooldown);
	}

	t.is(health.lastError, 'again');
});

test('the failures of every read in flight on a dying replica are one incident', t => {
	const health = new ReplicaHealth(1000);
	t.deepEqual(health.failed(new Error('first'), 0), {wentDown: true});
	for (let index = 0; index < 5; index++) {
		t.deepEqual(health.failed(new Error('in flight'), 3), {});
	}

	t.is(health.failures, 1);
	t.is(health.quarantinedUntil, 1000);
});

test('a success during the cooldown does not cut it short; after it, the replica comes back', t => {
	const health = new ReplicaHealth(1000);
	health.failed(new Error('down'), 0);
	t.deepEqual(health.succeeded(500), {});
	t.true(health.isQuarantined(500));
	t.deepEqual(health.succeeded(1500), {cameBack: true});
	t.is(health.failures, 0);
	t.deepEqual(health.succeeded(1600), {});
});
