// The background monitor: what each node of the cluster is and how far behind the primary
// each standby is, read off the servers on a timer (with jitter), so the request path never
// pays a round trip for it. Each round asks every node one question (its role, timeline and
// WAL positions), hands the roles to the primary follower, which decides where writes go,
// then measures each standby against that primary.
//
// Byte lag is the primary's WAL position minus the standby's replay position. Time lag is
// how long the primary has been past the standby's replay position, from the monitor's own
// history of primary positions: unlike `now() - pg_last_xact_replay_timestamp()`, it stays
// 0 for a standby that has replayed everything of an idle primary. Positions continue
// across a promotion (the new timeline starts where the old one left off), so the history
// stays valid when the primary changes.
import createDebug from 'debug';
import {connectWithin, queryWithin, withTimeout} from './deadline.js';
import {classifyFailure} from './failure.js';
import {parseLsn} from './lsn.js';
import type {Replica} from './replica.js';
import type {ClientConnection, ConnectionConfig, ConnectionManagerInternals} from './sequelize-internals.js';
import type {RoleReport} from './topology.js';

const log = createDebug('sequelize-multidb:monitor');

/** How much primary history is kept: enough to measure lags up to this long. */
const historyMs = 10 * 60 * 1000;

/** What one node answered this round. */
export interface NodeReading extends RoleReport {
	/** A primary's current WAL position. */
	readonly currentLsn?: bigint;
	/** A standby's replay position. */
	readonly replayLsn?: bigint;
}

export interface MonitorOptions {
	readonly manager: ConnectionManagerInternals;
	/** Every node: the replicas and the configured primary. */
	readonly nodes: readonly Replica[];
	readonly intervalMs: number;
	/** Bound on one probe's query, so a frozen server cannot stall the monitor. */
	readonly probeTimeoutMs: number;
	/** The node that takes the writes now. */
	readonly currentPrimary: () => Replica;
	/** The round's roles: returns the node that takes the writes from now on, and its timeline. */
	readonly onRoles: (readings: ReadonlyMap<Replica, NodeReading>) => {readonly primary: Replica; readonly timeline: number | undefined};
	/** The probe connection failed (a fresh one included): the prober takes it from there. */
	readonly onFailure: (node: Replica, error: unknown) => void;
}

/**
 * One question, one round trip: role, WAL positions and timeline. A primary's timeline is
 * the one it writes on, read off the name of its current WAL file: `pg_control_checkpoint()`
 * still shows the old timeline right after a promotion, until the next checkpoint ends.
 * (`pg_walfile_name` cannot run during recovery: the CASE keeps it to primaries.) A
 * standby's is the newest of what it shows: the timeline its WAL receiver streams (visible
 * to superusers and members of `pg_read_all_stats`/`pg_monitor` only), and those of its
 * last restart point and minimum recovery point, which trail a timeline switch by up to a
 * `checkpoint_timeout`.
 */
const roleQuestion = `SELECT pg_is_in_recovery() AS "inRecovery",
	pg_last_wal_replay_lsn()::text AS "replayLsn",
	CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS "currentLsn",
	CASE WHEN pg_is_in_recovery()
		THEN greatest((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()), (SELECT min_recovery_end_timeline FROM pg_control_recovery()))::text
		ELSE pg_walfile_name(pg_current_wal_lsn()) END AS "timeline"`;

const unreachable: NodeReading = Object.freeze({reachable: false});

/** One dedicated connection per server, reopened after a failure. */
class ProbeConnection {
	#connection: Promise<ClientConnection> | undefined;

	constructor(readonly manager: ConnectionManagerInternals, readonly config: ConnectionConfig) {}

