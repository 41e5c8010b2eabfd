// Koa integration: the seed's PinningRouterMiddleware and `db_write`. A client that wrote
// gets a short-lived pin (a cookie, or a header for API clients). While it carries one:
// - `consistency: 'time'`: its reads go to the primary;
// - `consistency: 'lsn'`: the pin holds the primary's WAL position after the write, and its
//   reads go to any replica that has replayed that far (the primary only while none has).
import createDebug from 'debug';
import type {Context, Middleware, Next} from 'koa';
import {currentScope, marksOf, newFlow, runInNewFlow, usePrimaryDb, type FlowState} from './context.js';
import {warningCodes, warnOnce} from './errors.js';
import {decodeToken, encodeToken, signValue, verifiedValue} from './lsn.js';
import type {MultiDb} from './multidb.js';
import {resolvePinningOptions, type PinningOptions, type ResolvedPinningOptions} from './pinning-options.js';
import {invalid} from './validate.js';

const log = createDebug('sequelize-multidb:koa');

/** A time pin: `1.<expiry epoch ms>`. */
const timePinPattern = /^1\.(\d{1,15})$/;
/** Longer values are never ours: read no further. */
const maxPinLength = 256;
/** Clock skew allowed between the servers of a fleet that share pins. */
const clockSkewMs = 1000;

/** What a request presented: nothing usable, a time pin, a WAL position, or a forgery. */
type PresentedPin =
	| {readonly kind: 'time'}
	| {readonly kind: 'lsn'; readonly lsn: bigint; readonly systemId: string}
	| {readonly kind: 'forged'};

/**
 * Koa middleware that keeps a client on fresh data right after it writes. Mount it before
 * any middleware that writes. Each request runs in its own routing flow: it is pinned when
 * it presents a valid pin or uses a write method, and explicitly unpinned otherwise.
 */
export function pinning(options?: PinningOptions): Middleware {
	const settings = resolvePinningOptions(options);
	const {db} = settings;
	const readMethods = new Set(settings.readMethods);
	return async function pinning(ctx: Context, next: Next): Promise<void> {
		const joined = currentScope()?.flow;
		// A second `pinning()` (another database) in the same request joins its flow.
		const flow = joined?.owner === ctx ? joined : newFlow(ctx);
		// Node hands standard methods over in upper case already.
		const writeMethod = !readMethods.has(ctx.method) && !readMethods.has(ctx.method.toUpperCase());
		const signed = signedFor(ctx, settings);
		const presented = presentedPin(ctx, settings, signed);
		if (settings.pinWriteMethods && writeMethod) {
			pinFlow(flow, db);
		} else if (presented) {
			await honour(presented, flow, db);
		}

		if (log.enabled) {
			log('%s %s: %s', ctx.method, ctx.path, presented?.kind ?? (settings.pinWriteMethods && writeMethod ? 'write method' : 'unpinned'));
		}

		try {
			await (flow === joined ? next() : runInNewFlow(next, flow));
		} catch (error: unknown) {
			// A handler that throws after its write committed still pins the client. Koa's
			// error handler removes every header it finds set, but keeps `error.headers`.
			if (shouldPin(ctx, flow, settings, writeMethod)) {
				await setPin(ctx, settings, signed);
				keepHeadersThroughError(ctx, error, settings);
			}

			throw error;
		}

		if (shouldPin(ctx, flow, settings, writeMethod)) {
			await setPin(ctx, settings, signed);
		} else if (presented?.kind === 'lsn' && db?.everyReplicaHasReplayed(presented.lsn)) {
			// Every replica has the write now: the pin has nothing left to do.
			ctx.cookies.set(settings.cookie, null, cookieAttributes(ctx, settings, signed));
		}
	};
}

/**
 * Wraps a route handler that writes although its method is a read (a GET that records a
 * like): the current request's reads go to the primary, and the response pins the client.
 */
export function dbWrite<ContextType extends object = Context>(handler: (ctx: ContextType, next: Next) => unknown): (ctx: ContextType, next: Next) => Promise<void> {
	if (typeof handler !== 'function') {
		throw invalid('handler', 'a function', handler);
	}

	return async function dbWrite(ctx, next): Promise<void> {
		const flow = currentScope()?.flow;
		if (flow?.owner === ctx) {
			flow.pinned = true;
			flow.markedAsWrite = true;
			await handler(ctx, next);
			return;
		}

		// Without pinning() the handler's reads still go to the primary (the seed's
		// `@db_write` pins by itself); only the *next* request cannot be pinned.
		warnOnce(warningCodes.dbWriteWithoutPinning, 'sequelize-multidb: dbWrite() ran in a request without pinning(): its reads go to the primary, but the next request of the client cannot be pinned; mount pinning() before the router');
		await usePrimaryDb(() => handler(ctx, next));
	};
}

function pinFlow(flow: FlowState, db: MultiDb | undefined): void {
	if (db) {
		marksOf(flow, db).pinned = true;
	} else {
		flow.pinned = true;
	}
}

async function honour(presented: PresentedPin, flow: FlowState, db: MultiDb | undefined): Promise<void> {
	if (presented.kind !== 'lsn' || !db) {
		// A time pin, or a forged one: a forgery may cost primary reads, never older data.
		pinFlow(flow, db);
		return;
	}

	let systemId: string | undefined;
	try {
		systemId = await db.systemIdentifier();
	} catch {
		// The primary cannot say who it is (down): the replicas' positions still decide.
	}

	if (systemId === undefined || presented.systemId === systemId) {
		marksOf(flow, db).minLsn = presented.lsn;
	} else {
		log('ignoring a pin for another cluster (%s)', presented.systemId);
	}
}

