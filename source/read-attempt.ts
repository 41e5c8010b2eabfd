// One attempt of one routed read: made by the installed query (failover.ts), carried in
// the query's own options to the read pool, which fills in where it runs and why.
import type {RoutingScope} from './context.js';
import {abortConnection} from './deadline.js';
import type {Replica} from './replica.js';
import type {PooledConnection} from './sequelize-internals.js';
import type {RouteReason} from './stats.js';

/** One attempt of one routed read: made by the installed query, filled in here. */
export interface ReadAttempt {
	/** How many nodes could take it: bounds its retries. */
	readonly nodeCount: number;
	readonly scope: RoutingScope | undefined;
	/** The query's SQL text, where the caller gave one (checked for row locks). */
	readonly sql: string | undefined;
	/** An earlier attempt reached a replica and wrote (25006): this one goes to the primary. */
	readonly misroutedWrite: boolean;
	/** The primary failed an earlier attempt that fell back to it: this one tries the replicas out of rotation. */
	readonly primaryFailed: boolean;
	/** Replicas that failed earlier attempts, and why. */
	readonly excluded: ReadonlyMap<Replica, string> | undefined;
	/** `getReplica().query`: exactly this replica. */
	readonly forcedReplica: Replica | undefined;
	/** The cluster's identity was asked for this read (to judge its tokens). */
	identityAsked: boolean;
	/** Why the read went where it did. */
	reason: RouteReason | undefined;
	/** The replica it runs on (only a read on a replica is retried elsewhere). */
	replica: Replica | undefined;
	/** The read timeout fired and cut the connection. */
	timedOut: boolean;
	/** While watched: when the read times out (epoch ms). */
	deadline: number;
	/** The connection the read runs on, to cut past its deadline (or, on the primary, after it failed). */
	connection: PooledConnection | undefined;
}

/** A read outlived `readTimeoutMs` (a frozen server): its connection is cut, and it fails over. */
export function readPastDeadline(attempt: ReadAttempt): void {
	attempt.timedOut = true;
	if (attempt.connection) {
		abortConnection(attempt.connection);
	}
}

/**
 * Notes on the attempt the primary connection its read runs on: if that connection dies
 * mid-read, the retry must not be handed the same one back from the pool before its close
 * is noticed.
 */
export function onPrimaryConnection(attempt: ReadAttempt): (connection: PooledConnection) => PooledConnection {
	return connection => {
		attempt.connection = connection;
		return connection;
	};
}
