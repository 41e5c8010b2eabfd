// Request affinity: a flow (a request under `pinning()`, a `withAffinity()` scope) reads
// each database from one replica, picked at its first read by the balancer (so flows take
// turns), so its reads never go back in time. When that replica leaves rotation, the flow
// may move only to a replica known to have replayed everything the flow could have seen
// there; otherwise the primary, which is ahead of every replica, serves the rest of it.
//
// What the flow could have seen is bounded from above by any reading taken after its last
// read completed: the lost replica's own replay position read later (by the monitor or a
// catch-up question), or the primary's WAL position read later (by the monitor). A replica
// known to have replayed that far has everything the flow saw.
import {marksOf, type DatabaseMarks, type RoutingScope} from './context.js';
import type {Balancer} from './balancer.js';
import type {Replica} from './replica.js';
import {isEligible, type Eligibility} from './routing-policy.js';

export interface AffinityOptions {
	/** The router's `affinity` option: every flow has affinity (else only `withAffinity` scopes). */
	readonly always: boolean;
	readonly router: object;
	readonly balancer: Balancer;
	/** The primary's WAL position as first read after `since` (epoch ms), if the monitor has one. */
	readonly primaryPositionSince: (since: number) => bigint | undefined;
}

/** Where a flow's read goes: its replica, the primary (`lost`), or wherever reads go (`unbound`: no replica chosen yet and none eligible). */
export type AffinityChoice = Replica | 'lost' | 'unbound';

export class Affinity {
	readonly #options: AffinityOptions;

	constructor(options: AffinityOptions) {
		this.#options = options;
	}

	/** The flow's marks for this router where the read has affinity; undefined where it has none. */
	marksFor(scope: RoutingScope | undefined): DatabaseMarks | undefined {
		return scope?.flow && (this.#options.always || scope.affinity === true) ? marksOf(scope.flow, this.#options.router) : undefined;
	}

	/** The replica for the flow's next read, chosen or kept; sets it on `marks`. */
	choose(marks: DatabaseMarks, eligibility: Eligibility<Replica>): AffinityChoice {
		const {excluded, minLsn, allowed} = eligibility;
		const current = marks.replica as Replica | undefined;
		if (current && isEligible(current, excluded, minLsn, allowed)) {
			return current;
		}

		const {balancer} = this.#options;
		let next: Replica | undefined;
		if (!current || marks.replicaSeenAt === undefined) {
			// No read of the flow has completed on a replica yet: nothing to stay ahead of.
			next = balancer.next(excluded, minLsn, allowed);
		} else {
			const bound = this.#seenAtMost(current, marks.replicaSeenAt);
			if (bound === undefined) {
				return 'lost';
			}

			next = balancer.next(new Map(excluded).set(current, 'left rotation'), minLsn === undefined || bound > minLsn ? bound : minLsn, allowed);
			if (!next) {
				return 'lost';
			}
		}

		if (!next) {
			return 'unbound';
		}

		marks.replica = next;
		return next;
	}

	/**
	 * The flow's replica for a `readOnly` transaction in a flow with affinity, if it has one in
	 * rotation. What the transaction sees there is bounded by no reading, so should that
	 * replica leave rotation later, the flow goes to the primary.
	 */
	replicaForTransaction(scope: RoutingScope | undefined): Replica | undefined {
		const marks = this.marksFor(scope);
		const replica = marks?.replica as Replica | undefined;
		if (!marks || !replica?.usable) {
			return undefined;
		}

		this.saw(marks, Number.POSITIVE_INFINITY);
		return replica;
	}

	/** A read completed on `replica`: where it is the flow's replica, what the flow has seen there now includes it. */
	readCompleted(scope: RoutingScope | undefined, replica: Replica): void {
		const marks = this.marksFor(scope);
		if (marks?.replica === replica) {
			this.saw(marks);
		}
	}

	/** What the flow saw on its replica goes up to now (or, for a transaction, `Infinity`: nothing bounds what it sees). */
	saw(marks: DatabaseMarks, at = Date.now()): void {
		marks.replicaSeenAt = Math.max(marks.replicaSeenAt ?? 0, at);
	}

	/** An upper bound of what the flow can have seen on `replica`, from readings taken after `seenAt`. */
	#seenAtMost(replica: Replica, seenAt: number): bigint | undefined {
		const own = replica.replayReadAt > seenAt ? replica.replayLsn : undefined;
		const primary = this.#options.primaryPositionSince(seenAt);
		if (own === undefined || primary === undefined) {
			return own ?? primary;
		}

		return own < primary ? own : primary;
	}
}
