// The options of `multidb()`: their types, defaults and validation, resolved once at
// construction.
import {checkBoolean, checkNumber, checkOneOf, checkOptionsObject, invalid} from './validate.js';

export interface MultiDbOptions {
	/**
	 * Shuffle the order of the replicas once, at start, so that after a deploy every process
	 * does not send its first read to the same replica. Round-robin then follows that order.
	 * @default true
	 */
	readonly shuffle?: boolean;
	/**
	 * The flap window, in milliseconds. A replica leaves rotation only when a probe fails (a
	 * fresh connection that must answer `SELECT 1`), and rejoins as soon as a probe answers
	 * (probed 200 ms after leaving, then at most every second). One that leaves rotation again
	 * within `cooldownMs` of rejoining is flapping: it is probed at most every 5 s and must
	 * keep answering (probed every 0.5 s) for 5 s in a row to rejoin. 0 turns flap damping off.
	 * @default 30_000
	 */
	readonly cooldownMs?: number;
	/**
	 * Where no replica can serve a read (all down, lagging or quarantined), send it to the
	 * primary. When false, such a read fails with `MULTIDB_NO_REPLICA_AVAILABLE`.
	 * @default true
	 */
	readonly fallbackToPrimary?: boolean;
	/**
	 * A replica further behind the primary than this (milliseconds) *and* than
	 * `maxLagBytes` is skipped until it catches up. `Infinity` turns lag checks off.
	 * @default 30_000
	 */
	readonly maxLagMs?: number;
	/**
	 * The byte-lag threshold that goes with `maxLagMs`. 0 lets the time threshold decide alone.
	 * @default 16_777_216 (16 MiB)
	 */
	readonly maxLagBytes?: number;
	/**
	 * How often the background monitor reads each replica's replay position (±20 % jitter),
	 * in milliseconds. 0 turns the monitor off (no lag checks; failures are still seen on reads).
	 * @default 1000
	 */
	readonly monitorIntervalMs?: number;
	/**
	 * Time limit for opening a connection to a replica, in milliseconds; past it the read goes
	 * elsewhere and a probe decides about the replica. It also bounds each probe (its connect
	 * and its `SELECT 1`). Applies to replica connections only.
	 * @default 5000
	 */
	readonly connectTimeoutMs?: number;
	/**
	 * Time limit for one attempt of a routed read on a replica, in milliseconds; past it the
	 * connection is dropped, the read retried elsewhere, and the replica probed. It also
	 * bounds the monitor's probes. 0 turns it off. Raise it above your longest replica query.
	 * @default 10_000
	 */
	readonly readTimeoutMs?: number;
	/**
	 * Keys that sign consistency tokens (`db.consistencyToken()`) and verify them
	 * (`withConsistency`); the first signs, any verifies, so keys can be rotated. With keys,
	 * a token without a valid signature sends reads to the primary.
	 * @default [] (tokens are not signed)
	 */
	readonly keys?: readonly string[];
	/**
	 * Writes follow the primary: when the primary stops answering as one (down, or a standby
	 * now) and one other node answers as a primary on a newer timeline (it was promoted),
	 * writes move to it. On by default: a promotion is how failover looks to a client, and
	 * without following, every write fails until the application is reconfigured and
	 * restarted; the split-brain rules keep it from ever writing to two primaries. Turn it off
	 * where something in front of the servers (a DNS name, a proxy, PgBouncer) already
	 * follows the primary.
	 * @default true
	 */
	readonly followPrimary?: boolean;
	/**
	 * Request affinity: each flow (a request under `pinning()`, a `withAffinity()` scope)
	 * reads from one replica, picked at its first read (round robin over flows), so its
	 * reads never go back in time. Off by default: per-query balancing spreads load best.
	 * `withAffinity(fn)` turns it on for one scope whatever this says.
	 * @default false
	 */
	readonly affinity?: boolean;
	/**
	 * How a read's replica is chosen among those in rotation: `round-robin` (per query, in
	 * turn, weighted by `weights`), or `least-outstanding` (the replica with the fewest reads
	 * in flight from this process, per unit of weight; ties in turn).
	 * @default 'round-robin'
	 */
	readonly balance?: 'round-robin' | 'least-outstanding';
	/**
	 * Relative weights of replicas, by name (`host:port`, as `db.replicas` shows): a replica
	 * of weight 2 takes twice the reads of one of weight 1 (smooth weighted round robin, no
	 * bursts). Unlisted replicas weigh 1.
	 * @default {} (all equal)
	 */
	readonly weights?: Readonly<Record<string, number>>;
	/**
	 * Named sets of replicas, by name: `useReplicas('api', fn)` confines the reads of `fn` to
	 * the `api` group. A replica may be in several groups.
	 * @default {}
	 */
	readonly groups?: Readonly<Record<string, readonly string[]>>;
}

