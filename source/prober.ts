// Probes decide whether a replica's *server* is in rotation (rule 10): a fresh connection
// that must answer a trivial query within `connectTimeoutMs`. The query asks whether the
// server is a standby, so that a server that comes back as a primary (an old primary
// restarted without being demoted) never serves a replica read in the meantime. A probe starts at once when one of
// the replica's connections fails, and runs on the health's back-off while the replica is
// out of rotation, whether or not reads or the monitor come by.
import createDebug from 'debug';
import {abortConnection, connectWithin, queryWithin, withTimeout} from './deadline.js';
import type {Replica} from './replica.js';
import type {ClientConnection, ConnectionConfig, ConnectionManagerInternals} from './sequelize-internals.js';

const log = createDebug('sequelize-multidb:probe');

export interface ProberOptions {
	readonly manager: ConnectionManagerInternals;
	/** Bound on a probe's connect and on its `SELECT 1` (`connectTimeoutMs`). */
	readonly timeoutMs: number;
}

export class Prober {
	readonly #options: ProberOptions;
	readonly #timers = new Map<Replica, NodeJS.Timeout>();
	readonly #probing = new Map<Replica, Promise<void>>();
	#stopped = false;

	constructor(options: ProberOptions) {
		this.#options = options;
	}

	/**
	 * A connection of `replica` failed. The replica is skipped while a probe of its server,
	 * started now, decides; further failures meanwhile belong to the same incident.
	 */
	connectionFailed(replica: Replica, error: unknown): void {
		if (replica.connectionFailed(error) && !this.#stopped) {
			void this.#probe(replica);
		}
	}

	stop(): void {
		this.#stopped = true;
		for (const timer of this.#timers.values()) {
			clearTimeout(timer);
		}

		this.#timers.clear();
	}

	/**
	 * Probes these replicas now (joining a probe already running on one); resolves once each
	 * has answered or failed. For a read about to fail, so it need not wait for the schedule.
	 */
	async probeNow(replicas: readonly Replica[]): Promise<void> {
		await Promise.all(replicas.map(async replica => this.#probe(replica)));
	}

	async #probe(replica: Replica): Promise<void> {
		const running = this.#probing.get(replica);
		if (running || this.#stopped) {
			return running;
		}

		const probing = this.#probeOnce(replica).finally(() => {
			this.#probing.delete(replica);
		});
		this.#probing.set(replica, probing);
		return probing;
	}

	async #probeOnce(replica: Replica): Promise<void> {
		try {
			const row = await askServer(this.#options.manager, replica.config, 'SELECT pg_is_in_recovery() AS "inRecovery"', this.#options.timeoutMs);
			replica.probeSucceeded(row?.inRecovery === true);
		} catch (error) {
			replica.probeFailed(error);
		}

		log('probe of %s: %s', replica.name, replica.state);
		if (replica.state === 'down') {
			this.#schedule(replica);
		}
	}

	#schedule(replica: Replica): void {
		if (this.#stopped) {
			return;
		}

		clearTimeout(this.#timers.get(replica));
		const timer = setTimeout(() => {
			this.#timers.delete(replica);
			void this.#probe(replica);
		}, Math.max(0, replica.nextProbeAt - Date.now()));
		// Never keep the process alive for a probe's sake.
		timer.unref();
		this.#timers.set(replica, timer);
	}
}

/**
 * Opens a fresh connection (through Sequelize's `_connect`, whose config carries the
 * connect timeout), runs `sql` within `timeoutMs`, closes the connection and resolves the
 * first row.
 */
export async function askServer(manager: ConnectionManagerInternals, config: ConnectionConfig, sql: string, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
	// Untagged: no pool holds it, and the dispatcher ignores it if it fails (install.ts).
	const connection = await connectWithin(manager, config, timeoutMs, 'probe connect') as ClientConnection;
	// A failed or hung query cuts the connection itself.
	const row = await queryWithin(connection, sql, timeoutMs, 'probe');

	// Not awaited: a server that freezes right after answering must not hold the probe open.
	void withTimeout(manager._disconnect(connection), timeoutMs, 'disconnect').catch(() => {
		abortConnection(connection);
	});
	return row;
}

/**
 * The server version Sequelize wants to know before its first query, asked of the primary,
 * else of the other nodes in turn: with the primary down, reads work from the first query.
 */
export async function versionOfAnyServer(manager: ConnectionManagerInternals, nodes: readonly Replica[], timeoutMs: number): Promise<string> {
	let firstError: unknown;
	for (const node of nodes) {
		try {
			// One server at a time, the primary first.
			const row = await askServer(manager, node.config, 'SHOW server_version', timeoutMs);
			return String(row?.server_version);
		} catch (error) {
			firstError ??= error;
		}
	}

	throw firstError;
}
