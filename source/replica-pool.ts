// The read pool Sequelize acquires from, replaced by ours: one pool per replica, and the
// replica chosen per *query*. Sequelize's own read pool chooses a replica per pooled
// connection (round-robin in `create`), so once its pool is warm, sequential reads reuse
// one connection and all land on one replica.
import {setTimeout as delay} from 'node:timers/promises';
import createDebug from 'debug';
import {Pool} from 'sequelize-pool';
import {currentScope, type QueryAttempt, type RoutingScope} from './context.js';
import {abortConnection, withTimeout, type ReadDeadlines} from './deadline.js';
import {NoReplicaAvailableError} from './errors.js';
import {classifyFailure, describeFailure} from './failure.js';
import {ReplicaHealth} from './health.js';
import {parseLsn} from './lsn.js';
import type {RouteReason} from './stats.js';
import type {ClientConnection, ConnectionConfig, ConnectionManagerInternals, PooledConnection, ReadPool} from './sequelize-internals.js';

const log = createDebug('sequelize-multidb:pool');

const disconnectTimeoutMs = 1000;

/** How often a read that must see a fresh write asks a replica before using the primary. */
const maxQuestions = 3;
/** Pause before the 2nd and 3rd question: 2 ms, then 4 ms (a few ms at most in all). */
const questionIntervalMs = 2;
/** A replica measured this close behind the primary is worth those few ms. */
const closeLagMs = 100;

/** One replica: where it is, its own connection pool, and its health. */
export class Replica {
	readonly host: string;
	readonly port: number;
	readonly database: string | undefined;
	readonly username: string | undefined;
	readonly pool: Pool<PooledConnection>;
	readonly health: ReplicaHealth;
	/** Connections made before the replica last went down are not handed out again. */
	#generation = 0;
	readonly #generationOf = new WeakMap<PooledConnection, number>();

	constructor(readonly name: string, readonly config: ConnectionConfig, manager: ConnectionManagerInternals, cooldownMs: number, tag: (connection: PooledConnection, replica: Replica) => void) {
		this.host = config.host ?? 'localhost';
		this.port = Number(config.port ?? 5432);
		this.database = config.database;
		this.username = config.username;
		this.health = new ReplicaHealth(cooldownMs);
		const poolConfig = manager.config.pool;
		this.pool = new Pool<PooledConnection>({
			name: `sequelize-multidb:${name}`,
			// Through Sequelize's own `_connect`, so `beforeConnect`/`afterConnect` hooks fire
			// for replica connections as they do for Sequelize's.
			create: async () => {
				const connection = await manager._connect(config);
				// Sequelize's pool dispatcher returns a connection to `pool.read` by this tag.
				connection.queryType = 'read';
				tag(connection, this);
				this.#generationOf.set(connection, this.#generation);
				return connection;
			},
			// A dead or frozen server may never answer a clean goodbye: bound it, then cut.
			destroy: async connection => withTimeout(manager._disconnect(connection), disconnectTimeoutMs, 'disconnect').catch(() => {
				abortConnection(connection);
			}),
			validate: connection => this.#generationOf.get(connection) === this.#generation && poolConfig.validate(connection),
			max: poolConfig.max,
			min: poolConfig.min,
			acquireTimeoutMillis: poolConfig.acquire,
			idleTimeoutMillis: poolConfig.idle,
			reapIntervalMillis: poolConfig.evict,
			maxUses: poolConfig.maxUses,
		});
	}

	/**
	 * The replica went down: every connection made so far is presumed dead. Idle ones are
	 * closed now; those in use are discarded when they come back (the pool validates each
	 * connection it hands out). Without this, the first reads after it rejoins would get
	 * dead connections.
	 */
	discardConnections(): void {
		this.#generation++;
		void this.pool.destroyAllNow().catch(() => undefined);
	}
}

/** Where a read goes: the primary (and why), or the replicas (and what they must have replayed). */
export type ReadRoute =
	| {readonly primary: true; readonly reason: RouteReason}
	| {readonly primary: false; readonly reason: RouteReason; readonly minLsn?: bigint};

