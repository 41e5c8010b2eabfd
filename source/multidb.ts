// `multidb()`: validates, installs the router onto one Sequelize instance, and returns its
// handle. Installing means three things, all per instance:
// - our `ReplicaPool` takes the place of Sequelize's read pool (per-query replica choice);
// - a `beforePoolAcquire` hook decides, per connection request, primary or replicas;
// - `sequelize.query` runs each query in a routing scope, so the decision can be counted
//   (`afterQuery`) and, for locking reads written as raw SQL, steered.
import createDebug from 'debug';
import {QueryTypes, type QueryOptions, type Sequelize} from 'sequelize';
import {currentScope, marksOf, runInScope, type QueryAttempt, type RoutingScope} from './context.js';
import {MultiDbError, warningCodes, warningType} from './errors.js';
import {resolveMultiDbOptions, type MultiDbOptions, type ResolvedMultiDbOptions} from './options.js';
import {isLockingRead, isWriteQuery} from './query-kind.js';
import {type Replica, ReplicaPool} from './replica-pool.js';
import {connectionManagerOf, hasReplicationPools, type ConnectionConfig, type QueryInternals} from './sequelize-internals.js';
import {StatsRecorder, type RouteReason, type RouteStats} from './stats.js';
import {describe, routerBrand} from './validate.js';

const log = createDebug('sequelize-multidb:router');

/** Marks an instance as taken, across the ESM and CommonJS builds of this package. */
const installedKey = Symbol.for('sequelize-multidb.installed');


/** Reasons whose reads must not use a replica: they set Sequelize's `useMaster`. */
const primaryReadReasons = new Set<RouteReason>(['use-master', 'locking-read', 'no-replicas', 'pinned']);

/** Where a replica is, without its password. */
export interface ReplicaInfo {
	readonly name: string;
	readonly host: string;
	readonly port: number;
	readonly database: string | undefined;
	readonly username: string | undefined;
}

export type ReplicaQueryOptions = Omit<QueryOptions, 'type' | 'transaction' | 'plain' | 'useMaster'>;

/** One replica, from `getReplica()`: where it is, and a way to run SQL on exactly it. */
export interface ReplicaHandle extends ReplicaInfo {
	/** Runs a read on this replica (never another, never the primary) and resolves its rows. */
	query<Row extends object = Record<string, unknown>>(sql: string, options?: ReplicaQueryOptions): Promise<Row[]>;
}

/** Sequelize's `getConnection` options, with the fields Sequelize passes but does not type. */
interface AcquireOptions {
	type?: string;
	useMaster?: boolean;
	uuid?: string;
	lock?: unknown;
}

type QueryFunction = (sql: unknown, options?: unknown) => Promise<unknown>;

export class MultiDb {
	readonly [routerBrand] = true;
	readonly sequelize: Sequelize;
	readonly options: ResolvedMultiDbOptions;
	readonly #replicaPool: ReplicaPool | undefined;
	readonly #stats: StatsRecorder;
	readonly #originalQuery: QueryFunction;
	#closed = false;

