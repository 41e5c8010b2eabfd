// The options of `pinning()`: their types, defaults and validation, resolved once when the
// middleware is made.
import type {MultiDb} from './multidb.js';
import {withoutUndefined} from './options.js';
import {checkBoolean, checkNumber, checkOneOf, checkOptionsObject, checkString, invalid, isMultiDb} from './validate.js';

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
