import test from 'ava';
import {isLockingRead, isWriteQuery} from '../source/query-kind.js';

test('typed data changes are writes', t => {
	for (const type of ['INSERT', 'UPDATE', 'BULKUPDATE', 'BULKDELETE', 'DELETE', 'UPSERT']) {
		t.true(isWriteQuery(type, 'whatever'), type);
	}
});

test('typed reads and catalog lookups are not writes', t => {
	for (const type of ['SELECT', 'SHOWTABLES', 'DESCRIBE', 'VERSION', 'SHOWINDEXES', 'FOREIGNKEYS', 'SHOWCONSTRAINTS']) {
		t.false(isWriteQuery(type, 'whatever'), type);
	}
});

test('raw statements are writes unless they start with a reading or session keyword', t => {
	for (const sql of ['CREATE TABLE x (y int)', 'WITH moved AS (DELETE FROM a RETURNING *) SELECT * FROM moved', 'DO $$ BEGIN END $$', 'CALL archive()', 'EXPLAIN ANALYZE DELETE FROM x', 'TRUNCATE x', 'VACUUM x']) {
		t.true(isWriteQuery('RAW', sql), sql);
		t.true(isWriteQuery(undefined, sql), sql);
	}

	for (const sql of ['SELECT 1', '  select now()', 'SHOW server_version', 'SET search_path TO x', 'START TRANSACTION;', 'BEGIN', 'COMMIT;', 'ROLLBACK TO SAVEPOINT a', 'SAVEPOINT a', 'EXPLAIN SELECT 1']) {
		t.false(isWriteQuery('RAW', sql), sql);
	}
});

test('a raw query whose SQL is unknown counts as a write', t => {
	t.true(isWriteQuery('RAW', undefined));
});

test('row-locking clauses are recognised in every spelling', t => {
	for (const sql of ['SELECT * FROM x FOR UPDATE', 'select * from x for no key update', 'SELECT * FROM x FOR SHARE NOWAIT', 'SELECT * FROM x FOR KEY SHARE SKIP LOCKED', 'SELECT * FROM x\nFOR\tUPDATE OF x']) {
		t.true(isLockingRead(sql), sql);
	}

	for (const sql of ['SELECT * FROM x', 'SELECT "for" FROM updates', 'SELECT formula FROM shares', undefined, 42]) {
		t.false(isLockingRead(sql), String(sql));
	}
});
