// What a query is, as far as routing and pinning care: a write, a locking read, or a read.
// Sequelize types most queries (`QueryTypes`); a raw query without a type is `RAW` and is
// judged by its leading keyword.

/** Sequelize query types that change data. */
const writeTypes = new Set(['INSERT', 'UPDATE', 'BULKUPDATE', 'BULKDELETE', 'DELETE', 'UPSERT']);

/**
 * Raw statements that do not write by themselves. Anything else untyped (DDL, a
 * data-modifying CTE starting with WITH, a DO block, a CALL) counts as a write.
 */
const nonWritingRawStatement = /^\s*(?:SELECT|SHOW|SET|RESET|BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE|DECLARE|FETCH|CLOSE|EXPLAIN(?!\s*\(?\s*ANALY[SZ]E))\b/i;

/**
 * Row locks need the primary: a replica rejects them (SQLSTATE 25006), and a lock taken
 * there would not protect anything written on the primary.
 */
const lockingClause = /\bFOR\s+(?:NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b/i;

export function isWriteQuery(type: string | undefined, sql: string | undefined): boolean {
	if (type === undefined || type === 'RAW') {
		return sql === undefined || !nonWritingRawStatement.test(sql);
	}

	return writeTypes.has(type);
}

export function isLockingRead(sql: unknown): boolean {
	return typeof sql === 'string' && lockingClause.test(sql);
}
