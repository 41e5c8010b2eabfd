// One replica: where it is, its own connection pool, and its health. Its health is private:
// the prober, the monitor and the catch-up questions report to the replica, and the replica
// applies each transition and emits its event.
import createDebug from 'debug';
import type {Pool} from 'sequelize-pool';
import {acquireTimed, createConnectionPool, type WaitReporter} from './connection-pool.js';
import type {EmitEvent} from './events.js';
import {ReplicaHealth, type HealthState, type HealthView} from './health.js';
import type {ConnectionConfig, ConnectionManagerInternals, PooledConnection} from './sequelize-internals.js';

const log = createDebug('sequelize-multidb:replica');

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

/** One reading of the monitor. */
export interface LagSample {
	readonly replayLsn: bigint | undefined;
	readonly lagBytes: bigint | undefined;
	readonly lagMs: number | undefined;
	readonly inRecovery: boolean;
	readonly timeline: number | undefined;
	/** A standby on an older timeline than the primary's (see `ReplicaHealth.behindTimeline`). */
	readonly behindTimeline: boolean;
}

export interface ReplicaOptions {
	readonly name: string;
	/** Its connection config, with the connect timeout set (reads, probes, the monitor). */
	readonly config: ConnectionConfig;
	/** Its connection config as the user gave it (writes, should it become the primary). */
	readonly writeConfig: ConnectionConfig;
	/** What it is at start: the configured primary, or a replica (presumed a standby until the monitor asks). */
	readonly role: 'primary' | 'standby';
	readonly manager: ConnectionManagerInternals;
	/** `cooldownMs`: the flap window. */
	readonly flapWindowMs: number;
	readonly maxLagMs: number;
	readonly maxLagBytes: number;
	readonly emit: EmitEvent;
}

/**
 * One server of the cluster as a read target: every replica of `replication.read`, and the
 * configured primary too (which serves replica reads only once it has become a standby).
 */
export class Replica implements ReplicaInfo {
	readonly name: string;
	readonly host: string;
	readonly port: number;
	readonly database: string | undefined;
	readonly username: string | undefined;
	readonly config: ConnectionConfig;
	readonly writeConfig: ConnectionConfig;
	readonly pool: Pool<PooledConnection>;
	/** Writes go here now (the primary follower says so). */
	takesWrites: boolean;
	/** Its timeline as last read off the server (a standby's as of its last restart point). */
	timeline: number | undefined;
	/** Reads of this process on it now (counted only with `balance: 'least-outstanding'`). */
	inFlight = 0;
	/** Told how long each acquisition from its pool waited, while an observer is attached. */
	reportWait: WaitReporter | undefined;
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
		this.writeConfig = options.writeConfig;
		this.takesWrites = options.role === 'primary';
		this.host = config.host ?? 'localhost';
		this.port = Number(config.port ?? 5432);
		this.database = config.database;
		this.username = config.username;
		this.#health = new ReplicaHealth(options.flapWindowMs);
		this.#health.promoted = options.role === 'primary';
		this.pool = createConnectionPool({
			name: this.name,
			manager,
			config,
			queryType: 'read',
			created: connection => {
				this.#generationOf.set(connection, this.#generation);
				replicaOfConnection.set(connection, this);
			},
			stillValid: connection => this.#generationOf.get(connection) === this.#generation,
		});
	}

	/** A connection from its pool (timed while an observer listens). */
	acquire(): Promise<PooledConnection> {
		return acquireTimed(this.pool, this.reportWait);
	}

	/** It answered as a standby when last asked (or, a replica never asked yet, is presumed one). */
	get standby(): boolean {
		return !this.#health.promoted;
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

	/** When a replay position was last read off it (epoch ms): it had replayed at most `replayLsn` before then. */
	get replayReadAt(): number {
		return this.#health.replayReadAt;
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

	/** A probe answered; `inRecovery` is its answer to `pg_is_in_recovery()`, known before it rejoins. */
	probeSucceeded(inRecovery: boolean): void {
		this.roleAnswered(inRecovery);
		if (this.#health.probeSucceeded().cameBack) {
			log('%s is back', this.name);
			this.#options.emit('replicaUp', {replica: this.name});
		}
	}

	/**
	 * It answered `pg_is_in_recovery()` (a probe, or the monitor asking a node out of rotation):
	 * its role, which says nothing yet of its health.
	 */
	roleAnswered(inRecovery: boolean): void {
		const health = this.#health;
		if (health.promoted && inRecovery) {
			// A primary that came back as a standby (an old primary rebuilt after a failover):
			// it serves reads once the monitor has seen its timeline and lag, not before.
			health.behindTimeline = true;
		}

		health.promoted = !inRecovery;
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

		const wasOut = health.lagging || health.promoted || health.behindTimeline;
		health.promoted = !sample.inRecovery;
		health.behindTimeline = sample.inRecovery && sample.behindTimeline;
		this.timeline = sample.timeline ?? this.timeline;
		// Without the primary's position (primary down) the lag is unknown: keep the last verdict.
		if (sample.lagMs !== undefined && sample.lagBytes !== undefined) {
			health.lagMs = sample.lagMs;
			health.lagBytes = sample.lagBytes;
			health.lagging = sample.lagMs > this.#options.maxLagMs && Number(sample.lagBytes) > this.#options.maxLagBytes;
		}

		const isOut = health.lagging || health.promoted || health.behindTimeline;
		const lag = {lagMs: health.lagMs, lagBytes: health.lagBytes === undefined ? undefined : Number(health.lagBytes)};
		if (isOut && !wasOut) {
			log('%s skipped: %s', this.name, this.unusableReason());
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

		if (health.behindTimeline) {
			return `on timeline ${this.timeline ?? '?'}, older than the primary's: not following it yet, or diverged`;
		}

		return health.lagging ? `lagging ${health.lagMs ?? '?'} ms / ${health.lagBytes ?? '?'} bytes` : 'unavailable';
	}

	info(): ReplicaInfo {
		return {name: this.name, host: this.host, port: this.port, database: this.database, username: this.username};
	}

	/** Its health, read-only, for `db.replicas` and `db.nodes` (node-status.ts). */
	get health(): HealthView {
		return this.#health;
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
