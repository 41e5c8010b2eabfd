// Which failures of a replica the router handles, read off the errors of node-postgres and
// Sequelize.

/**
 * What went wrong with a read on a replica, when it is something the router handles:
 * - `connection`: the replica refused, dropped or timed out a connection, or is shutting
 *   down; the read is retried elsewhere, and a probe decides whether the server is down.
 * - `timeout`: the read outlived `readTimeoutMs` (a frozen server); same as `connection`.
 * - `conflict`: a hot-standby recovery conflict canceled the read; retried elsewhere, the
 *   replica stays in rotation.
 * - `read-only`: a write reached a replica (a data-modifying CTE typed as a SELECT);
 *   retried once on the primary.
 * Anything else is the caller's error, passed through unchanged.
 */
export type FailureKind = 'connection' | 'timeout' | 'conflict' | 'read-only';

/** Socket-level error codes of a connection that failed or went away. */
const connectionErrorCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * SQLSTATEs of a server going away: 57P01 admin shutdown, 57P02 crash shutdown, 57P03
 * cannot connect now (starting up, or a standby not yet consistent). Class 08 is
 * "connection exception".
 */
const shutdownStates = new Set(['57P01', '57P02', '57P03']);

/** node-postgres reports these without a `code`. */
const connectionMessages = /Connection terminated|connection timeout|timeout expired|Client has encountered a connection error|not queryable|the database system is (?:starting up|shutting down|in recovery mode)/i;

interface ErrorLike {
	code?: unknown;
	message?: unknown;
	name?: unknown;
	parent?: unknown;
	original?: unknown;
	cause?: unknown;
}

/** Sequelize wraps the driver's error (`parent`/`original`); pg sometimes uses `cause`. */
function* errorChain(error: unknown): Generator<ErrorLike> {
	const seen = new Set<unknown>();
	let current: unknown = error;
	while (typeof current === 'object' && current !== null && !seen.has(current)) {
		seen.add(current);
		const candidate = current as ErrorLike;
		yield candidate;
		current = candidate.parent ?? candidate.original ?? candidate.cause;
	}
}

export function classifyFailure(error: unknown): FailureKind | undefined {
	for (const link of errorChain(error)) {
		const code = typeof link.code === 'string' ? link.code : undefined;
		if (code === 'MULTIDB_REPLICA_TIMEOUT') {
			return 'timeout';
		}

		if (code === '25006') {
			return 'read-only';
		}

		// On a hot standby, 40001 is "canceling statement due to conflict with recovery".
		// (It is also a serialization failure, but only reads outside transactions are
		// retried, and those never serialize.)
		if (code === '40001') {
			return 'conflict';
		}

		if (code && (connectionErrorCodes.has(code) || shutdownStates.has(code) || code.startsWith('08'))) {
			return 'connection';
		}

		if (typeof link.message === 'string' && connectionMessages.test(link.message)) {
			return 'connection';
		}

		// Sequelize's own wrappers of connect failures.
		if (typeof link.name === 'string' && /^Sequelize(?:Connection\w*|HostNotFound|HostNotReachable|InvalidConnection)Error$/.test(link.name)) {
			return 'connection';
		}
	}

	return undefined;
}

/**
 * Whether getting a connection failed for a reason of the server's: it refused, dropped,
 * or did not finish the connect in time (behind PgBouncer, Sequelize's set-up query can
 * hang on a frozen server). Nothing of the read was sent, so another server can take it.
 */
export function isConnectFailure(error: unknown): boolean {
	const kind = classifyFailure(error);
	return kind === 'connection' || kind === 'timeout';
}

/** The message of the innermost error, for status displays and events. */
export function describeFailure(error: unknown): string {
	let message = 'unknown error';
	for (const link of errorChain(error)) {
		if (typeof link.message === 'string' && link.message.length > 0) {
			message = link.message;
		}
	}

	return message;
}
