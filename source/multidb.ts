// `multidb()` and the handle it returns. The handle has the router's parts for one
// Sequelize instance assembled (assemble.ts), adds the failover and the stats, and has
// `install` put them in place; after that it only answers questions (status, stats, tokens).
import {EventEmitter} from 'node:events';
import createDebug from 'debug';
import {QueryTypes, type QueryOptions, type Sequelize} from 'sequelize';
import {assembleReadSide, type ReadSide} from './assemble.js';
import {Consistency} from './consistency.js';
import {forgetRouter, registerRouter} from './context.js';
import {MultiDbError, warningCodes, warningType} from './errors.js';
import type {EmitEvent, MultiDbEvents} from './events.js';
import {Failover} from './failover.js';
import {install} from './install.js';
import {attachObserver, type ObservedRouter, type RouterObserver} from './observer.js';
import {nodeStatus, replicaStatus, type NodeStatus, type ReplicaStatus} from './node-status.js';
import {resolveMultiDbOptions, type MultiDbOptions, type ResolvedMultiDbOptions} from './options.js';
import {versionOfAnyServer} from './prober.js';
import type {ReplicaInfo} from './replica.js';
import {checkSequelize, clsTransactionOf, connectionManagerOf, looksLikeSequelize, queryDefaultsOf} from './sequelize-internals.js';
import {StatsRecorder, type RouteStats} from './stats.js';
import {describe, isMultiDb, routerBrand} from './validate.js';

export type {MultiDbEvents} from './events.js';
export type {ReplicaInfo} from './replica.js';
export type {NodeStatus, ReplicaStatus} from './node-status.js';

const log = createDebug('sequelize-multidb:router');

/** Marks an instance as taken, across the ESM and CommonJS builds of this package. */
const installedKey = Symbol.for('sequelize-multidb.installed');
/** Attaches an observer (`sequelize-multidb/opentelemetry`), whichever build made the router. */
export const observeKey = Symbol.for('sequelize-multidb.observe');

export type ReplicaQueryOptions = Omit<QueryOptions, 'type' | 'transaction' | 'plain' | 'useMaster'>;

/** One replica, from `getReplica()`: where it is, and a way to run SQL on exactly it. */
export interface ReplicaHandle extends ReplicaInfo {
	/** Runs a read on this replica (never another, never the primary) and resolves its rows. */
	query<Row extends object = Record<string, unknown>>(sql: string, options?: ReplicaQueryOptions): Promise<Row[]>;
}

export class MultiDb extends EventEmitter<MultiDbEvents> {
	readonly [routerBrand] = true;
	readonly sequelize: Sequelize;
	readonly options: ResolvedMultiDbOptions;
	/** Undefined when no replica is configured. */
	readonly #parts: ReadSide | undefined;
	readonly #stats: StatsRecorder;
	readonly #consistency: Consistency;
	readonly #failover: Failover;
	#closed = false;

	/** @internal Use `multidb(sequelize, options)`. */
	constructor(sequelize: Sequelize, options: ResolvedMultiDbOptions) {
		super();
		this.sequelize = sequelize;
		this.options = options;
		const manager = connectionManagerOf(sequelize);
		const emit: EmitEvent = (name, ...payload) => {
			(this.emit as (name: string, ...payload: unknown[]) => boolean)(name, ...payload);
		};

		// Its reads of the primary go through the installed query, counted like any other.
		const onPrimary = async (sql: string) => this.sequelize.query<Record<string, unknown>>(sql, {type: QueryTypes.SELECT, plain: true, useMaster: true});
		this.#consistency = new Consistency(onPrimary, options.keys, this);
		const parts = assembleReadSide({sequelize, options, router: this, consistency: this.#consistency, emit, countConnectFailover: replica => {
			this.#stats.failover('connection', replica.name);
		}});
		if (!parts) {
			process.emitWarning('sequelize-multidb: no replicas are configured (`replication.read` is missing or empty); every read goes to the primary', {type: warningType, code: warningCodes.noReplicas});
		}

