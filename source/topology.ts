// Which node takes the writes: a pure function of what each node answered in one round of
// the monitor, the node that took them so far, and its timeline. No I/O and no clock: the
// primary follower carries out the decision, and test/topology.ts checks it as a table.
//
// A promotion starts a new timeline (PostgreSQL numbers them 1, 2, 3, ...), so timelines
// order primaries in time: a node that answers as a primary on an older timeline than the
// last primary seen is an old primary that came back without being demoted, and any write
// it took would be lost. The rules, in order:
//
// 1. While the current primary answers as a primary (on a timeline no older than its last),
//    writes stay with it. Any other node answering as a primary gets nothing: it is an old
//    primary (older timeline), a twin (same timeline), or a replica promoted while the
//    primary still runs (newer timeline: detaching a replica by promoting it is routine,
//    e.g. RDS "promote read replica", and must not take the application's writes).
// 2. When the current primary does not answer, or answers as a standby (or on an older
//    timeline than its own last), writes move to the one node that answers as a primary on
//    the newest timeline, newer than the last primary's and no older than any standby's.
//    Two such nodes on the same newest timeline: nobody can tell which is right, so writes
//    stay where they are (and fail) and both are reported.
// 3. Following can be turned off (`followPrimary: false`): writes then stay with the
//    configured primary whatever the nodes answer, and the other rules only report.

/** What one node answered to the monitor's question this round. */
export interface RoleReport {
	/** It answered the question this round (a node out of read rotation is asked only while the primary does not answer). */
	readonly reachable: boolean;
	/** `pg_is_in_recovery()`: a standby. */
	readonly inRecovery?: boolean;
	/** A primary's current timeline; a standby's, as of its last restart point. */
	readonly timeline?: number;
}

/**
 * Why a node that answers as a primary gets neither writes nor reads:
 * `older-timeline`: an old primary restarted without being demoted;
 * `same-timeline`: two nodes claim the same, newest timeline;
 * `primary-answers`: it is on a newer timeline, but the current primary still answers (a
 * replica promoted to detach it, or a failover that did not fence the old primary);
 * `not-followed`: `followPrimary` is off.
 */
export type SplitBrainReason = 'older-timeline' | 'same-timeline' | 'primary-answers' | 'not-followed';

export type PrimaryDecision<Node> = {
	/** Where writes go from now on. */
	readonly primary: Node;
	/** Nodes answering as a primary that get nothing, and why. */
	readonly rogues: ReadonlyMap<Node, SplitBrainReason>;
} & (
	/** Writes stay; the primary's timeline, as far as known, is the floor for the next round. */
	| {readonly changed: false; readonly timeline: number | undefined}
	/** Writes move to `primary`, which answers on `timeline`. */
	| {readonly changed: true; readonly timeline: number}
);

/**
 * @param current The node that took the writes so far.
 * @param timeline Its timeline when it last answered as a primary (undefined: never seen).
 * @param follow Whether writes may move at all (`followPrimary`).
 */
export function decidePrimary<Node>(current: Node, timeline: number | undefined, reports: ReadonlyMap<Node, RoleReport>, follow: boolean): PrimaryDecision<Node> {
	const claims = [...reports].filter(([, report]) => report.reachable && report.inRecovery === false);
	const own = reports.get(current);
	const currentAnswers = own?.reachable === true && own.inRecovery === false && !isOlder(own.timeline, timeline);
	if (currentAnswers) {
		const primaryTimeline = maxDefined(timeline, own.timeline);
		return {primary: current, timeline: primaryTimeline, changed: false, rogues: rogues(claims, current, primaryTimeline, 'primary-answers')};
	}

	if (!follow) {
		return {primary: current, timeline, changed: false, rogues: rogues(claims, current, timeline, 'not-followed')};
	}

	const standbyTimeline = Math.max(-1, ...[...reports.values()].filter(report => report.reachable && report.inRecovery === true).map(report => report.timeline ?? -1));
	const floor = timeline ?? -1;
	const candidates = claims.filter(([node, report]) => node !== current && report.timeline !== undefined && report.timeline > floor && report.timeline >= standbyTimeline);
	const newest = Math.max(-1, ...candidates.map(([, report]) => report.timeline ?? -1));
	const winners = candidates.filter(([, report]) => report.timeline === newest);
	if (winners.length !== 1) {
		// None, or a tie nobody can break: writes stay (and fail until the current one answers).
		const reference = winners.length > 1 ? newest : maxDefined(timeline, standbyTimeline >= 0 ? standbyTimeline : undefined);
		return {primary: current, timeline, changed: false, rogues: rogues(claims, current, reference, 'primary-answers')};
	}

	const [winner] = winners[0];
	return {primary: winner, timeline: newest, changed: true, rogues: rogues(claims, winner, newest, 'primary-answers')};
}

/** Every node claiming to be a primary besides `primary`, and why it gets nothing. */
function rogues<Node>(claims: ReadonlyArray<[Node, RoleReport]>, primary: Node, primaryTimeline: number | undefined, whenNewer: SplitBrainReason): Map<Node, SplitBrainReason> {
	const result = new Map<Node, SplitBrainReason>();
	for (const [node, report] of claims) {
		if (node === primary) {
			continue;
		}

		if (report.timeline === undefined || primaryTimeline === undefined) {
			result.set(node, whenNewer);
		} else if (report.timeline < primaryTimeline) {
			result.set(node, 'older-timeline');
		} else {
			result.set(node, report.timeline === primaryTimeline ? 'same-timeline' : whenNewer);
		}
	}

	return result;
}

function isOlder(timeline: number | undefined, than: number | undefined): boolean {
	return timeline !== undefined && than !== undefined && timeline < than;
}

function maxDefined(a: number | undefined, b: number | undefined): number | undefined {
	if (a === undefined) {
		return b;
	}

	return b === undefined ? a : Math.max(a, b);
}
