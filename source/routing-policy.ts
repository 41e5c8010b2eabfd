// Where a read goes: a pure function of what the caller's scope asks, what the query is,
// and what is known of the replicas. No I/O and no clock: the read pool carries out the
// decision, and test/routing-policy.ts checks it as a table.
import type {RouteReason} from './stats.js';

/** What the scope and the query ask of one read. */
export interface ReadFacts {
	/** Reads of this database go to the primary here (`usePrimaryDb`, a pin, a write in the flow). */
	readonly pinned: boolean;
	/** The WAL position the read must see (an LSN pin, a token), or `primary` where that cannot be judged. */
	readonly required: bigint | 'primary' | undefined;
	/** `SELECT ... FOR UPDATE/SHARE`: a replica would refuse it, and a lock there protects nothing. */
	readonly locking: boolean;
	/** An earlier attempt of this query reached a replica and turned out to write (25006). */
	readonly misroutedWrite: boolean;
	/** A `readOnly` transaction: one connection for all its queries. */
	readonly transaction: boolean;
}

/** What the policy needs to know of a replica. */
export interface Candidate {
	/** In rotation: up, not lagging, still a standby. */
	readonly usable: boolean;
	/** The replica is known to have replayed the WAL up to `lsn`. */
	hasReplayed(lsn: bigint): boolean;
}

/** What one read allows: which replicas it may use. */
export interface Eligibility<Replica> {
	/** Replicas that failed earlier attempts of the same read. */
	readonly excluded?: ReadonlyMap<Replica, unknown>;
	/** A WAL position the replica must be known to have replayed. */
	readonly minLsn?: bigint;
	/** The replica group the read is confined to (`useReplicas`); undefined: any replica. */
	readonly allowed?: ReadonlySet<Replica>;
}

/** Positional rather than an `Eligibility` object: plain round robin calls it per read, allocation-free. */
export function isEligible<Replica extends Candidate>(replica: Replica, excluded: ReadonlyMap<Replica, unknown> | undefined, minLsn: bigint | undefined, allowed: ReadonlySet<Replica> | undefined): boolean {
	return replica.usable && !excluded?.has(replica) && (minLsn === undefined || replica.hasReplayed(minLsn)) && (allowed === undefined || allowed.has(replica));
}

export type ReadDecision =
	/** The primary takes the read. */
	| {readonly target: 'primary'; readonly reason: RouteReason}
	/** The replicas take it: `pickReplica` chooses which, needing `minLsn` replayed where given. */
	| {readonly target: 'replicas'; readonly reason: RouteReason; readonly minLsn?: bigint};

const toPrimary = (reason: RouteReason): ReadDecision => Object.freeze({target: 'primary', reason});
const decisions = {
	misroutedWrite: toPrimary('misrouted-write'),
	locking: toPrimary('locking-read'),
	pinned: toPrimary('pinned'),
	roundRobin: Object.freeze({target: 'replicas', reason: 'round-robin'}),
	transaction: Object.freeze({target: 'replicas', reason: 'read-only-transaction'}),
} as const satisfies Record<string, ReadDecision>;

/** Primary or replicas, and why. The common case allocates nothing. */
export function decideRead(facts: ReadFacts): ReadDecision {
	if (facts.misroutedWrite) {
		return decisions.misroutedWrite;
	}

	if (facts.locking) {
		return decisions.locking;
	}

	if (facts.pinned || facts.required === 'primary') {
		return decisions.pinned;
	}

	if (facts.required !== undefined) {
		// A read-only transaction would need one replica caught up for all its queries, known
		// before its first: the primary is the simple, safe answer.
		return facts.transaction ? decisions.pinned : {target: 'replicas', reason: 'caught-up', minLsn: facts.required};
	}

	return facts.transaction ? decisions.transaction : decisions.roundRobin;
}

/**
 * The index of the next usable replica in round-robin order from `cursor`, skipping
 * `excluded` ones (failed earlier attempts of the same read) and, given `minLsn`, those not
 * known to have replayed that far; -1 when none qualifies.
 */
export function pickReplica<Replica extends Candidate>(replicas: readonly Replica[], cursor: number, excluded: ReadonlyMap<Replica, unknown> | undefined, minLsn: bigint | undefined, allowed?: ReadonlySet<Replica>): number {
	const count = replicas.length;
	for (let step = 0; step < count; step++) {
		const index = (cursor + step) % count;
		const replica = replicas[index];
		if (isEligible(replica, excluded, minLsn, allowed)) {
			return index;
		}
	}

	return -1;
}

/**
 * Smooth weighted round robin (as nginx balances upstreams): each pick adds every eligible
 * replica's weight to its score, takes the highest score, and takes the eligible weights'
 * total off the winner. Weights 2:1 give A B A A B A ..., never a burst to one replica, and
 * a replica leaving or rejoining rotation shifts the shares at once. `scores` is the
 * balancer's state, updated in place. -1 when none is eligible.
 */
export function pickWeighted<Replica extends Candidate>(replicas: readonly Replica[], scores: number[], weights: readonly number[], {excluded, minLsn, allowed}: Eligibility<Replica>): number {
	let best = -1;
	let total = 0;
	for (const [index, replica] of replicas.entries()) {
		if (isEligible(replica, excluded, minLsn, allowed)) {
			scores[index] += weights[index];
			total += weights[index];
			if (best < 0 || scores[index] > scores[best]) {
				best = index;
			}
		}
	}

	if (best >= 0) {
		scores[best] -= total;
	}

	return best;
}

/**
 * Least outstanding requests (HAProxy's `leastconn`, Envoy's least request): the eligible
 * replica with the fewest reads in flight per unit of weight; ties go to the first from
 * `cursor`, so equal replicas still take turns. -1 when none is eligible.
 */
export function pickLeastOutstanding<Replica extends Candidate>(replicas: readonly Replica[], cursor: number, inFlight: (replica: Replica) => number, weights: readonly number[] | undefined, {excluded, minLsn, allowed}: Eligibility<Replica>): number {
	const count = replicas.length;
	let best = -1;
	let bestLoad = Number.POSITIVE_INFINITY;
	for (let step = 0; step < count; step++) {
		const index = (cursor + step) % count;
		const replica = replicas[index];
		if (isEligible(replica, excluded, minLsn, allowed)) {
			const load = inFlight(replica) / (weights?.[index] ?? 1);
			if (load < bestLoad) {
				best = index;
				bestLoad = load;
			}
		}
	}

	return best;
}

/** Where a replica out of rotation stands for a read's last resort: up (lagging) first, then suspect, then down. */
export interface LastResortCandidate {
	readonly state: 'up' | 'suspect' | 'down';
	readonly promoted: boolean;
	readonly failures: number;
}

const lastResortRank = {up: 0, suspect: 1, down: 2} as const;

/**
 * The replicas to try, in order, when no replica is in rotation and the primary cannot take
 * a read: every one not promoted and not already failed by this read, the likeliest to
 * answer first (lagging ones answer, if late; then suspect; then down, fewest failed probes first).
 */
export function lastResortOrder<Replica extends LastResortCandidate>(replicas: readonly Replica[], excluded: ReadonlyMap<Replica, unknown> | undefined, allowed?: ReadonlySet<Replica>): Replica[] {
	return replicas
		.filter(replica => !replica.promoted && !excluded?.has(replica) && (allowed === undefined || allowed.has(replica)))
		.sort((a, b) => (lastResortRank[a.state] - lastResortRank[b.state]) || (a.failures - b.failures));
}
