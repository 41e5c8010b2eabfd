// `multidb()`: validates, installs the router onto one Sequelize instance, and returns its
// handle. Installing means, all per instance:
// - our `ReplicaPool` takes the place of Sequelize's read pool. Sequelize asks it only for
//   reads, so that is where each read is routed: to the primary (pinned, locking, ...) or
//   to the next usable replica (skipping failed, lagging and not-caught-up ones);
// - `sequelize.query` runs each query in a routing scope, retries a read that failed
//   because of its replica, counts where each query ran, and notes writes. (No Sequelize
//   hooks: each costs a promise and a debug string on every query.)
// - a background monitor measures each replica's lag.
import {EventEmitter} from 'node:events';
import createDebug from 'debug';
import {QueryTypes, type QueryOptions, type Sequelize} from 'sequelize';
import {currentScope, forgetRouter, marksOf, readsPinned, registerRouter, runInScope, type QueryAttempt, type RoutingScope} from './context.js';
import {ReadDeadlines} from './deadline.js';
import {MultiDbError, warningCodes, warningType} from './errors.js';
import {classifyFailure, describeFailure} from './failure.js';
import {decodeToken, encodeToken, formatLsn, parseLsn, type DecodedToken} from './lsn.js';
import {LagMonitor, type LagSample} from './monitor.js';
import {Prober} from './prober.js';
import {resolveMultiDbOptions, type MultiDbOptions, type ResolvedMultiDbOptions} from './options.js';
import {isLockingRead, isWriteQuery, queryTypeOf, type QueryFacts} from './query-kind.js';
import {Replica, ReplicaPool, type ReadRoute} from './replica-pool.js';
import {connectionManagerOf, hasReplicationPools, tolerateUnpooledConnectionFailures, type PooledConnection} from './sequelize-internals.js';
import {routeOwnReads} from './own-reads.js';
import {StatsRecorder, type RouteStats} from './stats.js';
import {checkNumber, describe, isMultiDb, routerBrand} from './validate.js';

const log = createDebug('sequelize-multidb:router');

/** Marks an instance as taken, across the ESM and CommonJS builds of this package. */
const installedKey = Symbol.for('sequelize-multidb.installed');

/** Bound on a monitor probe when `readTimeoutMs` is 0 (off): a probe must never hang. */
const defaultProbeTimeoutMs = 10_000;

/** How long a token from `db.consistencyToken()` is honoured, unless told otherwise. */
const defaultTokenTtlMs = 60_000;

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

type QueryFunction = (sql: unknown, options?: unknown) => Promise<unknown>;

/** What a query's next attempt must avoid, after failed ones. */
interface Retry {
	/** Replicas that failed earlier attempts, and why (by name). */
	readonly excluded?: ReadonlyMap<object, string>;
	/** A write reached a replica: run it on the primary. */
	readonly retryOnPrimary?: boolean;
	/** The primary failed a read that fell back to it. */
	readonly primaryFailed?: boolean;
	readonly attemptNumber: number;
}

/** Shared by every first attempt: nothing to allocate on the hot path. */
const firstAttempt: Retry = Object.freeze({attemptNumber: 1});

/** Events a `MultiDb` emits, for alerts and dashboards. */
export interface MultiDbEvents {
	/** A probe of a replica failed (after one of its connections failed): it left rotation. `until` is its next probe. */
	replicaDown: [event: {replica: string; error: string; until: Date; failures: number}];
	/** Probes of a replica that was out of rotation answered: it is back. */
	replicaUp: [event: {replica: string}];
	/** A replica fell behind both lag thresholds, or was promoted: skipped until it is fine. */
	replicaLagging: [event: {replica: string; lagMs: number | undefined; lagBytes: number | undefined; promoted: boolean}];
	/** A lagging replica caught up and is back in rotation. */
	replicaCaughtUp: [event: {replica: string; lagMs: number | undefined; lagBytes: number | undefined}];
	/** No replica could serve a read; reads go to the primary until one can (once per episode). */
	fallbackToPrimary: [event: {reasons: Readonly<Record<string, string>>}];
}

