// Which replica a read takes among those it may use: plain round robin (the default, and
// the fast path), smooth weighted round robin (`weights`), or least outstanding requests
// (`balance: 'least-outstanding'`). The choices themselves are pure (routing-policy.ts);
// this holds their state: the cursor, the weighted scores, and reads in flight.
import type {Replica} from './replica.js';
import {pickLeastOutstanding, pickReplica, pickWeighted, type Eligibility} from './routing-policy.js';
import type {PooledConnection} from './sequelize-internals.js';
import type {RouteReason} from './stats.js';

export interface BalancerOptions {
	readonly policy: 'round-robin' | 'least-outstanding';
	/** Weights by replica name; unlisted replicas weigh 1. */
	readonly weights: Readonly<Record<string, number>>;
}

export class Balancer {
	readonly replicas: readonly Replica[];
	/** The reason a read taken by this balancer is counted under. */
	readonly reason: RouteReason;
	/** Reads in flight are counted (least outstanding needs them). */
	readonly countsInFlight: boolean;
	readonly #policy: BalancerOptions['policy'];
	/** By position; undefined when all weigh the same (plain round robin). */
	readonly #weights: readonly number[] | undefined;
	/** Smooth weighted round robin's running scores, by position. */
	readonly #scores: number[];
	/** Connections whose read is counted in its replica's `inFlight` until released. */
	readonly #counted = new WeakSet<PooledConnection>();
	#cursor = 0;

	constructor(replicas: readonly Replica[], {policy, weights}: BalancerOptions) {
		this.replicas = replicas;
		this.#policy = policy;
		const byPosition = replicas.map(replica => weights[replica.name] ?? 1);
		this.#weights = byPosition.every(weight => weight === 1) ? undefined : byPosition;
		this.#scores = replicas.map(() => 0);
		this.countsInFlight = policy === 'least-outstanding';
		this.reason = this.countsInFlight ? 'least-outstanding' : (this.#weights ? 'weighted' : 'round-robin');
	}

	/** The replica for the next read, or undefined where none qualifies. */
	next(excluded: ReadonlyMap<Replica, unknown> | undefined, minLsn: bigint | undefined, allowed?: ReadonlySet<Replica>): Replica | undefined {
		let index: number;
		if (this.#policy === 'least-outstanding') {
			index = pickLeastOutstanding(this.replicas, this.#cursor, inFlightOf, this.#weights, {excluded, minLsn, allowed});
		} else if (this.#weights) {
			return this.replicas[pickWeighted(this.replicas, this.#scores, this.#weights, {excluded, minLsn, allowed} satisfies Eligibility<Replica>)];
		} else {
			index = pickReplica(this.replicas, this.#cursor, excluded, minLsn, allowed);
		}

		if (index < 0) {
			return undefined;
		}

		this.#cursor = (index + 1) % this.replicas.length;
		return this.replicas[index];
	}

	/** The next node in turn that does not take the writes, usable or not (`getReplica()`). */
	nextInTurn(): Replica {
		let replica: Replica;
		do {
			replica = this.replicas[this.#cursor];
			this.#cursor = (this.#cursor + 1) % this.replicas.length;
		} while (replica.takesWrites);

		return replica;
	}

	/** A read starts on `replica` over `connection`. */
	started(replica: Replica, connection: PooledConnection): void {
		if (this.countsInFlight) {
			replica.inFlight++;
			this.#counted.add(connection);
		}
	}

	/** `connection` went back to its pool (or was destroyed): its read is over. */
	finished(replica: Replica, connection: PooledConnection): void {
		if (this.countsInFlight && this.#counted.delete(connection)) {
			replica.inFlight--;
		}
	}
}

function inFlightOf(replica: Replica): number {
	return replica.inFlight;
}