export interface ReplicaPoolOptions {
	readonly manager: ConnectionManagerInternals;
	readonly configs: readonly ConnectionConfig[];
	readonly shuffle: boolean;
	readonly cooldownMs: number;
	readonly connectTimeoutMs: number;
	readonly fallbackToPrimary: boolean;
	/** The router this pool serves; a query attempt of another router is not ours to read. */
	readonly router: object;
	/** Sequelize's own read pool, which may still hold connections taken before install. */
	readonly nativePool: ReadPool;
	/** The primary's pool, for reads no replica can serve. */
	readonly primaryPool: ReadPool;
	/** A replica failed to give a connection. */
	readonly onFailure: (replica: Replica, error: unknown) => void;
	/** No replica can serve reads: they go to the primary (once per episode). */
	readonly onFallback: (reasons: Readonly<Record<string, string>>) => void;
	/** Deadlines of routed reads (`readTimeoutMs`); undefined when reads have no time limit. */
	readonly deadlines: ReadDeadlines | undefined;
	/** The router's decision for a read; `attempt` is absent for a `readOnly` transaction. */
	readonly route: (scope: RoutingScope | undefined, attempt: QueryAttempt | undefined) => ReadRoute | Promise<ReadRoute>;
}

export class ReplicaPool implements ReadPool {
	/** The replicas in round-robin order. */
	readonly replicas: readonly Replica[];
	readonly #options: ReplicaPoolOptions;
	readonly #replicaOfConnection = new WeakMap<PooledConnection, Replica>();
	#cursor = 0;
	#fallingBack = false;
	readonly #questions = new Map<Replica, Promise<void>>();

	constructor(options: ReplicaPoolOptions) {
		this.#options = options;
		const tag = (connection: PooledConnection, replica: Replica) => {
			this.#replicaOfConnection.set(connection, replica);
		};

		const replicas = options.configs.map((config, index) => new Replica(nameOf(config, index, options.configs), withConnectTimeout(config, options.connectTimeoutMs), options.manager, options.cooldownMs, tag));
		this.replicas = options.shuffle ? shuffled(replicas) : replicas;
	}

	/** The replica a connection of ours belongs to; undefined for the primary's. */
	replicaOf(connection: PooledConnection): Replica | undefined {
		return this.#replicaOfConnection.get(connection);
	}