/** A replica's place and state, as `db.replicas` shows it. */
export interface ReplicaStatus extends ReplicaInfo {
	/**
	 * `healthy`: in rotation; `suspect`: one of its connections failed, a probe is deciding
	 * (skipped meanwhile); `quarantined`: a probe failed, out of rotation until one answers;
	 * `lagging`: behind both thresholds; `promoted`: no longer a standby.
	 */
	readonly state: 'healthy' | 'suspect' | 'quarantined' | 'lagging' | 'promoted';
	/** While quarantined: when it is probed next (the earliest it can rejoin). */
	readonly quarantinedUntil: Date | undefined;
	/** Failed probes in a row (0 when healthy). */
	readonly failures: number;
	/** It went down again soon after rejoining (within `cooldownMs`): probed less often, it needs 3 answered probes in a row to rejoin. */
	readonly flapping: boolean;
	readonly lastError: string | undefined;
	/** Last lag the monitor measured; undefined before its first probe. */
	readonly lagMs: number | undefined;
	readonly lagBytes: number | undefined;
	/** Last replay position the monitor read, as PostgreSQL prints it (`16/B374D848`). */
	readonly replayLsn: string | undefined;
}

export class MultiDb extends EventEmitter<MultiDbEvents> {
	readonly [routerBrand] = true;
	readonly sequelize: Sequelize;
	readonly options: ResolvedMultiDbOptions;
	readonly #replicaPool: ReplicaPool | undefined;
	readonly #monitor: LagMonitor | undefined;
	readonly #prober: Prober | undefined;
	readonly #deadlines: ReadDeadlines | undefined;
	readonly #stats: StatsRecorder;
	readonly #originalQuery: QueryFunction;
	readonly #decodedTokens = new Map<string, DecodedToken>();
	/** Sequelize's `options.query`: defaults merged into every query's options. */
	readonly #queryDefaults: QueryFacts;
	#systemId: Promise<string> | undefined;
	#knownSystemId: string | undefined;
	#closed = false;

