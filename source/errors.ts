// Errors this package throws. Each has a stable `code` (listed in the README) so callers
// can branch on it without parsing messages.

export type MultiDbErrorCode =
	| 'MULTIDB_NO_REPLICAS'
	| 'MULTIDB_CLOSED';

export class MultiDbError extends Error {
	override name = 'MultiDbError';

	constructor(readonly code: MultiDbErrorCode, message: string, options?: ErrorOptions) {
		super(message, options);
	}
}

/** Codes of the process warnings (`process.emitWarning`) this package emits. */
export const warningCodes = {
	noReplicas: 'MULTIDB_NO_REPLICAS',
} as const;

export const warningType = 'SequelizeMultiDbWarning';