	/**
	 * Asks `sql`, or joins the question still in flight: a round that gave up waiting on a
	 * slow server leaves its question running (to its own time limit), and a second query on
	 * the same connection would queue behind it (which node-postgres deprecates).
	 */
	async query(sql: string, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
		this.#inFlight ??= this.#ask(sql, timeoutMs).finally(() => {
			this.#inFlight = undefined;
		});
		return this.#inFlight;
	}

	#inFlight: Promise<Record<string, unknown> | undefined> | undefined;

	async #ask(sql: string, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
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
			connection = await (this.#connection ??= this.#open(timeoutMs));
			if (connection._invalid) {
				// Sequelize's error listener marked it: the server closed it meanwhile.
				this.#connection = undefined;
				connection = await (this.#connection = this.#open(timeoutMs));
			}

			return await queryWithin(connection, sql, timeoutMs, 'monitor probe');
		} catch (error) {
			this.#connection = undefined;
			throw error;
		}
	}

	async #open(timeoutMs: number): Promise<ClientConnection> {
		// Untagged: no pool holds it, and the dispatcher ignores it if it fails (install.ts).
		return await connectWithin(this.manager, this.config, timeoutMs, 'monitor connect') as ClientConnection;
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
	readonly #connections: Map<Replica, ProbeConnection>;
	/** Primary WAL positions over time, oldest first. */
	readonly #history: Array<{at: number; lsn: bigint}> = [];
	#timer: NodeJS.Timeout | undefined;
	#running: Promise<void> | undefined;
	#stopped = false;

	constructor(options: MonitorOptions) {
		this.#options = options;
		this.#connections = new Map(options.nodes.map(node => [node, new ProbeConnection(options.manager, node.config)]));
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
		await Promise.all([...this.#connections.values()].map(async connection => connection.close()));
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
		const readings = await this.#askAll(node => node.state !== 'down');
		const current = readings.get(this.#options.currentPrimary());
		if (current?.reachable !== true || current.inRecovery !== false) {
			// The primary does not answer as one. The node promoted in its place may be one the
			// probes keep out of read rotation (down, or flapping: back for a while only): ask
			// those too, for their role only; the probes still decide when they serve reads.
			for (const [node, reading] of await this.#askAll(node => node.state === 'down')) {
				readings.set(node, reading);
			}
		}

		const {primary, timeline: primaryTimeline} = this.#options.onRoles(readings);
		const primaryLsn = readings.get(primary)?.currentLsn;
		if (primaryLsn !== undefined) {
			this.#remember(primaryLsn);
		}

		for (const [node, reading] of readings) {
			if (!reading.reachable) {
				continue;
			}

			if (node.state === 'down') {
				// Asked for its role only: the probes decide its health and lag.
				node.roleAnswered(reading.inRecovery === true);
				continue;
			}

			const {replayLsn} = reading;
			const lagKnown = primaryLsn !== undefined && replayLsn !== undefined;
			node.lagMeasured({
				inRecovery: reading.inRecovery === true,
				replayLsn,
				lagBytes: lagKnown ? bigintMax(primaryLsn - replayLsn, 0n) : undefined,
				lagMs: lagKnown ? this.#timeBehind(replayLsn) : undefined,
				timeline: reading.timeline,
				behindTimeline: reading.timeline !== undefined && primaryTimeline !== undefined && reading.timeline < primaryTimeline,
			});
		}
	}

	/**
	 * Asks the chosen nodes at once. A node that has not answered within two intervals counts
	 * as unreachable this round (its question still runs to its own time limit): one frozen
	 * server must not hold up the primary's follow-up or the others' lag.
	 */
	async #askAll(chosen: (node: Replica) => boolean): Promise<Map<Replica, NodeReading>> {
		const waitMs = Math.min(this.#options.probeTimeoutMs, 2 * this.#options.intervalMs);
		const asked = [...this.#connections].filter(([node]) => chosen(node));
		return new Map(await Promise.all(asked.map(async ([node, connection]) => [node, await withTimeout(this.#ask(node, connection), waitMs, 'monitor round').catch(() => unreachable)] as const)));
	}

	async #ask(node: Replica, connection: ProbeConnection): Promise<NodeReading> {
		let row: Record<string, unknown> | undefined;
		try {
			row = await connection.query(roleQuestion, this.#options.probeTimeoutMs);
		} catch (error) {
			log('%s did not answer: %s', node.name, (error as Error).message);
			if (node.state !== 'down') {
				// Out of rotation already: the prober's probes decide when it is back.
				this.#options.onFailure(node, error);
			}

			return unreachable;
		}

		const inRecovery = row?.inRecovery === true;
		return {
			reachable: true,
			inRecovery,
			timeline: parseTimeline(row?.timeline, inRecovery),
			currentLsn: parseLsn(row?.currentLsn),
			replayLsn: parseLsn(row?.replayLsn),
		};
	}

	/** The primary's WAL position as first read after `since` (epoch ms), if any: at least what any standby had replayed at `since`. */
	primaryPositionSince(since: number): bigint | undefined {
		return this.#history.find(sample => sample.at > since)?.lsn;
	}

	#remember(lsn: bigint): void {
		const now = Date.now();
		this.#history.push({at: now, lsn});
		while (this.#history.length > 2 && this.#history[0].at < now - historyMs) {
			this.#history.shift();
		}
	}

	/** How long the primary has been past `replayLsn`: 0 once the standby has caught up. */
	#timeBehind(replayLsn: bigint): number {
		const now = Date.now();
		const firstAhead = this.#history.find(sample => sample.lsn > replayLsn);
		return firstAhead ? now - firstAhead.at : 0;
	}
}

/** A standby's timeline as a number; a primary's from its WAL file name (`00000002000000000000000A`: timeline 2). */
function parseTimeline(value: unknown, inRecovery: boolean): number | undefined {
	if (typeof value !== 'string') {
		return undefined;
	}

	const timeline = inRecovery ? Number(value) : Number.parseInt(value.slice(0, 8), 16);
	return Number.isSafeInteger(timeline) && timeline > 0 ? timeline : undefined;
}

function bigintMax(a: bigint, b: bigint): bigint {
	return a > b ? a : b;
}