function shouldPin(ctx: Context, flow: FlowState, settings: ResolvedPinningOptions, writeMethod: boolean): boolean {
	const state = ctx.state as {dbWrite?: unknown} | undefined;
	const wrote = settings.db ? flow.databases?.get(settings.db)?.wrote === true : flow.wrote;
	return (settings.pinWriteMethods && writeMethod) || state?.dbWrite === true || flow.markedAsWrite || wrote;
}

/** The pin the request carries, from the cookie or else the header; undefined if none is valid. */
function presentedPin(ctx: Context, settings: ResolvedPinningOptions, signed: boolean): PresentedPin | undefined {
	let value: string | undefined;
	// Most requests carry no pin: skip cookie parsing (and signature checks) for them.
	const cookieHeader = ctx.get('Cookie');
	if (!cookieHeader.includes(settings.cookie)) {
		return settings.header ? headerPin(ctx, settings) : undefined;
	}

	try {
		value = ctx.cookies.get(settings.cookie, {signed});
		if (value === undefined && signed && settings.consistency === 'lsn' && ctx.cookies.get(settings.cookie, {signed: false}) !== undefined) {
			// A WAL-position pin whose signature is wrong: it may cost primary reads, never older data.
			return {kind: 'forged'};
		}
	} catch {
		// A malformed Cookie header: no pin, never an error response.
		return undefined;
	}

	if (value === undefined && settings.header) {
		return headerPin(ctx, settings);
	}

	return value === undefined || value.length > maxPinLength ? undefined : parsePin(value, settings);
}

/** A pin from the header: `value~signature` where `app.keys` is set, else the bare value. */
function headerPin(ctx: Context, settings: ResolvedPinningOptions): PresentedPin | undefined {
	const header = settings.header ? ctx.get(settings.header) : '';
	if (header === '' || header.length > maxPinLength) {
		return undefined;
	}

	const keys = appKeys(ctx);
	const separator = header.lastIndexOf('~');
	const pin = parsePin(keys && separator >= 0 ? header.slice(0, separator) : header, settings);
	if (!pin || !keys) {
		// Garbage is no pin at all; without keys there is no signature to check.
		return pin;
	}

	// A well-formed pin whose signature does not match: it may cost primary reads, never older data.
	return verifiedValue(header, keys) === undefined ? {kind: 'forged'} : pin;
}

function parsePin(value: string, settings: ResolvedPinningOptions): PresentedPin | undefined {
	let expiresAt: number;
	let pin: PresentedPin;
	const timePin = timePinPattern.exec(value);
	if (timePin) {
		expiresAt = Number(timePin[1]);
		pin = {kind: 'time'};
	} else {
		const decoded = decodeToken(value);
		if (!decoded.ok) {
			return undefined;
		}

		({expiresAt} = decoded.token);
		pin = {kind: 'lsn', lsn: decoded.token.lsn, systemId: decoded.token.systemId};
	}

	// The embedded expiry caps the pin even where the client ignores the cookie's, and a
	// far-future expiry is refused instead of pinning forever.
	const now = Date.now();
	return expiresAt > now && expiresAt <= now + (settings.seconds * 1000) + clockSkewMs ? pin : undefined;
}

async function setPin(ctx: Context, settings: ResolvedPinningOptions, signed: boolean): Promise<void> {
	const expiresAt = Date.now() + (settings.seconds * 1000);
	let value = `1.${expiresAt}`;
	if (settings.consistency === 'lsn' && settings.db) {
		try {
			// Read after the handler's writes committed: the position covers them.
			const {systemId, lsn} = await settings.db.primaryPosition();
			value = encodeToken({systemId, lsn, expiresAt});
		} catch (error) {
			// Without a position, pin by time: reads go to the primary for `seconds`.
			log('no WAL position for the pin (%s); pinning by time', (error as Error).message);
		}
	}

	ctx.cookies.set(settings.cookie, value, cookieAttributes(ctx, settings, signed));
	if (settings.header) {
		const keys = appKeys(ctx);
		ctx.set(settings.header, keys ? signValue(value, keys) : value);
	}
}

function cookieAttributes(ctx: Context, settings: ResolvedPinningOptions, signed: boolean) {
	return {
		maxAge: settings.seconds * 1000,
		path: settings.path,
		domain: settings.domain,
		httpOnly: settings.httpOnly,
		sameSite: settings.sameSite,
		secure: settings.secure ?? ctx.secure,
		signed,
		overwrite: true,
	};
}

function signedFor(ctx: Context, settings: ResolvedPinningOptions): boolean {
	const hasKeys = Array.isArray(ctx.app.keys) ? ctx.app.keys.length > 0 : Boolean(ctx.app.keys);
	if (settings.signed === true && !hasKeys) {
		throw new TypeError('Expected `app.keys` to be set, as pinning() was given `signed: true`');
	}

	return settings.signed ?? hasKeys;
}

/** `app.keys` as strings, to sign header pins (a Keygrip instance leaves them unsigned). */
function appKeys(ctx: Context): string[] | undefined {
	const {keys} = ctx.app;
	return Array.isArray(keys) && keys.length > 0 && keys.every(key => typeof key === 'string') ? keys : undefined;
}

function keepHeadersThroughError(ctx: Context, error: unknown, settings: ResolvedPinningOptions): void {
	if (typeof error !== 'object' || error === null) {
		return;
	}

	const kept: Record<string, string | string[]> = {};
	for (const name of ['Set-Cookie', ...settings.header ? [settings.header] : []]) {
		const value = ctx.response.get(name) as string | string[];
		if (value.length > 0) {
			kept[name] = value;
		}
	}

	const carrier = error as {headers?: Record<string, unknown>};
	try {
		carrier.headers = {...carrier.headers, ...kept};
	} catch {
		// A frozen error: its headers cannot carry the pin.
	}
}
