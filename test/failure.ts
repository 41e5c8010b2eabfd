import test from 'ava';
import {classifyFailure} from '../source/failure.js';
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
