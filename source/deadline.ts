// Time limits for work on a replica that may hang: a frozen server accepts TCP connections
// and then never answers, so only a timer on our side ends the wait.
import {ReplicaTimeoutError} from './errors.js';
import type {ClientConnection, ConnectionConfig, ConnectionManagerInternals, PooledConnection} from './sequelize-internals.js';

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

/** One watched read: it expires at `deadline` (epoch ms) unless `done()` comes first. */
export interface WatchedRead {
	deadline: number;
}

/**
 * Deadlines of reads in flight, swept by one timer instead of a timer per read (a timer per
 * read costs more than the rest of the router's work on a fast query). A read is caught
 * between `timeoutMs` and `timeoutMs` plus a quarter of it after it started.
 */
export class ReadDeadlines<Read extends WatchedRead> {
	readonly #reads = new Set<Read>();
	readonly #sweepMs: number;
	readonly #onExpire: (read: Read) => void;
	#timer: NodeJS.Timeout | undefined;

	/** @param onExpire Called once for a read past its deadline (the read itself is the watched item: nothing is allocated per read). */
	constructor(readonly timeoutMs: number, onExpire: (read: Read) => void) {
		this.#sweepMs = Math.min(1000, Math.max(20, Math.round(timeoutMs / 4)));
		this.#onExpire = onExpire;
	}

	watch(read: Read): void {
		read.deadline = Date.now() + this.timeoutMs;
		this.#reads.add(read);
		if (!this.#timer) {
			this.#timer = setInterval(() => {
				this.#sweep();
			}, this.#sweepMs);
			// Never keep the process alive for the sweep's sake.
			this.#timer.unref();
		}
	}

	done(read: Read): void {
		this.#reads.delete(read);
	}

	stop(): void {
		clearInterval(this.#timer);
		this.#timer = undefined;
		this.#reads.clear();
	}

	#sweep(): void {
		if (this.#reads.size === 0) {
			clearInterval(this.#timer);
			this.#timer = undefined;
			return;
		}

		const now = Date.now();
		for (const read of this.#reads) {
			if (read.deadline <= now) {
				this.#reads.delete(read);
				this.#onExpire(read);
			}
		}
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

/**
 * Runs `sql` on a connection of the router's own (a probe's, the monitor's, a catch-up
 * question's) within `timeoutMs`, and resolves its first row. A connection whose query fails
 * or hangs is cut, so it is never used again.
 */
export async function queryWithin(connection: ClientConnection, sql: string, timeoutMs: number, what: string): Promise<Record<string, unknown> | undefined> {
	try {
		const result = await withTimeout(connection.query(sql), timeoutMs, what);
		return result.rows[0];
	} catch (error) {
		abortConnection(connection);
		throw error;
	}
}

/**
 * Sequelize's connect (`_connect`, hooks included) within `timeoutMs`, or undefined for no
 * limit. node-postgres's own connect timeout covers its handshake only: behind PgBouncer,
 * PgBouncer answers that at once, and Sequelize's set-up query then waits in PgBouncer's queue
 * for a server that may be dead or frozen. A connection that arrives after the limit is cut.
 */
export async function connectWithin(manager: ConnectionManagerInternals, config: ConnectionConfig, timeoutMs: number | undefined, what: string): Promise<PooledConnection> {
	const connecting = manager._connect(config);
	if (timeoutMs === undefined) {
		return connecting;
	}

	return withTimeout(connecting, timeoutMs, what).catch((error: unknown) => {
		void connecting.then(abortConnection, () => undefined);
		throw error;
	});
}
