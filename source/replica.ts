// One replica: where it is, its own connection pool, and its health. Its health is private:
// the prober, the monitor and the catch-up questions report to the replica, and the replica
// applies each transition and emits its event.
import createDebug from 'debug';
import {Pool} from 'sequelize-pool';
import {abortConnection, withTimeout} from './deadline.js';
import type {EmitEvent} from './events.js';
import {ReplicaHealth, type HealthState} from './health.js';
import {formatLsn} from './lsn.js';
import type {ConnectionConfig, ConnectionManagerInternals, PooledConnection} from './sequelize-internals.js';

const log = createDebug('sequelize-multidb:replica');

const disconnectTimeoutMs = 1000;

/** The replica each connection of ours came from (released on every read: one lookup). */
const replicaOfConnection = new WeakMap<PooledConnection, Replica>();

/** The replica a connection came from; undefined for one of the primary's. */
export function replicaOf(connection: PooledConnection): Replica | undefined {
	return replicaOfConnection.get(connection);
}

/** Where a replica is, without its password. */
export interface ReplicaInfo {
	readonly name: string;
	readonly host: string;
	readonly port: number;
	readonly database: string | undefined;
	readonly username: string | undefined;
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
	/** It went down again soon after rejoining (within `cooldownMs`): probed less often, it must keep answering for 5 s in a row to rejoin. */
	readonly flapping: boolean;
	readonly lastError: string | undefined;
	/** Last lag the monitor measured; undefined before its first probe. */
	readonly lagMs: number | undefined;
	readonly lagBytes: number | undefined;
	/** Last replay position read off the replica, as PostgreSQL prints it (`16/B374D848`). */
	readonly replayLsn: string | undefined;
}

/** One reading of the monitor. */
export interface LagSample {
	readonly replayLsn: bigint | undefined;
	readonly lagBytes: bigint | undefined;
	readonly lagMs: number | undefined;
	readonly inRecovery: boolean;
}

export interface ReplicaOptions {
	readonly name: string;
	/** Its connection config, with the connect timeout set. */
	readonly config: ConnectionConfig;
	readonly manager: ConnectionManagerInternals;
	/** `cooldownMs`: the flap window. */
	readonly flapWindowMs: number;
	readonly maxLagMs: number;
	readonly maxLagBytes: number;
	readonly emit: EmitEvent;
}

export class Replica implements ReplicaInfo {
	readonly name: string;
	readonly host: string;
	readonly port: number;
	readonly database: string | undefined;
	readonly username: string | undefined;
	readonly config: ConnectionConfig;
	readonly pool: Pool<PooledConnection>;
	readonly #health: ReplicaHealth;
	readonly #options: ReplicaOptions;
	/** Connections made before the replica last went down are not handed out again. */
	#generation = 0;
	readonly #generationOf = new WeakMap<PooledConnection, number>();

