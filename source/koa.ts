// Koa integration: the seed's PinningRouterMiddleware and `db_write`. A client that wrote
// gets a short-lived cookie; while it carries one, its reads go to the primary, so it sees
// its own write even when a replica lags.
import createDebug from 'debug';
import type {Context, Middleware, Next} from 'koa';
import {currentScope, marksOf, newFlow, runInNewFlow, type FlowState} from './context.js';
import type {MultiDb} from './multidb.js';
import {invalid} from './validate.js';
import {resolvePinningOptions, type PinningOptions, type ResolvedPinningOptions} from './options.js';

const log = createDebug('sequelize-multidb:koa');

/** Cookie format version, so a later format can tell old cookies apart. */
const cookieVersion = '1';
const cookiePattern = /^1\.(\d{1,15})$/;
/** Longer values are never ours: read no further. */
const maxCookieLength = 64;
/** Clock skew allowed between the servers of a fleet that share the cookie. */
const clockSkewMs = 1000;

/**
 * Koa middleware that pins a client to the primary right after it writes. Mount it before
 * any middleware that writes. Each request runs in its own routing flow: a request is
 * pinned when it carries a valid pin cookie or uses a write method, and is explicitly
 * unpinned otherwise, whatever ran before it.
 */
export function pinning(options?: PinningOptions): Middleware {
	const settings = resolvePinningOptions(options);
	const {db} = settings;
	return async function pinning(ctx: Context, next: Next): Promise<void> {
		const joined = currentScope()?.flow;
		// A second `pinning()` (another database) in the same request joins its flow.
		const flow = joined?.owner === ctx ? joined : newFlow(ctx);
		const writeMethod = !settings.readMethods.includes(ctx.method.toUpperCase());
		const signed = signedFor(ctx, settings);
		const pinned = (settings.pinWriteMethods && writeMethod) || hasValidPin(ctx, settings, signed);
		if (pinned) {
			pinFlow(flow, db);
		}

		log('%s %s: %s', ctx.method, ctx.path, pinned ? 'pinned' : 'unpinned');
		try {
			await (flow === joined ? next() : runInNewFlow(next, flow));
		} catch (error: unknown) {
			// A handler that throws after its write committed still pins the client. Koa's
			// error handler removes every header it finds set, but keeps `error.headers`.
			if (shouldSetPin(ctx, flow, settings, writeMethod)) {
				setPin(ctx, settings, signed);
				keepSetCookieThroughError(ctx, error);
			}

			throw error;
		}

		if (shouldSetPin(ctx, flow, settings, writeMethod)) {
			setPin(ctx, settings, signed);
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
		if (flow) {
			flow.pinned = true;
			flow.markedAsWrite = true;
		} else {
			log('dbWrite outside pinning(): mount pinning() before the router');
		}

		await handler(ctx, next);
	};
}

function pinFlow(flow: FlowState, db: MultiDb | undefined): void {
	if (db) {
		marksOf(flow, db).pinned = true;
	} else {
		flow.pinned = true;
	}
}

function shouldSetPin(ctx: Context, flow: FlowState, settings: ResolvedPinningOptions, writeMethod: boolean): boolean {
	const state = ctx.state as {dbWrite?: unknown} | undefined;
	const wrote = settings.db ? flow.databases.get(settings.db)?.wrote === true : flow.wrote;
	return (settings.pinWriteMethods && writeMethod) || state?.dbWrite === true || flow.markedAsWrite || wrote;
}

function hasValidPin(ctx: Context, settings: ResolvedPinningOptions, signed: boolean): boolean {
	let value: string | undefined;
	try {
		value = ctx.cookies.get(settings.cookie, {signed});
	} catch {
		// A malformed Cookie header: no pin, never an error response.
		return false;
	}

	if (value === undefined || value.length > maxCookieLength) {
		return false;
	}

	const match = cookiePattern.exec(value);
	if (!match) {
		return false;
	}

	// The embedded expiry caps the pin even where the client ignores max-age, and a forged
	// far-future expiry is refused instead of pinning forever.
	const expiresAt = Number(match[1]);
	const now = Date.now();
	return expiresAt > now && expiresAt <= now + (settings.seconds * 1000) + clockSkewMs;
}

function setPin(ctx: Context, settings: ResolvedPinningOptions, signed: boolean): void {
	const maxAge = settings.seconds * 1000;
	ctx.cookies.set(settings.cookie, `${cookieVersion}.${Date.now() + maxAge}`, {
		maxAge,
		path: settings.path,
		domain: settings.domain,
		httpOnly: settings.httpOnly,
		sameSite: settings.sameSite,
		secure: settings.secure ?? ctx.secure,
		signed,
		overwrite: true,
	});
}

function signedFor(ctx: Context, settings: ResolvedPinningOptions): boolean {
	const hasKeys = Array.isArray(ctx.app.keys) ? ctx.app.keys.length > 0 : Boolean(ctx.app.keys);
	if (settings.signed === true && !hasKeys) {
		throw new TypeError('Expected `app.keys` to be set, as pinning() was given `signed: true`');
	}

	return settings.signed ?? hasKeys;
}

function keepSetCookieThroughError(ctx: Context, error: unknown): void {
	if (typeof error !== 'object' || error === null) {
		return;
	}

	const setCookie = ctx.response.get('Set-Cookie') as string | string[];
	if (setCookie.length === 0) {
		return;
	}

	const carrier = error as {headers?: Record<string, unknown>};
	try {
		carrier.headers = {...carrier.headers, 'Set-Cookie': setCookie};
	} catch {
		// A frozen error: its headers cannot carry the cookie.
	}
}

