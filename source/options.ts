// The options of `multidb()`: their types, defaults and validation, resolved once.
import {checkBoolean, checkOptionsObject} from './validate.js';

export interface MultiDbOptions {
	/**
	 * Shuffle the order of the replicas once, at start, so that after a deploy every process
	 * does not send its first read to the same replica. Round-robin then follows that order.
	 * @default true
	 */
	readonly shuffle?: boolean;
}

export type ResolvedMultiDbOptions = Readonly<Required<MultiDbOptions>>;

export const multidbDefaults: ResolvedMultiDbOptions = Object.freeze({
	shuffle: true,
});

const knownOptions = Object.keys(multidbDefaults);

/** Validates the caller's options (never mutating them) and fills in the defaults. */
export function resolveMultiDbOptions(options: unknown): ResolvedMultiDbOptions {
	const given = checkOptionsObject('options', options, knownOptions);
	const merged = {...multidbDefaults, ...withoutUndefined(given)};
	checkBoolean('shuffle', merged.shuffle);
	return Object.freeze(merged);
}

/** `{x: undefined}` means "use the default", as if the key were absent. */
export function withoutUndefined(object: Record<string, unknown>): Record<string, unknown> {
	return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));
}