	/**
	 * The next usable replica in round-robin order, skipping `excluded` ones and, given
	 * `minLsn`, those not known to have replayed that far.
	 */
	next(excluded?: ReadonlyMap<object, string>, minLsn?: bigint): Replica | undefined {
		const count = this.replicas.length;
		for (let step = 0; step < count; step++) {
			const index = (this.#cursor + step) % count;
			const replica = this.replicas[index];
			if (replica.health.isUsable() && !excluded?.has(replica) && (minLsn === undefined || replica.health.hasReplayed(minLsn))) {
				this.#cursor = (index + 1) % count;
				return replica;
			}
		}

		return undefined;
	}

	/** The next replica in round-robin order, usable or not (`getReplica()`). */
	nextInTurn(): Replica {
		const replica = this.replicas[this.#cursor];
		this.#cursor = (this.#cursor + 1) % this.replicas.length;
		return replica;
	}

	/**
	 * A connection for one read. The common case (a usable replica, no failure) is one
	 * promise; failures, consistency questions and the fallback take the slow path.
	 */
	acquire(): Promise<PooledConnection> {
		const scope = currentScope();
		const attempt = scope?.attempt?.router === this.#options.router ? scope.attempt : undefined;
		const forced = attempt?.forcedReplica;
		if (attempt && forced instanceof Replica) {
			attempt.reason = 'chosen-replica';
			return forced.pool.acquire().then(connection => this.#watched(attempt, forced, connection));
		}

		const route = this.#options.route(scope, attempt);
		return route instanceof Promise ? route.then(async settled => this.#acquireFor(settled, attempt)) : this.#acquireFor(route, attempt);
	}

	/** Not `async`: an async frame around the pool's promise costs extra microtask turns per read. */
	#acquireFor(route: ReadRoute, attempt: QueryAttempt | undefined): Promise<PooledConnection> {
		if (attempt) {
			attempt.reason = route.reason;
		}

		if (route.primary) {
			return this.#options.primaryPool.acquire();
		}

		const replica = this.next(attempt?.excluded, route.minLsn);
		if (!replica) {
			return this.#acquireSlowly(attempt, attempt?.excluded, route.minLsn);
		}

		return replica.pool.acquire().then(connection => {
			this.#fallingBack = false;
			return this.#watched(attempt, replica, connection);
		}, async (error: unknown) => this.#acquireSlowly(attempt, this.#connectFailed(replica, error, attempt?.excluded), route.minLsn));
	}

	/** A replica failed to give a connection: nothing was sent to it, so it is safe to skip. */
	#connectFailed(replica: Replica, error: unknown, failed: ReadonlyMap<object, string> | undefined): ReadonlyMap<object, string> {
		if (classifyFailure(error) !== 'connection') {
			throw error;
		}

		this.#options.onFailure(replica, error);
		return new Map(failed).set(replica, describeFailure(error));
	}

	async #acquireSlowly(attempt: QueryAttempt | undefined, excluded: ReadonlyMap<object, string> | undefined, minLsn: bigint | undefined): Promise<PooledConnection> {
		let failed = excluded;
		let questions = 0;
		// The likeliest replica's position after the question before last: set from the
		// second question on, so movement between two answers can be seen.
		let previousAnswer: bigint | undefined;
		for (;;) {
			let replica = this.next(failed, minLsn);
			while (!replica && minLsn !== undefined && questions < maxQuestions) {
				// No replica is known to have replayed that far yet (the monitor's view is up to
				// an interval old): ask the likeliest one. A replica that keeps up usually has
				// the write within milliseconds, so it is asked again, briefly, before the
				// primary takes the read; one that is not moving is not waited for.
				if (questions > 0) {
					if (!this.#worthWaitingFor(failed, previousAnswer)) {
						break;
					}

					previousAnswer = this.#likeliest(failed)?.health.replayLsn;
					await delay(questions * questionIntervalMs);
				}

				questions++;
				await this.#askReplayPosition(failed, minLsn);
				replica = this.next(failed, minLsn);
			}

			if (!replica && minLsn !== undefined) {
				if (attempt) {
					attempt.reason = 'not-caught-up';
				}

				return this.#options.primaryPool.acquire();
			}

			if (!replica) {
				return this.#fallback(attempt, failed);
			}

			try {
				const connection = await replica.pool.acquire();
				this.#fallingBack = false;
				return this.#watched(attempt, replica, connection);
			} catch (error) {
				failed = this.#connectFailed(replica, error, failed);
			}
		}
	}

	release(connection: PooledConnection): void {
		const replica = this.#replicaOfConnection.get(connection);
		if (replica) {
			replica.pool.release(connection);
		} else {
			this.#options.nativePool.release(connection);
		}
	}

	async destroy(connection: PooledConnection): Promise<void> {
		const replica = this.#replicaOfConnection.get(connection);
		await (replica ? replica.pool.destroy(connection) : this.#options.nativePool.destroy(connection));
	}

	async drain(): Promise<void> {
		await Promise.all([this.#options.nativePool.drain(), ...this.replicas.map(async replica => replica.pool.drain())]);
	}

	async destroyAllNow(): Promise<void> {
		await Promise.all([this.#options.nativePool.destroyAllNow(), ...this.replicas.map(async replica => replica.pool.destroyAllNow())]);
	}

	/**
	 * Notes on the attempt which replica its read runs on (only such reads are retried) and
	 * watches the read's deadline: past it, the connection is cut and the read fails over.
	 */
	#watched(attempt: QueryAttempt | undefined, replica: Replica, connection: PooledConnection): PooledConnection {
		if (attempt) {
			attempt.replica = replica;
			attempt.deadline = this.#options.deadlines?.watch(() => {
				attempt.timedOut = true;
				abortConnection(connection);
			});
		}

		return connection;
	}

	#likeliest(excluded: ReadonlyMap<object, string> | undefined): Replica | undefined {
		return this.replicas.filter(replica => replica.health.isUsable() && !excluded?.has(replica)).sort(likelierCaughtUp).at(0);
	}

	/**
	 * Whether the likeliest replica is worth a few ms more: the monitor measured it close
	 * behind, or its replay position moved since the previous answer (it is catching up,
	 * not held back).
	 */
	#worthWaitingFor(excluded: ReadonlyMap<object, string> | undefined, previousAnswer: bigint | undefined): boolean {
		const health = this.#likeliest(excluded)?.health;
		if (!health) {
			return false;
		}

		const moving = previousAnswer === undefined || (health.replayLsn !== undefined && health.replayLsn > previousAnswer);
		return moving || (health.lagMs !== undefined && health.lagMs < closeLagMs);
	}

	/**
	 * Reads the replay position of the usable replica most likely to be caught up, bounded
	 * by the connect timeout. Concurrent reads share one question per replica, and the
	 * answer is kept as the replica's known position.
	 */
	async #askReplayPosition(excluded: ReadonlyMap<object, string> | undefined, minLsn: bigint): Promise<void> {
		const best = this.#likeliest(excluded);
		if (!best) {
			return;
		}

		let question = this.#questions.get(best);
		if (!question) {
			question = this.#readReplayPosition(best, minLsn).finally(() => {
				this.#questions.delete(best);
			});
			this.#questions.set(best, question);
		}