	/** @internal Use `multidb(sequelize, options)`. */
	constructor(sequelize: Sequelize, options: ResolvedMultiDbOptions) {
		this.sequelize = sequelize;
		this.options = options;
		const manager = connectionManagerOf(sequelize);
		const replication = manager.config.replication;
		const configs = replication && hasReplicasConfigured(sequelize) ? replication.read : [];
		if (configs.length > 0 && hasReplicationPools(manager.pool)) {
			this.#replicaPool = new ReplicaPool({manager, configs, shuffle: options.shuffle, router: this, nativePool: manager.pool.read});
			manager.pool.read = this.#replicaPool;
		} else {
			process.emitWarning('sequelize-multidb: no replicas are configured (`replication.read` is missing or empty); every read goes to the primary', {type: warningType, code: warningCodes.noReplicas});
		}

		this.#stats = new StatsRecorder(['primary', ...this.#replicaPool?.replicas.map(replica => replica.name) ?? []]);
		sequelize.addHook('beforePoolAcquire', 'sequelize-multidb', options_ => {
			this.#route(options_);
		});
		sequelize.addHook('afterQuery', 'sequelize-multidb', (options_, query) => {
			this.#afterQuery(options_, query);
		});

		const originalQuery = sequelize.query.bind(sequelize) as QueryFunction;
		this.#originalQuery = originalQuery;
		const routedQuery: QueryFunction = async (sql, queryOptions) => {
			const scope = currentScope();
			const attempt: QueryAttempt = {router: this, lockingRead: isLockingRead(sqlText(sql))};
			return runInScope({primaryOnly: scope?.primaryOnly ?? false, flow: scope?.flow, attempt}, async () => originalQuery(sql, queryOptions));
		};

		Object.defineProperty(sequelize, 'query', {value: routedQuery, writable: true, configurable: true});
		const originalClose = sequelize.close.bind(sequelize);
		const closeBoth = async () => {
			await this.close();
			await originalClose();
		};

		Object.defineProperty(sequelize, 'close', {value: closeBoth, writable: true, configurable: true});
		log('installed with %d replica(s): %o', this.#replicaPool?.replicas.length ?? 0, this.#replicaPool?.replicas.map(replica => replica.name));
	}

	/** The replicas, in round-robin order. */
	get replicas(): readonly ReplicaInfo[] {
		return this.#replicaPool?.replicas.map(replica => infoOf(replica)) ?? [];
	}

	/** The next replica in round-robin order (the seed's `get_replica`). */
	getReplica(): ReplicaHandle {
		if (this.#closed) {
			throw new MultiDbError('MULTIDB_CLOSED', 'This router is closed');
		}

		if (!this.#replicaPool) {
			throw new MultiDbError('MULTIDB_NO_REPLICAS', 'No replicas are configured (`replication.read` is missing or empty)');
		}

		const replica = this.#replicaPool.next();
		return {
			...infoOf(replica),
			query: async <Row extends object>(sql: string, queryOptions?: ReplicaQueryOptions) => this.#queryOn(replica, sql, queryOptions) as Promise<Row[]>,
		};
	}

	/** Counts of queries per target and per reason since install. */
	stats(): RouteStats {
		return this.#stats.snapshot();
	}

	/** Stops background work. `sequelize.close()` calls it too, and also closes the pools. */
	async close(): Promise<void> {
		this.#closed = true;
		return Promise.resolve();
	}

	/**
	 * Whether reads of this database go to the primary in the given scope: `usePrimaryDb`,
	 * `pin()`, a pinned request, or a flow that already wrote through this database (its
	 * later reads must see that write).
	 */
	#readsPinned(scope: RoutingScope | undefined): boolean {
		if (!scope) {
			return false;
		}

		const marks = scope.flow?.databases.get(this);
		return scope.primaryOnly || scope.flow?.pinned === true || marks?.pinned === true || marks?.wrote === true;
	}

	/** The `beforePoolAcquire` hook: decides where a connection request goes. */
	#route(options: AcquireOptions): void {
		const scope = currentScope();
		const attempt = scope?.attempt?.router === this ? scope.attempt : undefined;
		const reason = this.#reasonFor(options, scope, attempt);
		if (primaryReadReasons.has(reason)) {
			options.useMaster = true;
		}

