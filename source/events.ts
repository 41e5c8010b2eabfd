// The events a `MultiDb` emits, and the sink its parts emit them through (a part is handed
// the sink, not the router).
import type {SplitBrainReason} from './topology.js';

/** Events a `MultiDb` emits, for alerts and dashboards. */
export interface MultiDbEvents {
	/** Writes moved: `from` stopped being the primary (unreachable, or a standby now) and `to` answers as the primary on a newer `timeline`. */
	primaryChanged: [event: {from: string; to: string; timeline: number}];
	/** A node answers as a primary but does not take the writes, so it gets neither writes nor reads (once per episode; see the README's split-brain rules). */
	splitBrain: [event: {node: string; timeline: number | undefined; primary: string; primaryTimeline: number | undefined; reason: SplitBrainReason}];
	/** A probe of a replica failed (after one of its connections failed): it left rotation. `until` is its next probe. */
	replicaDown: [event: {replica: string; error: string; until: Date; failures: number}];
	/** Probes of a replica that was out of rotation answered: it is back. */
	replicaUp: [event: {replica: string}];
	/** A replica fell behind both lag thresholds, or was promoted: skipped until it is fine. */
	replicaLagging: [event: {replica: string; lagMs: number | undefined; lagBytes: number | undefined; promoted: boolean}];
	/** A lagging replica caught up and is back in rotation. */
	replicaCaughtUp: [event: {replica: string; lagMs: number | undefined; lagBytes: number | undefined}];
	/** No replica could serve a read; reads go to the primary until one can (once per episode). */
	fallbackToPrimary: [event: {reasons: Readonly<Record<string, string>>}];
}

export type EmitEvent = <Name extends keyof MultiDbEvents>(name: Name, ...payload: MultiDbEvents[Name]) => void;
