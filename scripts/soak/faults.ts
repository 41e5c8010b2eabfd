// Runs the soak's fault schedule on a real cluster: each fault is done, held for its
// duration, undone, and recorded with what it disabled. Faults overlap, but never two on one
// server, and a promotion waits until nothing else is broken (an operator does not promote
// a frozen standby).
import {spawnSync} from 'node:child_process';
import {existsSync} from 'node:fs';
import net from 'node:net';
import {setTimeout as delay} from 'node:timers/promises';
import {followOtherPrimary, rebuildAsStandby, withClient, type LocalCluster, type PgBouncer, type PostgresServer} from '../local-cluster/index.js';
import type {FaultKind, HistoryWriter} from './history.js';
import type {ScheduledFault} from './schedule.js';

interface Injected {
	/** Servers unable to answer while it lasts. */
	readonly disables: readonly PostgresServer[];
	/** Whether no primary can take queries until it is healed (or until `primaryBackAt`). */
	readonly primaryOut: boolean;
	/** ms: when a primary took queries again, if before the heal. */
	readonly primaryBackAt?: number;
	readonly heal: () => Promise<void> | void;
}

/** Faults that leave their server unable to answer while they last. */
const disabling = new Set<FaultKind>(['stop', 'freeze', 'partition', 'stop-primary', 'promotion']);

/** The nftables table the soak's partitions live in (inside the soak's own network namespace). */
const nftTable = ['inet', 'multidb_soak'] as const;

export class FaultInjector {
	/** The server taking writes now, and the standbys (a promotion changes both). */
	primary: PostgresServer;
	standbys: PostgresServer[];
	/** Faults that could not be made, with why; printed, never silent. */
	readonly skipped: string[] = [];
	readonly #cluster: LocalCluster;
	readonly #history: HistoryWriter;
	readonly #busy = new Set<PostgresServer>();
	/** Servers that cannot answer now (stopped, frozen, cut off). */
	readonly #disabled = new Set<PostgresServer>();
	readonly #running = new Set<Promise<void>>();

	constructor(cluster: LocalCluster, history: HistoryWriter, readonly partitions: boolean) {
		this.#cluster = cluster;
		this.#history = history;
		this.primary = cluster.primary;
		this.standbys = [...cluster.replicas];
		if (partitions) {
			nft('add', 'table', ...nftTable);
			nft('add', 'set', ...nftTable, 'cut', '{ type inet_service; }');
			nft('add', 'chain', ...nftTable, 'output', '{ type filter hook output priority 0; policy accept; }');
			// Loopback traffic passes the output hook once each way: drop both directions.
			nft('add', 'rule', ...nftTable, 'output', 'tcp', 'dport', '@cut', 'drop');
			nft('add', 'rule', ...nftTable, 'output', 'tcp', 'sport', '@cut', 'drop');
		}
	}

	/** Runs every fault at its time (or later, when its target is busy); resolves once all are undone. */
	async run(schedule: readonly ScheduledFault[], shouldStop: () => boolean): Promise<void> {
		for (const fault of schedule) {
			const wait = fault.at - this.#history.now();
			if (wait > 0) {
				await delay(wait);
			}

			if (shouldStop() || this.broken) {
				break;
			}

			if (fault.kind === 'promotion') {
				// Everything else is undone first; nothing new starts until the promotion is done.
				await Promise.all(this.#running);
				await this.#hold(fault);
				continue;
			}

			const task = this.#hold(fault);
			this.#running.add(task);
			void task.finally(() => this.#running.delete(task));
		}

		await Promise.all(this.#running);
		if (this.broken) {
			throw this.broken;
		}
	}

	async #hold(fault: ScheduledFault): Promise<void> {
		const target = this.#target(fault);
		if (!target) {
			return;
		}

		this.#busy.add(target);
		if (disabling.has(fault.kind)) {
			this.#disabled.add(target);
		}

		const start = this.#history.now();
		try {
			const injected = await this.#inject(fault.kind, target);
			await delay(fault.durationMs);
			await this.#heal(fault.kind, target, injected);
			const end = this.#history.now();
			this.#history.record({
				type: 'fault',
				kind: fault.kind,
				target: target.name,
				start,
				end,
				disables: injected.disables.map(server => server.name),
				...injected.primaryOut ? {primaryOutUntil: injected.primaryBackAt ?? end} : {},
			});
		} catch (error) {
			this.skipped.push(`${fault.kind} on ${target.name} at ${start} ms failed: ${(error as Error).message.split('\n')[0]}`);
		} finally {
			this.#busy.delete(target);
			this.#disabled.delete(target);
		}
	}

