// The background monitor: how far behind the primary each replica is, read off the servers
// on a timer (with jitter), so the request path never pays a round trip for it.
//
// Byte lag is the primary's WAL position minus the replica's replay position. Time lag is
// how long the primary has been past the replica's replay position, from the monitor's own
// history of primary positions: unlike `now() - pg_last_xact_replay_timestamp()`, it stays
// 0 for a replica that has replayed everything of an idle primary.
import createDebug from 'debug';
import {queryWithin} from './deadline.js';
import {classifyFailure} from './failure.js';
import {parseLsn} from './lsn.js';
import type {Replica} from './replica.js';
import type {ClientConnection, ConnectionConfig, ConnectionManagerInternals} from './sequelize-internals.js';

const log = createDebug('sequelize-multidb:monitor');

/** How much primary history is kept: enough to measure lags up to this long. */
const historyMs = 10 * 60 * 1000;

export interface MonitorOptions {
	readonly manager: ConnectionManagerInternals;
	readonly primaryConfig: ConnectionConfig;
	readonly replicas: readonly Replica[];
	readonly intervalMs: number;
	/** Bound on one probe's query, so a frozen server cannot stall the monitor. */
	readonly probeTimeoutMs: number;
	/** The probe connection failed (a fresh one included): the prober takes it from there. */
	readonly onFailure: (replica: Replica, error: unknown) => void;
}

/** One dedicated connection per server, reopened after a failure. */
class ProbeConnection {
	#connection: Promise<ClientConnection> | undefined;

	constructor(readonly manager: ConnectionManagerInternals, readonly config: ConnectionConfig) {}

	async query(sql: string, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
		const reused = this.#connection !== undefined;
		try {
			return await this.#queryOnce(sql, timeoutMs);
		} catch (error) {
			// A kept connection may have died with a server that is back now: one more try on
			// a fresh connection, before the server is judged down.
			if (reused && classifyFailure(error) === 'connection') {
				return this.#queryOnce(sql, timeoutMs);
			}

			throw error;
		}
	}

	async #queryOnce(sql: string, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
		let connection: ClientConnection | undefined;
		try {
			connection = await (this.#connection ??= this.#open());
			if (connection._invalid) {
				// Sequelize's error listener marked it: the server closed it meanwhile.
				this.#connection = undefined;
				connection = await (this.#connection = this.#open());
			}

			return await queryWithin(connection, sql, timeoutMs, 'monitor probe');
		} catch (error) {
			this.#connection = undefined;
			throw error;
		}
	}

	async #open(): Promise<ClientConnection> {
		// Untagged: no pool holds it, and the dispatcher ignores it if it fails (install.ts).
		return await this.manager._connect(this.config) as ClientConnection;
	}

	async close(): Promise<void> {
		const pending = this.#connection;
		this.#connection = undefined;
		const connection = await pending?.catch(() => undefined);
		if (connection) {
			await this.manager._disconnect(connection).catch(() => undefined);
		}
	}
}

export class LagMonitor {
	readonly #options: MonitorOptions;
	readonly #primary: ProbeConnection;
	readonly #replicas: Map<Replica, ProbeConnection>;
	/** Primary WAL positions over time, oldest first. */
	readonly #history: Array<{at: number; lsn: bigint}> = [];
	#timer: NodeJS.Timeout | undefined;
	#running: Promise<void> | undefined;
	#stopped = false;

	constructor(options: MonitorOptions) {
		this.#options = options;
		this.#primary = new ProbeConnection(options.manager, options.primaryConfig);
		this.#replicas = new Map(options.replicas.map(replica => [replica, new ProbeConnection(options.manager, replica.config)]));
	}

	start(): void {
		this.#schedule(0);
	}

	/** Runs one round now (tests and start-up use it to avoid waiting for the timer). */
	async probe(): Promise<void> {
		this.#running ??= this.#round().finally(() => {
			this.#running = undefined;
		});
		return this.#running;
	}

	async stop(): Promise<void> {
		this.#stopped = true;
		clearTimeout(this.#timer);
		await this.#running?.catch(() => undefined);
		await Promise.all([this.#primary.close(), ...[...this.#replicas.values()].map(async connection => connection.close())]);
	}

	#schedule(delayMs: number): void {
		if (this.#stopped) {
			return;
		}

		this.#timer = setTimeout(() => {
			void this.probe().finally(() => {
				// ±20 % jitter, so the processes of a fleet do not probe in lockstep.
				this.#schedule(this.#options.intervalMs * (0.8 + (Math.random() * 0.4)));
			});
		}, delayMs);
		// Never keep the process alive for the monitor's sake.
		this.#timer.unref();
	}

	async #round(): Promise<void> {
		const primaryLsn = await this.#primaryPosition();
		await Promise.all([...this.#replicas].map(async ([replica, connection]) => this.#probeReplica(replica, connection, primaryLsn)));
	}

	async #primaryPosition(): Promise<bigint | undefined> {
		try {
			const row = await this.#primary.query('SELECT pg_current_wal_lsn()::text AS lsn', this.#options.probeTimeoutMs);
			const lsn = parseLsn(row?.lsn);
			if (lsn !== undefined) {
				this.#remember(lsn);
			}

			return lsn;
		} catch (error) {
			// The primary being down does not make replicas late; lag stays as last seen.
			log('primary position unavailable: %s', (error as Error).message);
			return undefined;
		}
	}

	async #probeReplica(replica: Replica, connection: ProbeConnection, primaryLsn: bigint | undefined): Promise<void> {
		if (replica.state !== 'up') {
			// Out of rotation or suspect: the prober's probes decide when it is back.
			return;
		}

		let row: Record<string, unknown> | undefined;
		try {
			row = await connection.query('SELECT pg_is_in_recovery() AS "inRecovery", pg_last_wal_replay_lsn()::text AS "replayLsn"', this.#options.probeTimeoutMs);
		} catch (error) {
			this.#options.onFailure(replica, error);
			return;
		}

		const replayLsn = parseLsn(row?.replayLsn);
		const lagBytes = primaryLsn !== undefined && replayLsn !== undefined ? bigintMax(primaryLsn - replayLsn, 0n) : undefined;
		replica.lagMeasured({
			inRecovery: row?.inRecovery === true,
			replayLsn,
			lagBytes,
			lagMs: primaryLsn === undefined || replayLsn === undefined ? undefined : this.#timeBehind(replayLsn),
		});
	}

	#remember(lsn: bigint): void {
		const now = Date.now();
		this.#history.push({at: now, lsn});
		while (this.#history.length > 2 && this.#history[0].at < now - historyMs) {
			this.#history.shift();
		}
	}

	/** How long the primary has been past `replayLsn`: 0 once the replica has caught up. */
	#timeBehind(replayLsn: bigint): number {
		const now = Date.now();
		const firstAhead = this.#history.find(sample => sample.lsn > replayLsn);
		return firstAhead ? now - firstAhead.at : 0;
	}
}

function bigintMax(a: bigint, b: bigint): bigint {
	return a > b ? a : b;
}