		this.#parts = parts;
		// The configured primary shows under its own name only once it serves reads as a standby.
		this.#stats = new StatsRecorder(['primary', ...this.replicas.map(replica => replica.name)]);
		this.#failover = new Failover({
			originalQuery: sequelize.query.bind(sequelize) as (sql: unknown, options?: unknown) => Promise<unknown>,
			pool: this.#parts?.pool,
			router: this,
			stats: this.#stats,
			deadlines: this.#parts?.deadlines,
			prober: this.#parts?.prober,
			affinity: this.#parts?.affinity,
			queryDefaults: queryDefaultsOf(sequelize),
			clsTransaction: () => clsTransactionOf(sequelize),
		});
		install({
			sequelize,
			failover: this.#failover,
			pool: parts?.pool,
			writePool: parts?.writePool,
			serverVersion: parts ? async () => versionOfAnyServer(manager, [parts.writePool.primary, ...parts.pool.replicas.filter(node => !node.takesWrites)], options.connectTimeoutMs) : undefined,
			close: async () => this.close(),
		});
		registerRouter(this);
		log('installed with %d replica(s): %o', this.#parts?.pool.replicas.length ?? 0, this.#parts?.pool.replicas.map(replica => replica.name));
	}

	/**
	 * The replicas in round-robin order, with their health and last measured lag: every node
	 * but the one taking the writes (so after a failover, the old primary is listed, and the
	 * promoted replica is not).
	 */
	get replicas(): readonly ReplicaStatus[] {
		return this.#parts?.pool.replicas.filter(replica => !replica.takesWrites).map(replica => replicaStatus(replica)) ?? [];
	}

	/** Every node of the cluster (the replicas, then the configured primary), with its role and whether it takes the writes now. Empty without replicas. */
	get nodes(): readonly NodeStatus[] {
		const parts = this.#parts;
		return parts ? parts.pool.replicas.map(node => nodeStatus(node, parts.configuredPrimary)) : [];
	}

	/** The next replica in round-robin order (the seed's `get_replica`), usable or not. */
	getReplica(): ReplicaHandle {
		if (this.#closed) {
			throw new MultiDbError('MULTIDB_CLOSED', 'This router is closed');
		}

		if (!this.#parts) {
			throw new MultiDbError('MULTIDB_NO_REPLICAS', 'No replicas are configured (`replication.read` is missing or empty)');
		}

		const replica = this.#parts.balancer.nextInTurn();
		const query = async (sql: string, queryOptions: ReplicaQueryOptions = {}) => {
			if (typeof sql !== 'string') {
				throw new TypeError(`Expected \`sql\` to be a string, got ${describe(sql)}`);
			}

			if ('transaction' in queryOptions) {
				throw new TypeError('A replica query cannot run in a transaction: the transaction\'s connection decides where it runs');
			}

			return this.#failover.queryOn(replica, sql, queryOptions);
		};

		return {...replica.info(), query: query as ReplicaHandle['query']};
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
		return this.#consistency.token(options.ttlMs);
	}

	/** @internal The cluster's identity and the primary's WAL position, read now. */
	async primaryPosition(): Promise<{systemId: string; lsn: bigint}> {
		return this.#consistency.primaryPosition();
	}

	/** The cluster's identity in consistency tokens: PostgreSQL's system identifier (read once). */
	async systemIdentifier(): Promise<string> {
		return this.#consistency.systemIdentifier();
	}

	/** @internal Whether every replica is known to have replayed up to `lsn`. */
	everyReplicaHasReplayed(lsn: bigint): boolean {
		return this.#parts?.pool.replicas.every(node => !node.standby || node.hasReplayed(lsn)) ?? false;
	}

	/** @internal Attaches the one observer this router has (see observer.ts). */
	[observeKey](observer: RouterObserver): ObservedRouter {
		return attachObserver(this.#parts, this.#stats, observer);
	}

	/** Probes every replica now instead of at the monitor's next tick. */
	async refreshReplicas(): Promise<void> {
		await this.#parts?.monitor?.probe();
	}

	/** Stops background work. `sequelize.close()` calls it too, and also closes the pools. */
	async close(): Promise<void> {
		this.#closed = true;
		forgetRouter(this);
		this.#parts?.deadlines?.stop();
		this.#parts?.prober.stop();
		await this.#parts?.monitor?.stop();
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

	return installOn(first, resolveMultiDbOptions(arguments_[1]));
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

function installOn(sequelize: unknown, options: ResolvedMultiDbOptions): MultiDb {
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
			installOn(sequelize, options);
		} catch (error) {
			process.emitWarning(`sequelize-multidb: no router installed on a new Sequelize instance: ${(error as Error).message}`, {type: warningType, code: warningCodes.notInstalled});
		}
	};
}