		await question;
	}

	async #readReplayPosition(replica: Replica, minLsn: bigint): Promise<void> {
		let connection: ClientConnection | undefined;
		try {
			connection = await replica.pool.acquire() as ClientConnection;
			const result = await withTimeout(connection.query('SELECT pg_last_wal_replay_lsn()::text AS lsn'), this.#options.connectTimeoutMs, 'replay position check');
			const lsn = parseLsn(result.rows[0]?.lsn);
			if (lsn !== undefined) {
				replica.health.replayed(lsn);
				if (lsn >= minLsn) {
					replica.health.lastCaughtUpAt = Date.now();
				}
			}

			replica.pool.release(connection);
		} catch (error) {
			if (connection) {
				abortConnection(connection);
				replica.pool.release(connection);
			}

			log('replay position of %s unknown: %s', replica.name, describeFailure(error));
		}
	}

	async #fallback(attempt: QueryAttempt | undefined, failed: ReadonlyMap<object, string> | undefined): Promise<PooledConnection> {
		const reasons: Record<string, string> = {};
		for (const replica of this.replicas) {
			reasons[replica.name] = failed?.get(replica) ?? this.#unusableReason(replica);
		}

		if (!this.#options.fallbackToPrimary || attempt?.primaryFailed) {
			return this.#lastResort(attempt, failed, new NoReplicaAvailableError(reasons));
		}

		if (!this.#fallingBack) {
			this.#fallingBack = true;
			log('no replica can serve reads, falling back to the primary: %o', reasons);
			this.#options.onFallback(reasons);
		}

		if (attempt) {
			attempt.reason = 'fallback';
		}

		return this.#options.primaryPool.acquire().catch(async (error: unknown) => {
			if (!attempt || classifyFailure(error) !== 'connection') {
				throw error;
			}

			return this.#lastResort(attempt, failed, error);
		});
	}

	/**
	 * No replica in rotation, and the primary cannot take the read (down, or
	 * `fallbackToPrimary` off): before the read fails, the replicas out of rotation are
	 * tried, the likeliest first (lagging ones are known to answer; a suspect one may have
	 * lost a single connection). Only a plain read gets here (`attempt`), never a transaction.
	 */
	async #lastResort(attempt: QueryAttempt | undefined, failed: ReadonlyMap<object, string> | undefined, finalError: unknown): Promise<PooledConnection> {
		if (!attempt) {
			throw finalError;
		}

		const candidates = this.replicas.filter(replica => !replica.health.promoted && !failed?.has(replica)).sort(byLastResortOrder);
		for (const replica of candidates) {
			try {
				const connection = await replica.pool.acquire();
				attempt.reason = 'last-resort';
				log('last resort: read on %s (%s)', replica.name, replica.health.state);
				return this.#watched(attempt, replica, connection);
			} catch (error) {
				if (classifyFailure(error) !== 'connection') {
					throw error;
				}

				this.#options.onFailure(replica, error);
			}
		}

		throw finalError;
	}

	#unusableReason(replica: Replica): string {
		const {health} = replica;
		if (health.promoted) {
			return 'promoted: no longer a standby';
		}

		if (health.state === 'down') {
			return `quarantined, next probe at ${new Date(health.nextProbeAt).toISOString()} (${health.lastError ?? 'failed'})`;
		}

		if (health.state === 'suspect') {
			return `suspect, being probed (${health.lastError ?? 'failed'})`;
		}

		return health.lagging ? `lagging ${health.lagMs ?? '?'} ms / ${health.lagBytes ?? '?'} bytes` : 'unavailable';
	}
}

