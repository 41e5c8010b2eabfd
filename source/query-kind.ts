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

/** The options of a query that decide its type, as the caller passed them. */
export interface QueryFacts {
	readonly type?: string;
	readonly model?: unknown;
	readonly nest?: unknown;
	readonly plain?: unknown;
	readonly transaction?: {readonly connection?: object} | null;
}

/**
 * The type Sequelize gives a query (`Sequelize#query`): the one passed, else SELECT for
 * model, `nest` or `plain` queries, else RAW. `defaults` are Sequelize's `options.query`.
 */
export function queryTypeOf(options: QueryFacts | undefined, defaults: QueryFacts): string {
	const type = options?.type ?? defaults.type;
	if (type !== undefined) {
		return type;
	}

	return options?.model || options?.nest || options?.plain || defaults.model || defaults.nest || defaults.plain ? 'SELECT' : 'RAW';
}

export function isWriteQuery(type: string | undefined, sql: string | undefined): boolean {
	if (type === undefined || type === 'RAW') {
		return sql === undefined || !nonWritingRawStatement.test(sql);
	}

	return writeTypes.has(type);
}

export function isLockingRead(sql: unknown): boolean {
	return typeof sql === 'string' && lockingClause.test(sql);
}