export type ResolvedMultiDbOptions = Readonly<Required<MultiDbOptions>>;

export const multidbDefaults: ResolvedMultiDbOptions = Object.freeze({
	shuffle: true,
	cooldownMs: 30_000,
	fallbackToPrimary: true,
	maxLagMs: 30_000,
	maxLagBytes: 16 * 1024 * 1024,
	monitorIntervalMs: 1000,
	connectTimeoutMs: 5000,
	readTimeoutMs: 10_000,
	keys: Object.freeze([]),
	followPrimary: true,
	affinity: false,
	balance: 'round-robin',
	weights: Object.freeze({}),
	groups: Object.freeze({}),
});

const knownOptions = Object.keys(multidbDefaults);

/** Validates the caller's options (never mutating them) and fills in the defaults. */
export function resolveMultiDbOptions(options: unknown): ResolvedMultiDbOptions {
	const given = checkOptionsObject('options', options, knownOptions);
	const merged: Record<string, unknown> = {...multidbDefaults, ...withoutUndefined(given)};
	checkBoolean('shuffle', merged.shuffle);
	checkBoolean('fallbackToPrimary', merged.fallbackToPrimary);
	checkBoolean('followPrimary', merged.followPrimary);
	checkBoolean('affinity', merged.affinity);
	checkOneOf('balance', merged.balance, ['round-robin', 'least-outstanding']);
	const weights = checkRecord('weights', merged.weights, (name, value) => {
		checkNumber(name, value, {min: 0, exclusive: true});
		return value as number;
	});
	const groups = checkRecord('groups', merged.groups, (name, value) => {
		if (!Array.isArray(value) || value.length === 0 || !value.every(entry => typeof entry === 'string' && entry.length > 0)) {
			throw invalid(name, 'a non-empty array of replica names', value);
		}

		return Object.freeze([...value as string[]]);
	});
	checkNumber('cooldownMs', merged.cooldownMs);
	checkNumber('connectTimeoutMs', merged.connectTimeoutMs, {min: 0, exclusive: true});
	checkNumber('readTimeoutMs', merged.readTimeoutMs);
	checkNumber('monitorIntervalMs', merged.monitorIntervalMs);
	// Infinity is a legitimate "no limit" for the lag thresholds.
	for (const name of ['maxLagMs', 'maxLagBytes']) {
		if (merged[name] !== Number.POSITIVE_INFINITY) {
			checkNumber(name, merged[name]);
		}
	}

	checkKeys('keys', merged.keys);
	return Object.freeze({...merged, keys: Object.freeze([...merged.keys as string[]]), weights, groups}) as unknown as ResolvedMultiDbOptions;
}

/** A plain object whose every value passes `check` (which names the entry), copied and frozen. */
function checkRecord<T>(name: string, value: unknown, check: (entryName: string, entry: unknown) => T): Readonly<Record<string, T>> {
	if (typeof value !== 'object' || value === null || Array.isArray(value)) {
		throw invalid(name, 'an object keyed by replica or group name', value);
	}

	return Object.freeze(Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, check(`${name}.${key}`, entry)])));
}

function checkKeys(name: string, value: unknown): void {
	if (!Array.isArray(value) || !value.every(key => typeof key === 'string' && key.length > 0)) {
		throw invalid(name, 'an array of non-empty strings', value);
	}
}

/** `{x: undefined}` means "use the default", as if the key were absent. */
export function withoutUndefined(object: Record<string, unknown>): Record<string, unknown> {
	return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));
}