const lastResortRank = {up: 0, suspect: 1, down: 2} as const;

/** Up (lagging) replicas first, then suspect, then down ones; among those, the fewest failed probes. */
function byLastResortOrder(a: Replica, b: Replica): number {
	return (lastResortRank[a.health.state] - lastResortRank[b.health.state]) || (a.health.failures - b.health.failures);
}

/**
 * Orders replicas by how likely they are to have replayed a fresh write: the smallest
 * measured time lag first (known positions are read at different moments, so a position
 * alone can favour a replica that is held back); then the furthest known replay position;
 * then the one most recently found caught up.
 */
function likelierCaughtUp(a: Replica, b: Replica): number {
	const [first, second] = [a.health, b.health];
	const byLag = (first.lagMs ?? Number.POSITIVE_INFINITY) - (second.lagMs ?? Number.POSITIVE_INFINITY);
	if (byLag !== 0 && !Number.isNaN(byLag)) {
		return byLag;
	}

	const byPosition = (second.replayLsn ?? -1n) - (first.replayLsn ?? -1n);
	if (byPosition !== 0n) {
		return byPosition > 0n ? 1 : -1;
	}

	return second.lastCaughtUpAt - first.lastCaughtUpAt;
}

/** pg's own connect timeout, on replica connections only (the primary's stay as configured). */
function withConnectTimeout(config: ConnectionConfig, connectTimeoutMs: number): ConnectionConfig {
	const dialectOptions = (config.dialectOptions ?? {}) as Record<string, unknown>;
	return {...config, dialectOptions: {...dialectOptions, connectionTimeoutMillis: connectTimeoutMs}};
}

/** `host:port`, with the database appended only where two replicas share a server. */
function nameOf(config: ConnectionConfig, index: number, all: readonly ConnectionConfig[]): string {
	const server = (entry: ConnectionConfig) => `${entry.host ?? 'localhost'}:${entry.port ?? 5432}`;
	const name = server(config);
	const sameServer = all.filter(entry => server(entry) === name);
	if (sameServer.length === 1) {
		return name;
	}

	const withDatabase = `${name}/${config.database ?? ''}`;
	return all.filter(entry => `${server(entry)}/${entry.database ?? ''}` === withDatabase).length === 1 ? withDatabase : `${name}#${index + 1}`;
}

/** Fisher-Yates, on a copy. */
function shuffled<T>(items: readonly T[]): T[] {
	const result = [...items];
	for (let index = result.length - 1; index > 0; index--) {
		const other = Math.floor(Math.random() * (index + 1));
		[result[index], result[other]] = [result[other], result[index]];
	}

	return result;
}
