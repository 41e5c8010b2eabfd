// Counts of routed queries: where each went and why. Counting is a couple of integer
// increments per query; snapshots are copies, so callers can keep and diff them.
import type {FailureKind} from './failure.js';

/** Why the router sent a query where it did. */
export type RouteReason =
	/** A read on a replica, the next in round-robin order. */
	| 'round-robin'
	/** A read on a replica, the next by smooth weighted round robin (`weights`). */
	| 'weighted'
	/** A read on the replica with the fewest reads in flight (`balance: 'least-outstanding'`). */
	| 'least-outstanding'
	/** A read on the replica its flow reads from (`affinity`, `withAffinity`). */
	| 'affinity'
	/** A read on the primary: its flow's replica left rotation, and no other replica was known to be as far along. */
	| 'affinity-lost'
	/** A read on the replica that `getReplica()` returned, through its `query()`. */
	| 'chosen-replica'
	/** A query inside a `readOnly` transaction, which runs on a replica. */
	| 'read-only-transaction'
	/** Not a read: an insert, update, delete, upsert, DDL, or a raw query not typed SELECT. */
	| 'write'
	/** A query inside a read-write transaction, which runs on the primary. */
	| 'transaction'
	/** `SELECT ... FOR UPDATE` / `FOR SHARE` (the `lock` option), which needs the primary. */
	| 'locking-read'
	/** A read in a pinned context: `usePrimaryDb`, `pin()`, or a request pinned by `pinning()`. */
	| 'pinned'
	/** A read whose caller passed Sequelize's own `useMaster: true`. */
	| 'use-master'
	/** A read on the primary because no replica is configured. */
	| 'no-replicas'
	/** A read on the primary because no replica could serve it (down, lagging, quarantined). */
	| 'fallback'
	/** A read on a replica out of rotation: none was in rotation, and the primary could not serve it (down, or `fallbackToPrimary` off). */
	| 'last-resort'
	/** A write that reached a replica (SQLSTATE 25006), retried once on the primary. */
	| 'misrouted-write'
	/** A read with a consistency requirement, on a replica that has replayed that far. */
	| 'caught-up'
	/** A read with a consistency requirement, on the primary: no replica had replayed that far. */
	| 'not-caught-up';

export interface RouteStats {
	/** Queries counted since `multidb()` was called. */
	readonly queries: number;
	/** Queries per target: `primary` and each replica by name. */
	readonly byTarget: Readonly<Record<string, number>>;
	/** Queries per reason. */
	readonly byReason: Readonly<Partial<Record<RouteReason, number>>>;
	/** Reads retried elsewhere, per kind of failure on the replica. */
	readonly failovers: Readonly<Partial<Record<FailureKind, number>>>;
	/** Reads inside `useReplicas(group)`, per group (wherever they ran). */
	readonly byGroup: Readonly<Record<string, number>>;
}

/** Told of each count as it happens (the observer of observer.ts is one). */
export interface StatsListener {
	/** A query finished (or failed) on `target` (`primary` or a replica's name), sent there for `reason`. */
	routed(target: string, reason: RouteReason): void;
	/** A read left `from` (`primary` or a replica's name) after a failure of this kind, to be tried elsewhere. */
	failedOver(kind: FailureKind, from: string): void;
}

export class StatsRecorder {
	#queries = 0;
	readonly #byTarget = new Map<string, number>();
	readonly #byReason = new Map<RouteReason, number>();
	readonly #failovers = new Map<FailureKind, number>();
	readonly #byGroup = new Map<string, number>();
	/** Told of every count as it happens (`sequelize-multidb/opentelemetry`); undefined costs nothing. */
	observer: StatsListener | undefined;

	constructor(targets: readonly string[]) {
		for (const target of targets) {
			this.#byTarget.set(target, 0);
		}
	}

	record(target: string, reason: RouteReason): void {
		this.#queries++;
		this.#byTarget.set(target, (this.#byTarget.get(target) ?? 0) + 1);
		this.#byReason.set(reason, (this.#byReason.get(reason) ?? 0) + 1);
		this.observer?.routed(target, reason);
	}

	group(name: string): void {
		this.#byGroup.set(name, (this.#byGroup.get(name) ?? 0) + 1);
	}

	/** A read left `from` (`primary` or a replica's name) after a failure of this kind. */
	failover(kind: FailureKind, from: string): void {
		this.#failovers.set(kind, (this.#failovers.get(kind) ?? 0) + 1);
		this.observer?.failedOver(kind, from);
	}

	snapshot(): RouteStats {
		return {
			queries: this.#queries,
			byTarget: Object.fromEntries(this.#byTarget),
			byReason: Object.fromEntries(this.#byReason),
			failovers: Object.fromEntries(this.#failovers),
			byGroup: Object.fromEntries(this.#byGroup),
		};
	}
}