	/**
	 * Undoes a fault, trying twice more a second apart. A server that cannot be brought back
	 * breaks the run: what follows would test a smaller cluster than the one scheduled.
	 */
	async #heal(kind: FaultKind, target: PostgresServer, injected: Injected): Promise<void> {
		for (let attempt = 1; ; attempt++) {
			try {
				await injected.heal();
				if (target.bouncer && injected.disables.length > 0) {
					// Back for clients only once its PgBouncer lets them through: after failed
					// logins it refuses every client for server_login_retry.
					await answersThrough(target.bouncer);
				}

				return;
			} catch (error) {
				if (attempt >= 3) {
					this.broken ??= new Error(`the soak could not undo ${kind} on ${target.name}: ${(error as Error).message}`, {cause: error});
					throw error;
				}

				await delay(1000);
			}
		}
	}

	/** Set when a fault could not be undone; the run stops at once. */
	broken: Error | undefined;

	/** The server a fault hits now: the primary, or the standby in its slot (else the other). */
	#target(fault: ScheduledFault): PostgresServer | undefined {
		if (fault.kind === 'partition' && !this.partitions) {
			return undefined;
		}

		// One server always can answer: with every server out, no read can succeed, and the
		// run would check nothing while it lasts.
		if (disabling.has(fault.kind) && this.#disabled.size >= this.#cluster.servers.length - 1) {
			this.skipped.push(`${fault.kind} at ${this.#history.now()} ms: it would leave no server able to answer`);
			return undefined;
		}

		if (fault.kind === 'stop-primary' || fault.kind === 'promotion') {
			return this.#busy.has(this.primary) ? undefined : this.primary;
		}

		const order = fault.slot === 0 ? this.standbys : this.standbys.toReversed();
		return order.find(server => !this.#busy.has(server));
	}

	async #inject(kind: FaultKind, server: PostgresServer): Promise<Injected> {
		switch (kind) {
			case 'stop':
			case 'stop-primary': {
				// `immediate` is a crash: no checkpoint, clients cut without a word.
				await server.stop('immediate');
				return {disables: [server], primaryOut: server === this.primary, heal: async () => server.start()};
			}

			case 'freeze': {
				server.freeze();
				return {disables: [server], primaryOut: false, heal: () => {
					server.thaw();
				}};
			}

			case 'kill-backends': {
				await withClient(server, async client => client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = \'client backend\' AND pid <> pg_backend_pid()'));
				return {disables: [], primaryOut: false, heal: () => undefined};
			}

			case 'pause-replay': {
				await withClient(server, async client => client.query('SELECT pg_wal_replay_pause()'));
				return {disables: [], primaryOut: false, heal: async () => {
					await withClient(server, async client => client.query('SELECT pg_wal_replay_resume()'));
				}};
			}

			case 'partition': {
				// Packets to and from the server's port, and its PgBouncer's, are dropped: no RST,
				// no FIN, unlike a stopped server. Its replication stream (to the primary's port) flows.
				const ports = [server.port, ...server.bouncer ? [server.bouncer.port] : []].join(', ');
				nft('add', 'element', ...nftTable, 'cut', `{ ${ports} }`);
				await assertSilent(server.bouncer?.port ?? server.port).catch((error: unknown) => {
					nft('delete', 'element', ...nftTable, 'cut', `{ ${ports} }`);
					throw error;
				});
				return {disables: [server], primaryOut: false, heal: () => {
					nft('delete', 'element', ...nftTable, 'cut', `{ ${ports} }`);
				}};
			}

			case 'promotion': {
				return this.#promote(server);
			}
		}
	}

	/**
	 * A planned failover: the primary is shut down cleanly (its WAL reaches the connected
	 * standbys first, so no acknowledged write is lost), the first standby is promoted, the
	 * other follows it, and the old primary is rebuilt as its standby. The router follows on
	 * its own; this only changes the servers.
	 */
	async #promote(oldPrimary: PostgresServer): Promise<Injected> {
		// A fast shutdown sends the last WAL to the standbys connected then; one that was just
		// restarted and is not streaming yet would miss it, and be left ahead of the promoted
		// one's fork point (diverged) or, promoted itself, lose acknowledged writes.
		await this.#waitUntilStreaming(oldPrimary);
		const [promoted, ...others] = this.standbys;
		await oldPrimary.stop('fast');
		try {
			await promoted.promote();
			for (const other of others) {
				await followOtherPrimary(other, promoted);
			}
		} catch (error) {
			// Half a failover: the cluster is no longer the one the schedule was made for.
			this.broken ??= new Error(`the soak could not finish promoting ${promoted.name}: ${(error as Error).message}`, {cause: error});
			throw error;
		}

		this.primary = promoted;
		this.standbys = [...others, oldPrimary];
		return {disables: [oldPrimary], primaryOut: true, primaryBackAt: this.#history.now(), heal: async () => rebuildAsStandby(oldPrimary, promoted)};
	}

	async #waitUntilStreaming(primary: PostgresServer, timeoutMs = 30_000): Promise<void> {
		const names = this.standbys.map(standby => standby.name);
		const deadline = Date.now() + timeoutMs;
		for (;;) {
			const {rows} = await withClient(primary, async client => client.query<{name: string}>('SELECT application_name AS name FROM pg_stat_replication WHERE state = \'streaming\''));
			if (names.every(name => rows.some(row => row.name === name))) {
				return;
			}

			if (Date.now() > deadline) {
				throw new Error(`not every standby streams from ${primary.name} after ${timeoutMs} ms (${rows.map(row => row.name).join(', ') || 'none'} do)`);
			}

			await delay(100);
		}
	}

	/** Where the writes are now; for the final check. */
	get cluster(): LocalCluster {
		return this.#cluster;
	}

	dispose(): void {
		if (this.partitions) {
			nft('delete', 'table', ...nftTable);
		}
	}
}

