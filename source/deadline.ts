// Time limits for work on a replica that may hang: a frozen server accepts TCP connections
// and then never answers, so only a timer on our side ends the wait.
import {ReplicaTimeoutError} from './errors.js';
import type {PooledConnection} from './sequelize-internals.js';

/** Rejects with a `ReplicaTimeoutError` when `promise` has not settled within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
	let timer: NodeJS.Timeout | undefined;
	const deadline = new Promise<never>((_resolve, reject) => {
		timer = setTimeout(() => {
			reject(new ReplicaTimeoutError(`${what} timed out after ${ms} ms`));
		}, ms);
	});
	try {
		return await Promise.race([promise, deadline]);
	} finally {
		clearTimeout(timer);
	}
}

interface AbortableConnection extends PooledConnection {
	_invalid?: boolean;
	connection?: {stream?: {destroy(error?: Error): void}};
}

/**
 * Kills a connection whose query hangs: its socket is destroyed (the pending query then
 * fails with "Connection terminated") and the pool will not hand it out again.
 */
export function abortConnection(connection: PooledConnection): void {
	const abortable = connection as AbortableConnection;
	abortable._invalid = true;
	abortable.connection?.stream?.destroy();
}
