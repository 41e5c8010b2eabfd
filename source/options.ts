// The options of `multidb()` and `pinning()`: their types, defaults and validation,
// resolved once at construction.
import type {MultiDb} from './multidb.js';
import {checkBoolean, checkNumber, checkOneOf, checkOptionsObject, checkString, invalid, isMultiDb} from './validate.js';

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
	 * answer 3 probes in a row to rejoin. 0 turns flap damping off.
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
});

const knownOptions = Object.keys(multidbDefaults);

/** Validates the caller's options (never mutating them) and fills in the defaults. */
export function resolveMultiDbOptions(options: unknown): ResolvedMultiDbOptions {
	const given = checkOptionsObject('options', options, knownOptions);
	const merged: Record<string, unknown> = {...multidbDefaults, ...withoutUndefined(given)};
	checkBoolean('shuffle', merged.shuffle);
	checkBoolean('fallbackToPrimary', merged.fallbackToPrimary);
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
	return Object.freeze({...merged, keys: Object.freeze([...merged.keys as string[]])}) as unknown as ResolvedMultiDbOptions;
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

export interface PinningOptions {
	/**
	 * The router whose reads a pinned request sends to the primary, and whose writes pin the
	 * client. Without it, a pin covers every database and any database's write pins.
	 * @default undefined
	 */
	readonly db?: MultiDb;
	/**
	 * How long a client stays pinned after a write, in seconds (fractions allowed). The
	 * expiry is also written into the cookie and checked on every request, so a client that
	 * keeps a cookie longer, or forges one, is never pinned past it.
	 * @default 15
	 */
	readonly seconds?: number;
	/**
	 * Name of the pin cookie. Give each database its own name when you mount `pinning()`
	 * once per database.
	 * @default 'multidb_pin_writes'
	 */
	readonly cookie?: string;
	/** @default '/' */
	readonly path?: string;
	/** @default undefined (the cookie is for the request's host only) */
	readonly domain?: string;
	/** @default true */
	readonly httpOnly?: boolean;
	/** @default 'lax' */
	readonly sameSite?: 'lax' | 'strict' | 'none' | false;
	/**
	 * Mark the cookie `Secure`. Behind a TLS-terminating proxy, set Koa's `app.proxy = true`
	 * so the request counts as HTTPS.
	 * @default whether the request is HTTPS (`ctx.secure`)
	 */
	readonly secure?: boolean;
	/**
	 * Sign the cookie with Koa's `app.keys` (a `.sig` cookie beside it). An unsigned or
	 * badly signed cookie is then ignored.
	 * @default whether `app.keys` is set
	 */
	readonly signed?: boolean;
	/**
	 * Methods that do not pin by themselves. Any other method pins the request and the
	 * client (when `pinWriteMethods` is on).
	 * @default ['GET', 'HEAD', 'OPTIONS', 'TRACE']
	 */
	readonly readMethods?: readonly string[];
	/**
	 * Pin on write methods (POST, PUT, PATCH, DELETE...). Turn off for apps whose POSTs only
	 * read (GraphQL queries): writes that actually run, `dbWrite` and `ctx.state.dbWrite`
	 * still pin.
	 * @default true
	 */
	readonly pinWriteMethods?: boolean;
	/**
	 * `'time'`: a pinned client reads from the primary for `seconds` (the seed's behaviour).
	 * `'lsn'`: the pin carries the primary's WAL position after the write, and the client's
	 * reads go to any replica that has replayed it, to the primary only while none has
	 * (`seconds` still caps it). Needs `db`.
	 * @default 'time'
	 */
	readonly consistency?: 'time' | 'lsn';
	/**
	 * Name of a header that carries the pin for clients without cookies: set on responses
	 * that pin, read from requests (after the cookie). Signed with `app.keys` when set.
	 * @default undefined (cookies only)
	 */
	readonly header?: string;
}

export interface ResolvedPinningOptions {
	readonly db: MultiDb | undefined;
	readonly seconds: number;
	readonly cookie: string;
	readonly path: string;
	readonly domain: string | undefined;
	readonly httpOnly: boolean;
	readonly sameSite: 'lax' | 'strict' | 'none' | false;
	readonly secure: boolean | undefined;
	readonly signed: boolean | undefined;
	readonly readMethods: readonly string[];
	readonly pinWriteMethods: boolean;
	readonly consistency: 'time' | 'lsn';
	readonly header: string | undefined;
}

export const pinningDefaults: ResolvedPinningOptions = Object.freeze({
	db: undefined,
	seconds: 15,
	cookie: 'multidb_pin_writes',
	path: '/',
	domain: undefined,
	httpOnly: true,
	sameSite: 'lax',
	secure: undefined,
	signed: undefined,
	readMethods: Object.freeze(['GET', 'HEAD', 'OPTIONS', 'TRACE']),
	pinWriteMethods: true,
	consistency: 'time',
	header: undefined,
});

/** RFC 6265 cookie-name characters (an HTTP token). */
const cookieName = /^[!#$%&'*+\-.^_`|~\dA-Za-z]+$/;

export function resolvePinningOptions(options: unknown): ResolvedPinningOptions {
	const given = checkOptionsObject('options', options, Object.keys(pinningDefaults));
	const merged = {...pinningDefaults, ...withoutUndefined(given)} as Record<keyof ResolvedPinningOptions, unknown>;
	if (merged.db !== undefined && !isMultiDb(merged.db)) {
		throw invalid('db', 'the handle returned by multidb()', merged.db);
	}

	checkNumber('seconds', merged.seconds, {min: 0, exclusive: true});
	checkString('cookie', merged.cookie, cookieName, 'a cookie name (letters, digits and !#$%&\'*+-.^_`|~)');
	checkString('path', merged.path, /^\//, 'a path starting with /');
	if (merged.domain !== undefined) {
		checkString('domain', merged.domain);
	}

	checkBoolean('httpOnly', merged.httpOnly);
	if (merged.sameSite !== false) {
		checkOneOf('sameSite', merged.sameSite, ['lax', 'strict', 'none'] as const);
	}

	for (const name of ['secure', 'signed'] as const) {
		if (merged[name] !== undefined) {
			checkBoolean(name, merged[name]);
		}
	}

	if (!Array.isArray(merged.readMethods) || !merged.readMethods.every(method => typeof method === 'string' && /^[A-Za-z]+$/.test(method))) {
		throw invalid('readMethods', 'an array of HTTP method names', merged.readMethods);
	}

	checkBoolean('pinWriteMethods', merged.pinWriteMethods);
	checkOneOf('consistency', merged.consistency, ['time', 'lsn'] as const);
	if (merged.consistency === 'lsn' && merged.db === undefined) {
		throw invalid('db', 'the handle returned by multidb() when `consistency` is \'lsn\'', merged.db);
	}

	if (merged.header !== undefined) {
		checkString('header', merged.header, cookieName, 'an HTTP header name');
	}

	return Object.freeze({
		...merged,
		readMethods: Object.freeze(merged.readMethods.map(method => (method as string).toUpperCase())),
	}) as ResolvedPinningOptions;
}
