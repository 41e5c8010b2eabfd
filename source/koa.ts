// Koa integration: the seed's PinningRouterMiddleware and `db_write`. A client that wrote
// gets a short-lived pin (a cookie, or a header for API clients). While it carries one:
// - `consistency: 'time'`: its reads go to the primary;
// - `consistency: 'lsn'`: the pin holds the primary's WAL position after the write, and its
//   reads go to any replica that has replayed that far (the primary only while none has).
// What a pin is and what it does is framework-neutral (pinning-core.ts); this file is how
// Koa carries it: `ctx.cookies` signed with `app.keys`, `ctx.state.dbWrite`, Koa's errors.
import createDebug from 'debug';
import type {Context, Middleware, Next} from 'koa';
import {runInNewFlow} from './context.js';
import {headerPinValue, keySigner} from './pin-signer.js';
import {newPinValue, pinCookieAttributes, pinRequest, pinServed, requestFlow, responsePins, runAsWrite, type PinRequest} from './pinning-core.js';
import {resolvePinningOptions, type PinningOptions, type ResolvedPinningOptions} from './pinning-options.js';
import {invalid} from './validate.js';

const log = createDebug('sequelize-multidb:koa');

/**
 * Koa middleware that keeps a client on fresh data right after it writes. Mount it before
 * any middleware that writes. Each request runs in its own routing flow: it is pinned when
 * it presents a valid pin or uses a write method, and explicitly unpinned otherwise.
 */
export function pinning(options?: PinningOptions): Middleware {
	const settings = resolvePinningOptions(options);
	const readMethods = new Set(settings.readMethods);
	return async function pinning(ctx: Context, next: Next): Promise<void> {
		const {flow, joined} = requestFlow(ctx);
		const signed = signedFor(ctx, settings);
		const pinned = pinRequest(koaRequest(ctx, settings), flow, settings, readMethods, signed);
		const request = pinned instanceof Promise ? await pinned : pinned;
		if (log.enabled) {
			log('%s %s: %s', ctx.method, ctx.path, request.presented?.kind ?? (settings.pinWriteMethods && request.writeMethod ? 'write method' : 'unpinned'));
		}

		const flagged = () => (ctx.state as {dbWrite?: unknown} | undefined)?.dbWrite === true;
		try {
			await (joined ? next() : runInNewFlow(next, flow));
		} catch (error: unknown) {
			// A handler that throws after its write committed still pins the client. Koa's
			// error handler removes every header it finds set, but keeps `error.headers`.
			if (responsePins(flow, settings, request, flagged())) {
				await setPin(ctx, settings, signed);
				keepHeadersThroughError(ctx, error, settings);
			}

			throw error;
		}

		if (responsePins(flow, settings, request, flagged())) {
			await setPin(ctx, settings, signed);
		} else if (pinServed(request, settings)) {
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
		await runAsWrite(ctx, () => handler(ctx, next));
	};
}

/** The framework-neutral view of a Koa request. */
function koaRequest(ctx: Context, settings: ResolvedPinningOptions): PinRequest {
	return {
		method: ctx.method,
		cookieHeader: ctx.get('Cookie'),
		cookie: wantSigned => ctx.cookies.get(settings.cookie, {signed: wantSigned}),
		header: name => ctx.get(name),
		signer: keySigner(appKeys(ctx)),
	};
}

async function setPin(ctx: Context, settings: ResolvedPinningOptions, signed: boolean): Promise<void> {
	const value = await newPinValue(settings);
	ctx.cookies.set(settings.cookie, value, cookieAttributes(ctx, settings, signed));
	if (settings.header) {
		ctx.set(settings.header, headerPinValue(value, keySigner(appKeys(ctx))));
	}
}

function cookieAttributes(ctx: Context, settings: ResolvedPinningOptions, signed: boolean) {
	return {...pinCookieAttributes(settings, ctx.secure), maxAge: settings.seconds * 1000, signed, overwrite: true};
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