	/** @internal Use `multidb(sequelize, options)`. */
	constructor(sequelize: Sequelize, options: ResolvedMultiDbOptions) {
		super();
		this.sequelize = sequelize;
		this.options = options;
		this.#queryDefaults = (sequelize as unknown as {options: {query?: QueryFacts}}).options.query ?? {};
		const manager = connectionManagerOf(sequelize);
		const replication = manager.config.replication;
		const configs = replication && hasReplicasConfigured(sequelize) ? replication.read : [];
		if (hasReplicationPools(manager.pool)) {
			tolerateUnpooledConnectionFailures(manager.pool);
		}

		if (replication && configs.length > 0 && hasReplicationPools(manager.pool)) {
			this.#deadlines = options.readTimeoutMs > 0 ? new ReadDeadlines(options.readTimeoutMs) : undefined;
			const prober = new Prober({
				manager,
				timeoutMs: options.connectTimeoutMs,
				onDown: (replica, error) => {
					const {health} = replica;
					log('%s is down (%s); out of rotation, next probe at %s', replica.name, health.lastError, new Date(health.nextProbeAt).toISOString());
					this.emit('replicaDown', {replica: replica.name, error: health.lastError ?? describeFailure(error), until: new Date(health.nextProbeAt), failures: health.failures});
				},
				onUp: replica => {
					log('%s is back', replica.name);
					this.emit('replicaUp', {replica: replica.name});
				},
			});
			this.#prober = prober;
			this.#replicaPool = new ReplicaPool({
				deadlines: this.#deadlines,
				route: (scope, attempt) => this.#routeRead(scope, attempt),
				manager,
				configs,
				shuffle: options.shuffle,
				cooldownMs: options.cooldownMs,
				connectTimeoutMs: options.connectTimeoutMs,
				fallbackToPrimary: options.fallbackToPrimary,
				router: this,
				nativePool: manager.pool.read,
				primaryPool: manager.pool.write,
				onFailure: (replica, error) => {
					// A read that could not connect to this replica moves on to the next one.
					this.#stats.failover('connection');
					prober.connectionFailed(replica, error);
				},
				onFallback: reasons => {
					this.emit('fallbackToPrimary', {reasons});
				},
			});
			manager.pool.read = this.#replicaPool;
			if (options.monitorIntervalMs > 0) {
				this.#monitor = new LagMonitor({
					manager,
					primaryConfig: replication.write,
					replicas: this.#replicaPool.replicas,
					intervalMs: options.monitorIntervalMs,
					probeTimeoutMs: options.readTimeoutMs > 0 ? options.readTimeoutMs : defaultProbeTimeoutMs,
					onSample: (replica, sample) => {
						this.#lagMeasured(replica, sample);
					},
					onFailure: (replica, error) => {
						prober.connectionFailed(replica, error);
					},
				});
				this.#monitor.start();
			}
		} else {
			if (replication && hasReplicationPools(manager.pool)) {
				// Sequelize built a read pool over no replica (or over its top-level host):
				// reads use the primary's pool instead.
				manager.pool.read = manager.pool.write;
			}

			process.emitWarning('sequelize-multidb: no replicas are configured (`replication.read` is missing or empty); every read goes to the primary', {type: warningType, code: warningCodes.noReplicas});
		}

		this.#stats = new StatsRecorder(['primary', ...this.#replicaPool?.replicas.map(replica => replica.name) ?? []]);
		this.#originalQuery = sequelize.query.bind(sequelize) as QueryFunction;
		const routedQuery: QueryFunction = (sql, queryOptions) => this.#runWithFailover(sql, queryOptions);

		Object.defineProperty(sequelize, 'query', {value: routedQuery, writable: true, configurable: true});
		const originalClose = sequelize.close.bind(sequelize);
		const closeBoth = async () => {
			await this.close();
			await originalClose();
		};

		Object.defineProperty(sequelize, 'close', {value: closeBoth, writable: true, configurable: true});
		// Sequelize's own reads around its writes (`sync`, `reload`, `findOrCreate`, ...).
		routeOwnReads(sequelize);
		registerRouter(this);
		log('installed with %d replica(s): %o', this.#replicaPool?.replicas.length ?? 0, this.#replicaPool?.replicas.map(replica => replica.name));
	}

	/** The replicas in round-robin order, with their health and last measured lag. */
	get replicas(): readonly ReplicaStatus[] {
		return this.#replicaPool?.replicas.map(replica => statusOf(replica)) ?? [];
	}

	/** The next replica in round-robin order (the seed's `get_replica`), usable or not. */
	getReplica(): ReplicaHandle {
		if (this.#closed) {
			throw new MultiDbError('MULTIDB_CLOSED', 'This router is closed');
		}

		if (!this.#replicaPool) {
			throw new MultiDbError('MULTIDB_NO_REPLICAS', 'No replicas are configured (`replication.read` is missing or empty)');
		}

		const replica = this.#replicaPool.nextInTurn();
		return {
			...infoOf(replica),
			query: async <Row extends object>(sql: string, queryOptions?: ReplicaQueryOptions) => this.#queryOn(replica, sql, queryOptions) as Promise<Row[]>,
		};
	}

	/** Counts of queries per target and per reason, and of failovers, since install. */
	stats(): RouteStats {
		return this.#stats.snapshot();
	}

	/**
	 * A token for "what has been written so far": the primary's WAL position, read now (so
	 * call it after your write committed), bound to this cluster, signed with `keys`. Hand it
	 * to `withConsistency(token, fn)` where the work continues (a job, another service).
	 */
	async consistencyToken(options: {ttlMs?: number} = {}): Promise<string> {
		const ttlMs = options.ttlMs ?? defaultTokenTtlMs;
		checkNumber('ttlMs', ttlMs, {min: 0, exclusive: true});
		const {systemId, lsn} = await this.primaryPosition();
		return encodeToken({systemId, lsn, expiresAt: Date.now() + ttlMs}, this.options.keys);
	}

	/** @internal The cluster's identity and the primary's WAL position, read now. */
	async primaryPosition(): Promise<{systemId: string; lsn: bigint}> {
		const [systemId, row] = await Promise.all([
			this.systemIdentifier(),
			this.sequelize.query<{lsn: string}>('SELECT pg_current_wal_lsn()::text AS lsn', {type: QueryTypes.SELECT, plain: true, useMaster: true}),
		]);
		const lsn = parseLsn(row?.lsn);
		if (lsn === undefined) {
			throw new MultiDbError('MULTIDB_BAD_TOKEN', `The primary reported no WAL position (got ${describe(row?.lsn)})`);
		}

		return {systemId, lsn};
	}

	/**
	 * The cluster's identity in consistency tokens: PostgreSQL's system identifier, which a
	 * primary and its physical replicas share (read once, then cached).
	 */
	async systemIdentifier(): Promise<string> {
		this.#systemId ??= this.sequelize.query<{id: string}>('SELECT system_identifier::text AS id FROM pg_control_system()', {type: QueryTypes.SELECT, plain: true, useMaster: true})
			.then(row => {
				const id = String(row?.id);
				this.#knownSystemId = id;
				return id;
			}, (error: unknown) => {
				this.#systemId = undefined;
				throw error;
			});
		return this.#systemId;
	}

	/** @internal Whether every replica is known to have replayed up to `lsn`. */
	everyReplicaHasReplayed(lsn: bigint): boolean {
		return this.#replicaPool?.replicas.every(replica => replica.health.hasReplayed(lsn)) ?? false;
	}

	/** Probes every replica now instead of at the monitor's next tick. */
	async refreshReplicas(): Promise<void> {
		await this.#monitor?.probe();
	}

	/** Stops background work. `sequelize.close()` calls it too, and also closes the pools. */
	async close(): Promise<void> {
		this.#closed = true;
		forgetRouter(this);
		this.#deadlines?.stop();
		this.#prober?.stop();
		await this.#monitor?.stop();
	}

	/**
	 * Runs one query, retrying a read that failed because of its server: on the next usable
	 * replica, then the primary; and a read that fell back to a primary that failed, on the
	 * replicas out of rotation. Only a read outside a transaction is retried (`attempt.replica`
	 * or the `fallback` reason is set only then), and Sequelize hands no row to the caller
	 * before the query completes, so nothing is written or returned twice. Written as a
	 * promise chain rather than async/await: on a fast read, each extra promise is measurable.
	 */
	#runWithFailover(sql: unknown, queryOptions: unknown, scope = currentScope(), retry: Retry = firstAttempt): Promise<unknown> {
		const attempt: QueryAttempt = {router: this, sql: sqlText(sql), excluded: retry.excluded, retryOnPrimary: retry.retryOnPrimary, primaryFailed: retry.primaryFailed};
		const attemptScope = {primaryOnly: scope?.primaryOnly ?? false, flow: scope?.flow, consistency: scope?.consistency, attempt};
		return runInScope(attemptScope, () => this.#originalQuery(sql, queryOptions)).then(result => {
			this.#deadlines?.done(attempt.deadline);
			this.#account(attempt, queryOptions, scope);
			return result;
		}, (error: unknown) => {
			this.#deadlines?.done(attempt.deadline);
			// A failed query counts too: a write may have committed before its connection died.
			this.#account(attempt, queryOptions, scope);
			const again = this.#retryAfter(attempt, error, scope, retry);
			if (!again) {
				throw error;
			}

			return this.#runWithFailover(sql, queryOptions, scope, again);
		});
	}

	/** What the next attempt of a failed query avoids, or undefined where it must not be retried. */
	#retryAfter(attempt: QueryAttempt, error: unknown, scope: RoutingScope | undefined, retry: Retry): Retry | undefined {
		const {replica} = attempt;
		const kind = attempt.timedOut ? 'timeout' : classifyFailure(error);
		const attemptNumber = retry.attemptNumber + 1;
		if (kind === undefined || attemptNumber > (this.#replicaPool?.replicas.length ?? 0) + 2) {
			return undefined;
		}

		if (!(replica instanceof Replica)) {
			// A read that fell back to the primary, which failed: the replicas out of rotation are
			// its last resort (once).
			const fellBack = attempt.reason === 'fallback' && kind === 'connection' && !retry.primaryFailed;
			return fellBack ? {...retry, primaryFailed: true, attemptNumber} : undefined;
		}

		if (kind === 'read-only') {
			if (retry.retryOnPrimary) {
				return undefined;
			}

			// A write reached a replica: it runs once on the primary and pins like a write.
			this.#stats.failover(kind);
			this.#markWrite(scope);
			log('write on %s (25006), retrying on the primary', replica.name);
			return {...retry, retryOnPrimary: true, attemptNumber};
		}

		this.#stats.failover(kind);
		if (kind !== 'conflict') {
			// One connection failed; a probe decides about the server.
			this.#prober?.connectionFailed(replica, error);
		}

		log('read failed on %s (%s), retrying elsewhere', replica.name, kind);
		return {...retry, excluded: new Map(retry.excluded).set(replica, describeFailure(error)), attemptNumber};
	}

	/**
	 * Where a read goes. The replica pool asks, when Sequelize wants a read connection: for a
	 * read (type SELECT, no `useMaster`) outside a transaction (`attempt` set), or for a
	 * `readOnly` transaction (no `attempt`). Everything else never reaches the replica pool.
	 */
	#routeRead(scope: RoutingScope | undefined, attempt: QueryAttempt | undefined): ReadRoute | Promise<ReadRoute> {
		if (scope?.consistency && this.#knownSystemId === undefined) {
			// A token names its cluster: learn ours once before judging tokens. Without it
			// (primary down), the token cannot be honoured by a replica: the primary it is.
			return this.systemIdentifier().then(() => this.#routeRead(scope, attempt), () => ({primary: true, reason: 'pinned'}));
		}

		if (attempt?.retryOnPrimary) {
			return {primary: true, reason: 'misrouted-write'};
		}

		// `lock: true` finders and raw `FOR UPDATE` alike end up in the SQL text.
		if (isLockingRead(attempt?.sql)) {
			return {primary: true, reason: 'locking-read'};
		}

		if (readsPinned(scope, this)) {
			return {primary: true, reason: 'pinned'};
		}

		const required = this.#requiredPosition(scope);
		if (required === 'primary') {
			return {primary: true, reason: 'pinned'};
		}

		if (required !== undefined) {
			// A read-only transaction would need one replica caught up for all its queries:
			// the primary is the simple, safe answer.
			return attempt ? {primary: false, reason: 'caught-up', minLsn: required} : {primary: true, reason: 'pinned'};
		}

		return {primary: false, reason: attempt ? 'round-robin' : 'read-only-transaction'};
	}

	/**
	 * The WAL position this scope's reads must see: from an LSN-mode pin (Koa) and from
	 * `withConsistency` tokens of this cluster that have not expired. `primary` where a
	 * token's signature is wrong: such a read may wait or use the primary, never read older.
	 */
	#requiredPosition(scope: RoutingScope | undefined): bigint | 'primary' | undefined {
		let required = scope?.flow?.databases?.get(this)?.minLsn;
		for (const text of scope?.consistency ?? []) {
			const decoded = this.#decodeToken(text);
			if (!decoded.ok) {
				return 'primary';
			}

			const {token} = decoded;
			if (token.systemId === this.#knownSystemId && token.expiresAt > Date.now() && (required === undefined || token.lsn > required)) {
				required = token.lsn;
			}
		}

		return required;
	}

	#decodeToken(text: string): DecodedToken {
		let decoded = this.#decodedTokens.get(text);
		if (!decoded) {
			decoded = decodeToken(text, this.options.keys);
			// A small cache: a flow carries one or two tokens, decoded again on every read.
			if (this.#decodedTokens.size >= 256) {
				this.#decodedTokens.clear();
			}

			this.#decodedTokens.set(text, decoded);
		}

		return decoded;
	}

	/**
	 * Counts where a finished query ran and why, and marks a write in the flow (so later
	 * reads of the flow, and the Koa pin, see it). Done here rather than in Sequelize hooks:
	 * each hook costs a promise and a debug string on every query.
	 */
	#account(attempt: QueryAttempt, queryOptions: unknown, scope: RoutingScope | undefined): void {
		if (attempt.replica instanceof Replica && attempt.reason) {
			// A routed read (the common case): the replica pool said where and why.
			this.#stats.record(attempt.replica.name, attempt.reason);
			return;
		}

		const options = queryOptions as QueryFacts | undefined;
		const transaction = options?.transaction === undefined ? this.#clsTransaction() : options.transaction;
		const connection = transaction?.connection as PooledConnection | undefined;
		const replica = connection && this.#replicaPool?.replicaOf(connection);
		const type = queryTypeOf(options, this.#queryDefaults);
		let reason = attempt.reason;
		if (!reason) {
			// The query never asked the replica pool: Sequelize sent it to the primary itself.
			if (transaction) {
				reason = replica ? 'read-only-transaction' : 'transaction';
			} else if (type === 'SELECT') {
				reason = this.#replicaPool ? 'use-master' : 'no-replicas';
			} else {
				reason = 'write';
			}
		}

		this.#stats.record(replica?.name ?? 'primary', reason);
		if (!replica && isWriteQuery(type, attempt.sql)) {
			this.#markWrite(scope);
		}
	}

	/** The transaction Sequelize takes from its CLS namespace, where `useCLS` is on. */
	#clsTransaction(): {connection?: PooledConnection} | undefined {
		const cls = (this.sequelize.constructor as {_cls?: {get(key: string): unknown}})._cls;
		return cls?.get('transaction') as {connection?: PooledConnection} | undefined;
	}


	/** A write ran in the flow: its later reads of this database must see it, and the client is pinned. */
	#markWrite(scope: RoutingScope | undefined): void {
		if (scope?.flow) {
			scope.flow.wrote = true;
			const marks = marksOf(scope.flow, this);
			marks.wrote = true;
			marks.pinned = true;
		}
	}

	#lagMeasured(replica: Replica, sample: LagSample): void {
		const {health} = replica;
		const wasOut = health.lagging || health.promoted;
		health.promoted = !sample.inRecovery;
		// Without the primary's position (primary down) the lag is unknown: keep the last verdict.
		if (sample.lagMs !== undefined && sample.lagBytes !== undefined) {
			health.lagMs = sample.lagMs;
			health.lagBytes = sample.lagBytes;
			health.lagging = sample.lagMs > this.options.maxLagMs && Number(sample.lagBytes) > this.options.maxLagBytes;
		}

		const isOut = health.lagging || health.promoted;
		const lag = {lagMs: health.lagMs, lagBytes: health.lagBytes === undefined ? undefined : Number(health.lagBytes)};
		if (isOut && !wasOut) {
			log('%s skipped: %s', replica.name, health.promoted ? 'promoted' : `lag ${lag.lagMs} ms / ${lag.lagBytes} bytes`);
			this.emit('replicaLagging', {replica: replica.name, ...lag, promoted: health.promoted});
		} else if (wasOut && !isOut) {
			log('%s caught up', replica.name);
			this.emit('replicaCaughtUp', {replica: replica.name, ...lag});
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
		const typed = {...options, type: QueryTypes.SELECT};
		try {
			return await runInScope({primaryOnly: false, flow: scope?.flow, attempt}, () => this.#originalQuery(sql, typed));
		} finally {
			this.#deadlines?.done(attempt.deadline);
			this.#account(attempt, typed, scope);
		}
	}
}

