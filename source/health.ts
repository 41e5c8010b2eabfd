// One replica's health: in rotation or not, decided by probes of the server rather than by
// the error of one connection (rule 10), plus the lag the monitor measured.
//
//   up ──(a connection failed)──> suspect ──(probe answers)──> up
//                                    └────(probe fails)──────> down ──(probes answer)──> up
//
// A terminated backend, a reset, a pooler dropping a connection: one connection died, not
// necessarily the server. The replica is skipped while a probe (a fresh connection that must
// answer `SELECT 1`) decides; only a failed probe takes it out of rotation. Out of rotation,
// it is probed again on a short back-off and rejoins when it answers. A replica that goes
// down again soon after rejoining is flapping: it is probed less often while down, and once
// it answers it must keep answering, probed every half second, for 5 s in a row before it
// serves reads again (a few answered probes could all fall in the up phases of a server
// that restarts every second).
import {describeFailure} from './failure.js';

/** Probe back-off while down: the first retry after this, doubling per failed probe. */
export const firstProbeDelayMs = 200;
/** The back-off's cap: a server that is back serves reads within about this much. */
export const maxProbeDelayMs = 1000;
/** The cap for a flapping replica. */
export const maxFlappingProbeDelayMs = 5000;
/** How long a flapping replica must keep answering before it rejoins (one answer otherwise)... */
export const flappingStableMs = 5000;
/** ...probed this often meanwhile (±20 % jitter), so that a short outage is seen. */
export const flappingProbeIntervalMs = 500;

export type HealthState = 'up' | 'suspect' | 'down';

/** What others may read of a replica's health. */
export type HealthView = Readonly<Pick<ReplicaHealth, 'state' | 'promoted' | 'lagging' | 'behindTimeline' | 'failures' | 'flapping' | 'lastError' | 'nextProbeAt' | 'lagMs' | 'lagBytes' | 'replayLsn'>>;

export interface HealthChange {
	/** The replica left rotation now (a probe failed after it was in rotation). */
	readonly wentDown?: boolean;
	/** The replica rejoined rotation now. */
	readonly cameBack?: boolean;
}

export class ReplicaHealth {
	#state: HealthState = 'up';
	/** Failed probes of the current episode, carried over into the next while flapping. */
	#failedProbes = 0;
	/** While down and flapping: since when every probe has answered. */
	#answeringSince: number | undefined;
	#flapping = false;
	#nextProbeAt = 0;
	#rejoinedAt = Number.NEGATIVE_INFINITY;
	#lastError: string | undefined;
	/** Set by the monitor: behind more than both lag thresholds. */
	lagging = false;
	/**
	 * Set by the monitor: a standby not seen on the primary's timeline yet. After a
	 * failover it either has not switched to the new primary yet, or it replayed writes the
	 * new primary never had (it diverged): either way its replay position proves nothing.
	 */
	behindTimeline = false;
	lagMs: number | undefined;
	lagBytes: bigint | undefined;
	replayLsn: bigint | undefined;
	/** When a replay position was last read off the replica (epoch ms): `replayLsn` is at least what it had replayed then. */
	replayReadAt = 0;
	/** The server is no longer a standby (it was promoted): it must not serve reads. */
	promoted = false;
	/** When a direct question last found it caught up with a fresh write (epoch ms). */
	lastCaughtUpAt = 0;

	/**
	 * @param flapWindowMs A replica that goes down again within this long of rejoining is
	 * flapping (`cooldownMs`).
	 * @param random The jitter's source, in [0, 1).
	 */
	constructor(readonly flapWindowMs: number, readonly random: () => number = Math.random) {}

	get state(): HealthState {
		return this.#state;
	}

	/** Failed probes in a row (0 when in rotation). */
	get failures(): number {
		return this.#state === 'up' ? 0 : this.#failedProbes;
	}

	get lastError(): string | undefined {
		return this.#lastError;
	}

	/** While down: when the next probe is due (epoch ms). */
	get nextProbeAt(): number {
		return this.#nextProbeAt;
	}

	get flapping(): boolean {
		return this.#flapping;
	}

	/** In rotation: up, not lagging, still a standby. */
	isUsable(): boolean {
		return this.#state === 'up' && !this.lagging && !this.promoted && !this.behindTimeline;
	}

	/**
	 * A connection to the replica failed (on a read, at connect, or the monitor's). Returns
	 * whether to probe the server now: only when it was up (a probe is already due otherwise,
	 * so the failures of every read in flight on a dying server make one incident).
	 */
	connectionFailed(error: unknown): boolean {
		this.#lastError = describeFailure(error);
		if (this.#state !== 'up') {
			return false;
		}

		this.#state = 'suspect';
		return true;
	}

	/** A probe found the server unreachable or not answering. */
	probeFailed(error: unknown, now = Date.now()): HealthChange {
		this.#lastError = describeFailure(error);
		const wentDown = this.#state !== 'down';
		if (wentDown) {
			this.#state = 'down';
			this.#flapping = now - this.#rejoinedAt < this.flapWindowMs;
			if (!this.#flapping) {
				this.#failedProbes = 0;
			}
		}

		this.#failedProbes++;
		this.#answeringSince = undefined;
		this.#nextProbeAt = now + this.#jittered(this.#backoff());
		return {wentDown};
	}

	/** A probe found the server answering. */
	probeSucceeded(now = Date.now()): HealthChange {
		if (this.#state === 'suspect') {
			// One connection died, the server did not: it never left rotation.
			this.#state = 'up';
			this.#lastError = undefined;
			return {};
		}

		if (this.#state === 'up') {
			return {};
		}

		this.#answeringSince ??= now;
		if (this.#flapping && now - this.#answeringSince < flappingStableMs) {
			this.#nextProbeAt = now + this.#jittered(flappingProbeIntervalMs);
			return {};
		}

		this.#state = 'up';
		this.#rejoinedAt = now;
		this.#lastError = undefined;
		this.#answeringSince = undefined;
		return {cameBack: true};
	}

	/** Notes a replay position read off the replica; positions only move forward. */
	replayed(lsn: bigint, now = Date.now()): void {
		this.replayReadAt = now;
		if (this.replayLsn === undefined || lsn > this.replayLsn) {
			this.replayLsn = lsn;
		}
	}

	/** The replica is known to have replayed the WAL up to `lsn`. */
	hasReplayed(lsn: bigint): boolean {
		return this.replayLsn !== undefined && this.replayLsn >= lsn;
	}

	/** Doubling from `firstProbeDelayMs` per failed probe, capped. */
	#backoff(): number {
		const cap = this.#flapping ? maxFlappingProbeDelayMs : maxProbeDelayMs;
		return Math.min(firstProbeDelayMs * (2 ** Math.min(this.#failedProbes - 1, 16)), cap);
	}

	/** ±20 %, so the processes of a fleet do not probe in lockstep. */
	#jittered(delayMs: number): number {
		return Math.round(delayMs * (0.8 + (this.random() * 0.4)));
	}
}