	constructor(options: ReplicaOptions) {
		const {config, manager} = options;
		this.#options = options;
		this.name = options.name;
		this.config = config;
		this.host = config.host ?? 'localhost';
		this.port = Number(config.port ?? 5432);
		this.database = config.database;
		this.username = config.username;
		this.#health = new ReplicaHealth(options.flapWindowMs);
		const poolConfig = manager.config.pool;
		this.pool = new Pool<PooledConnection>({
			name: `sequelize-multidb:${this.name}`,
			// Through Sequelize's own `_connect`, so `beforeConnect`/`afterConnect` hooks fire
			// for replica connections as they do for Sequelize's.
			create: async () => {
				const connection = await manager._connect(config);
				// Sequelize's pool dispatcher returns a connection to `pool.read` by this tag.
				connection.queryType = 'read';
				this.#generationOf.set(connection, this.#generation);
				replicaOfConnection.set(connection, this);
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

	/** In rotation: up, not lagging, still a standby. */
	get usable(): boolean {
		return this.#health.isUsable();
	}

	get state(): HealthState {
		return this.#health.state;
	}

	get promoted(): boolean {
		return this.#health.promoted;
	}

	get failures(): number {
		return this.#health.failures;
	}

	get lastError(): string | undefined {
		return this.#health.lastError;
	}

	get nextProbeAt(): number {
		return this.#health.nextProbeAt;
	}

	get lagMs(): number | undefined {
		return this.#health.lagMs;
	}

	get replayLsn(): bigint | undefined {
		return this.#health.replayLsn;
	}

	/** When a direct question last found it caught up with a fresh write (epoch ms). */
	get lastCaughtUpAt(): number {
		return this.#health.lastCaughtUpAt;
	}

	hasReplayed(lsn: bigint): boolean {
		return this.#health.hasReplayed(lsn);
	}

	/** One of its connections failed: returns whether to probe the server now. */
	connectionFailed(error: unknown): boolean {
		return this.#health.connectionFailed(error);
	}

	probeFailed(error: unknown): void {
		if (!this.#health.probeFailed(error).wentDown) {
			return;
		}

		// The server is down: whatever connections it had are presumed dead.
		this.#discardConnections();
		const health = this.#health;
		log('%s is down (%s); out of rotation, next probe at %s', this.name, health.lastError, new Date(health.nextProbeAt).toISOString());
		this.#options.emit('replicaDown', {replica: this.name, error: health.lastError ?? 'unknown error', until: new Date(health.nextProbeAt), failures: health.failures});
	}

	probeSucceeded(): void {
		if (this.#health.probeSucceeded().cameBack) {
			log('%s is back', this.name);
			this.#options.emit('replicaUp', {replica: this.name});
		}
	}

	/** A replay position read off the replica; `caughtUpWith` where it met a fresh write's. */
	replayed(lsn: bigint, caughtUpWith?: bigint): void {
		this.#health.replayed(lsn);
		if (caughtUpWith !== undefined && lsn >= caughtUpWith) {
			this.#health.lastCaughtUpAt = Date.now();
		}
	}

	/** The monitor's reading: lag past both thresholds, or a promotion, takes it out of rotation. */
	lagMeasured(sample: LagSample): void {
		const health = this.#health;
		if (sample.replayLsn !== undefined) {
			health.replayed(sample.replayLsn);
		}

		const wasOut = health.lagging || health.promoted;
		health.promoted = !sample.inRecovery;
		// Without the primary's position (primary down) the lag is unknown: keep the last verdict.
		if (sample.lagMs !== undefined && sample.lagBytes !== undefined) {
			health.lagMs = sample.lagMs;
			health.lagBytes = sample.lagBytes;
			health.lagging = sample.lagMs > this.#options.maxLagMs && Number(sample.lagBytes) > this.#options.maxLagBytes;
		}

		const isOut = health.lagging || health.promoted;
		const lag = {lagMs: health.lagMs, lagBytes: health.lagBytes === undefined ? undefined : Number(health.lagBytes)};
		if (isOut && !wasOut) {
			log('%s skipped: %s', this.name, health.promoted ? 'promoted' : `lag ${lag.lagMs} ms / ${lag.lagBytes} bytes`);
			this.#options.emit('replicaLagging', {replica: this.name, ...lag, promoted: health.promoted});
		} else if (wasOut && !isOut) {
			log('%s caught up', this.name);
			this.#options.emit('replicaCaughtUp', {replica: this.name, ...lag});
		}
	}

	/** Why it cannot serve reads now, for errors and the fallback event. */
	unusableReason(): string {
		const health = this.#health;
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

	info(): ReplicaInfo {
		return {name: this.name, host: this.host, port: this.port, database: this.database, username: this.username};
	}

	status(): ReplicaStatus {
		const health = this.#health;
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
			...this.info(),
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

	/**
	 * Every connection made so far is presumed dead. Idle ones are closed now; those in use
	 * are discarded when they come back (the pool validates each connection it hands out).
	 * Without this, the first reads after it rejoins would get dead connections.
	 */
	#discardConnections(): void {
		this.#generation++;
		void this.pool.destroyAllNow().catch(() => undefined);
	}
}