		if (attempt) {
			attempt.reason = reason;
		}
	}

	#reasonFor(options: AcquireOptions, scope: RoutingScope | undefined, attempt: QueryAttempt | undefined): RouteReason {
		// `uuid` marks the connection request of a transaction (Transaction#prepareEnvironment);
		// only a `readOnly` one asks for a SELECT connection.
		if (options.type !== QueryTypes.SELECT) {
			return options.uuid === undefined ? 'write' : 'transaction';
		}

		if (attempt?.forcedReplica) {
			return 'chosen-replica';
		}

		if (options.useMaster === true) {
			return 'use-master';
		}

		if (options.lock || attempt?.lockingRead) {
			return 'locking-read';
		}

		if (!this.#replicaPool) {
			return 'no-replicas';
		}

		if (this.#readsPinned(scope)) {
			return 'pinned';
		}

		return options.uuid === undefined ? 'round-robin' : 'read-only-transaction';
	}

	/** The `afterQuery` hook: counts where the query ran and why, and marks writes. */
	#afterQuery(options: QueryOptions, query: QueryInternals): void {
		const scope = currentScope();
		const attempt = scope?.attempt?.router === this ? scope.attempt : undefined;
		const replica = this.#replicaPool?.replicaOf(query.connection);
		let reason: RouteReason;
		if (options.transaction) {
			reason = replica ? 'read-only-transaction' : 'transaction';
		} else {
			reason = attempt?.reason ?? (replica ? 'round-robin' : 'write');
		}

		this.#stats.record(replica?.name ?? 'primary', reason);
		if (scope?.flow && !replica && isWriteQuery(options.type, query.sql)) {
			scope.flow.wrote = true;
			marksOf(scope.flow, this).wrote = true;
		}
	}

	async #queryOn(replica: Replica, sql: string, options: ReplicaQueryOptions = {}): Promise<unknown> {
		if (typeof sql !== 'string') {
			throw new TypeError(`Expected \`sql\` to be a string, got ${describe(sql)}`);
		}

		if ('transaction' in options) {
			throw new TypeError('A replica query cannot run in a transaction: the transaction\'s connection decides where it runs');
		}

		const scope = currentScope();
		const attempt: QueryAttempt = {router: this, forcedReplica: replica};
		return runInScope({primaryOnly: false, flow: scope?.flow, attempt}, async () => this.#originalQuery(sql, {...options, type: QueryTypes.SELECT}));
	}
}

/**
 * Installs read/write routing onto one Sequelize instance and returns its handle. Reads go
 * to the replicas of `replication.read`, round-robin per query; everything else goes to
 * the primary (`replication.write`).
 */
export function multidb(sequelize: Sequelize, options?: MultiDbOptions): MultiDb {
	checkSequelize(sequelize);
	const resolved = resolveMultiDbOptions(options);
	const marked = sequelize as unknown as Record<symbol, unknown>;
	if (marked[installedKey]) {
		throw new TypeError('Expected `sequelize` to be an instance without a router, got one that `multidb()` was already installed on; call `multidb()` once per Sequelize instance and share its handle');
	}

	const router = new MultiDb(sequelize, resolved);
	Object.defineProperty(sequelize, installedKey, {value: router});
	return router;
}

function checkSequelize(sequelize: unknown): asserts sequelize is Sequelize {
	if (typeof sequelize !== 'object' || sequelize === null) {
		throw new TypeError(`Expected \`sequelize\` to be a Sequelize instance, got ${describe(sequelize)}`);
	}

	const candidate = sequelize as Partial<Sequelize>;
	if (typeof candidate.getDialect !== 'function' || typeof candidate.addHook !== 'function') {
		throw new TypeError(`Expected \`sequelize\` to be a Sequelize instance, got ${describe(sequelize)}`);
	}

	const dialect = candidate.getDialect();
	if (dialect !== 'postgres') {
		throw new TypeError(`Expected \`sequelize\` to use the \`postgres\` dialect, got ${describe(dialect)}`);
	}

	const {version} = candidate.constructor as {version?: unknown};
	const [major, minor] = typeof version === 'string' ? version.split('.').map(Number) : [];
	if (major !== 6 || minor < 31) {
		throw new TypeError(`Expected Sequelize >= 6.31 and < 7 (for the \`beforePoolAcquire\` hook), got ${describe(version)}`);
	}
}

/**
 * Whether the user listed replicas. Sequelize fills a missing `replication.read` with the
 * top-level connection options, which would make the primary look like a replica.
 */
function hasReplicasConfigured(sequelize: Sequelize): boolean {
	const {replication} = (sequelize as unknown as {options: {replication?: false | {read?: unknown}}}).options;
	const given = replication ? replication.read : undefined;
	return Array.isArray(given) ? given.length > 0 : given !== undefined && given !== null;
}

function infoOf(replica: Replica): ReplicaInfo {
	return {name: replica.name, host: replica.host, port: replica.port, database: replica.database, username: replica.username};
}

function sqlText(sql: unknown): string | undefined {
	if (typeof sql === 'string') {
		return sql;
	}

	const query = (sql as {query?: unknown} | null | undefined)?.query;
	return typeof query === 'string' ? query : undefined;
}

export type {ConnectionConfig};