/** What `multidb(options)` returns: a Sequelize `afterInit` hook that installs a router. */
export type MultiDbHook = (sequelize: Sequelize) => void;

/**
 * Installs read/write routing onto one Sequelize instance and returns its handle. Reads go
 * to the replicas of `replication.read`, round-robin per query; everything else goes to
 * the primary (`replication.write`).
 *
 * Called without an instance, it validates `options` now and returns an `afterInit` hook:
 * `Sequelize.addHook('afterInit', multidb(options))` gives every instance created after it
 * a router of its own, found with `multidb.of(sequelize)`.
 */
export function multidb(sequelize: Sequelize, options?: MultiDbOptions): MultiDb;
export function multidb(options?: MultiDbOptions): MultiDbHook;
export function multidb(...arguments_: unknown[]): MultiDb | MultiDbHook {
	const [first] = arguments_;
	if (arguments_.length === 0 || (arguments_.length === 1 && !looksLikeSequelize(first) && typeof first === 'object' && first !== null)) {
		return installHook(resolveMultiDbOptions(first));
	}

	return install(first, resolveMultiDbOptions(arguments_[1]));
}

/** The router installed on `sequelize`, by `multidb(sequelize)` or by the `afterInit` hook. */
multidb.of = function of(sequelize: Sequelize): MultiDb {
	const given: unknown = sequelize;
	// By brand, not `instanceof`: the router may come from the other build (ESM or CommonJS).
	const router = typeof given === 'object' && given !== null ? (given as Record<symbol, unknown>)[installedKey] : undefined;
	if (!isMultiDb(router)) {
		throw new TypeError(`Expected \`sequelize\` to be an instance with a router, got ${looksLikeSequelize(sequelize) ? 'one without' : describe(sequelize)}; call \`multidb(sequelize)\`, or add \`Sequelize.addHook('afterInit', multidb())\` before creating it`);
	}

	// eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment -- the same class, maybe from the other build
	return router as MultiDb;
};