/** Resolves once a query through `bouncer` succeeds (within 10 s). */
async function answersThrough(bouncer: PgBouncer): Promise<void> {
	const deadline = Date.now() + 10_000;
	for (;;) {
		try {
			await withClient(bouncer, async client => client.query('SELECT 1'));
			return;
		} catch (error) {
			if (Date.now() > deadline) {
				throw error;
			}

			await delay(50);
		}
	}
}

/**
 * Checks that a partition is one: a connect to the port neither succeeds nor is refused
 * within 300 ms (its SYN is dropped), as it would be behind a dead network.
 */
async function assertSilent(port: number): Promise<void> {
	const outcome = await new Promise<string>(resolve => {
		const socket = net.connect(port, '127.0.0.1');
		const timer = setTimeout(() => {
			socket.destroy();
			resolve('silent');
		}, 300);
		socket.once('connect', () => {
			clearTimeout(timer);
			socket.destroy();
			resolve('connected');
		});
		socket.once('error', error => {
			clearTimeout(timer);
			resolve(error.message);
		});
	});
	if (outcome !== 'silent') {
		throw new Error(`the partition of port ${port} is not one: a connect got "${outcome}"`);
	}
}

/**
 * The system's nftables and iproute2 by absolute path: under `npm run`, PATH starts with
 * node_modules/.bin, where ava's dependency @vercel/nft installs an unrelated `nft` (a
 * file tracer) that exits 0 without touching the firewall.
 */
export const systemTools = {
	nft: ['/usr/sbin/nft', '/sbin/nft'].find(candidate => existsSync(candidate)),
	ip: ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find(candidate => existsSync(candidate)),
};

function nft(...args: string[]): void {
	if (!systemTools.nft) {
		throw new Error('nftables is not installed');
	}

	const result = spawnSync(systemTools.nft, args, {encoding: 'utf8'});
	if (result.status !== 0) {
		throw new Error(`\`nft ${args.join(' ')}\` failed: ${result.stderr || result.error?.message}`);
	}
}

/** Why partitions cannot be made here, or undefined when they can (root, nft and ip). */
export function partitionsUnavailable(): string | undefined {
	if (process.getuid?.() !== 0) {
		return 'not root (nftables rules in a network namespace need root)';
	}

	for (const [tool, found] of Object.entries(systemTools)) {
		if (!found) {
			return `no \`${tool}\` command in /usr/sbin or /sbin (Debian: apt-get install ${tool === 'nft' ? 'nftables' : 'iproute2'})`;
		}
	}

	return undefined;
}
