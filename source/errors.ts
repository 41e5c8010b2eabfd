// Errors this package throws. Each has a stable `code` (listed in the README) so callers
// can branch on it without parsing messages.

export type MultiDbErrorCode =
	| 'MULTIDB_NO_REPLICAS'
	| 'MULTIDB_NO_REPLICA_AVAILABLE'
	| 'MULTIDB_REPLICA_TIMEOUT'
	| 'MULTIDB_BAD_TOKEN'
	| 'MULTIDB_CLOSED';

export class MultiDbError extends Error {
	override name = 'MultiDbError';

	constructor(readonly code: MultiDbErrorCode, message: string, options?: ErrorOptions) {
		super(message, options);
	}
}

/**
 * No replica could serve a read and `fallbackToPrimary` is off. `failures` says what
 * happened to each replica tried, by name.
 */
export class NoReplicaAvailableError extends MultiDbError {
	override name = 'NoReplicaAvailableError';

	/** @param primaryFailed The read fell back to the primary, which failed it too (else `fallbackToPrimary` is off). */
	constructor(readonly failures: Readonly<Record<string, string>>, options?: ErrorOptions & {primaryFailed?: boolean}) {
		const tried = Object.entries(failures).map(([name, reason]) => `${name}: ${reason}`).join('; ');
		const primary = options?.primaryFailed ? 'the primary failed it too' : 'fallbackToPrimary is off';
		super('MULTIDB_NO_REPLICA_AVAILABLE', `No replica can serve this read and ${primary}${tried ? ` (${tried})` : ''}`, options);
	}
}

/** A read or a probe on a replica outlived its time limit (`readTimeoutMs`). */
export class ReplicaTimeoutError extends MultiDbError {
	override name = 'ReplicaTimeoutError';

	constructor(message: string) {
		super('MULTIDB_REPLICA_TIMEOUT', message);
	}
}

/** Codes of the process warnings (`process.emitWarning`) this package emits. */
export const warningCodes = {
	noReplicas: 'MULTIDB_NO_REPLICAS',
	notInstalled: 'MULTIDB_NOT_INSTALLED',
	dbWriteWithoutPinning: 'MULTIDB_DBWRITE_WITHOUT_PINNING',
	splitBrain: 'MULTIDB_SPLIT_BRAIN',
} as const;

export const warningType = 'SequelizeMultiDbWarning';

// Codes already warned about in this process, shared by both builds (like the routing context).
const warnedKey = Symbol.for('sequelize-multidb.warned.v1');
type GlobalWithWarned = typeof globalThis & {[warnedKey]?: Set<string>};
const warned = (globalThis as GlobalWithWarned)[warnedKey] ??= new Set<string>();

/** Emits a process warning the first time its code comes up in this process, and never again. */
export function warnOnce(code: string, message: string): void {
	if (!warned.has(code)) {
		warned.add(code);
		process.emitWarning(message, {type: warningType, code});
	}
}