function install(sequelize: unknown, options: ResolvedMultiDbOptions): MultiDb {
	checkSequelize(sequelize);
	const marked = sequelize as unknown as Record<symbol, unknown>;
	if (marked[installedKey]) {
		throw new TypeError('Expected `sequelize` to be an instance without a router, got one that `multidb()` was already installed on; call `multidb()` once per Sequelize instance (with the afterInit hook, get its router with `multidb.of(sequelize)`)');
	}

	const router = new MultiDb(sequelize, options);
	Object.defineProperty(sequelize, installedKey, {value: router});
	return router;
}

function installHook(options: ResolvedMultiDbOptions): MultiDbHook {
	return function installMultiDb(sequelize: Sequelize): void {
		// Sequelize runs `afterInit` hooks in an async loop that nobody awaits: a throw here
		// would be an unhandled rejection, ending the process. An instance the router cannot
		// serve (another dialect) is left as it is, with a warning.
		try {
			install(sequelize, options);
		} catch (error) {
			process.emitWarning(`sequelize-multidb: no router installed on a new Sequelize instance: ${(error as Error).message}`, {type: warningType, code: warningCodes.notInstalled});
		}
	};
}

function looksLikeSequelize(value: unknown): value is Sequelize {
	return typeof value === 'object' && value !== null && typeof (value as Partial<Sequelize>).getDialect === 'function';
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
		// The router stands on Sequelize 6's connection manager internals, checked below and
		// tested against 6.31+.
		throw new TypeError(`Expected Sequelize >= 6.31 and < 7, got ${describe(version)}`);
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

function statusOf(replica: Replica): ReplicaStatus {
	const {health} = replica;
	let state: ReplicaStatus['state'] = 'healthy';
	if (health.promoted) {
		state = 'promoted';
	} else if (health.state === 'down') {
		state = 'quarantined';
	} else if (health.state === 'suspect') {
		state = 'suspect';
	} else if (health.lagging) {
		state = 'lagging';
	}

	return {
		...infoOf(replica),
		state,
		quarantinedUntil: health.state === 'down' ? new Date(health.nextProbeAt) : undefined,
		failures: health.failures,
		flapping: health.flapping,
		lastError: health.lastError,
		lagMs: health.lagMs,
		lagBytes: health.lagBytes === undefined ? undefined : Number(health.lagBytes),
		replayLsn: health.replayLsn === undefined ? undefined : formatLsn(health.replayLsn),
	};
}

function sqlText(sql: unknown): string | undefined {
	if (typeof sql === 'string') {
		return sql;
	}

	const query = (sql as {query?: unknown} | null | undefined)?.query;
	return typeof query === 'string' ? query : undefined;
}

