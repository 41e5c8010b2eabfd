// How a server of the cluster shows in `db.replicas` and `db.nodes`: where it is, what it
// answered, and whether it serves reads or takes the writes now.
import {formatLsn} from './lsn.js';
import type {Replica, ReplicaInfo} from './replica.js';

/** A replica's place and state, as `db.replicas` shows it. */
export interface ReplicaStatus extends ReplicaInfo {
	/**
	 * `healthy`: in rotation; `suspect`: one of its connections failed, a probe is deciding
	 * (skipped meanwhile); `quarantined`: a probe failed, out of rotation until one answers;
	 * `lagging`: behind both thresholds, or a standby still on an older timeline than the
	 * primary's after a failover; `promoted`: it answers as a primary but does not take
	 * the writes (see the split-brain rules); `primary`: it takes the writes (in `db.nodes`).
	 */
	readonly state: 'healthy' | 'suspect' | 'quarantined' | 'lagging' | 'promoted' | 'primary';
	/** While quarantined: when it is probed next (the earliest it can rejoin). */
	readonly quarantinedUntil: Date | undefined;
	/** Failed probes in a row (0 when healthy). */
	readonly failures: number;
	/** It went down again soon after rejoining (within `cooldownMs`): probed less often, it must keep answering for 5 s in a row to rejoin. */
	readonly flapping: boolean;
	readonly lastError: string | undefined;
	/** Last lag the monitor measured; undefined before its first probe. */
	readonly lagMs: number | undefined;
	readonly lagBytes: number | undefined;
	/** Last replay position read off the replica, as PostgreSQL prints it (`16/B374D848`). */
	readonly replayLsn: string | undefined;
	/** Its timeline as last read off the server; undefined before the monitor asked. */
	readonly timeline: number | undefined;
}

/** One server of the cluster, as `db.nodes` shows it. */
export interface NodeStatus extends ReplicaStatus {
	/** What it answered when last asked (`pg_is_in_recovery()`); a replica never asked is presumed a standby. */
	readonly role: 'primary' | 'standby';
	/** Writes go to it now. */
	readonly takesWrites: boolean;
	/** Listed in `replication.write` (otherwise in `replication.read`). */
	readonly configuredAs: 'primary' | 'replica';
}

export function replicaStatus(replica: Replica): ReplicaStatus {
	const health = replica.health;
	let state: ReplicaStatus['state'] = 'healthy';
	if (health.state === 'down') {
		state = 'quarantined';
	} else if (health.state === 'suspect') {
		state = 'suspect';
	} else if (replica.takesWrites) {
		state = 'primary';
	} else if (health.promoted) {
		state = 'promoted';
	} else if (health.lagging || health.behindTimeline) {
		state = 'lagging';
	}

	return {
		...replica.info(),
		state,
		quarantinedUntil: health.state === 'down' ? new Date(health.nextProbeAt) : undefined,
		failures: health.failures,
		flapping: health.flapping,
		lastError: health.lastError,
		lagMs: health.lagMs,
		lagBytes: health.lagBytes === undefined ? undefined : Number(health.lagBytes),
		replayLsn: health.replayLsn === undefined ? undefined : formatLsn(health.replayLsn),
		timeline: replica.timeline,
	};
}

export function nodeStatus(replica: Replica, configuredPrimary: Replica): NodeStatus {
	return {
		...replicaStatus(replica),
		role: replica.standby ? 'standby' : 'primary',
		takesWrites: replica.takesWrites,
		configuredAs: replica === configuredPrimary ? 'primary' : 'replica',
	};
}
