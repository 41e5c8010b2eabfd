// `sequelize-multidb/express`: the Koa middleware's read-your-writes for Express 5, on the
// same framework-neutral core (pinning-core.ts). Express's own cookie machinery carries the
// pin: cookie-parser reads it (`req.cookies`, `req.signedCookies`, its secret signs), and
// `res.cookie` sets it. A handler flags a write with `res.locals.dbWrite = true`.
//
// Express has no "after the handler" step: a response goes out when the handler writes it.
// So the pin is set as the response starts (its first `write` or its `end`), before the
// headers leave. A WAL-position pin needs the primary's position, read after the write
// committed: the response's first bytes wait for that one query (as express-session waits
// to save a session).
import type {NextFunction, Request, RequestHandler, Response} from 'express';
import {headerPinValue, keySigner} from './pin-signer.js';
import {continueInFlow, pinCookieAttributes, pinRequest, requestFlow, runAsWrite, settlePin, type PinRequest} from './pinning-core.js';
import {resolvePinningOptions, type PinningOptions, type ResolvedPinningOptions} from './pinning-options.js';
import {invalid} from './validate.js';

export type {PinningOptions} from './pinning-options.js';

/**
 * Express middleware that keeps a client on fresh data right after it writes. Mount it
 * after `cookie-parser` (with a secret, to sign the pin) and before any route that writes.
 */
export function pinning(options?: PinningOptions): RequestHandler {
	const settings = resolvePinningOptions(options);
	const readMethods = new Set(settings.readMethods);
	return function pinning(request: Request, response: Response, next: NextFunction): void {
		const signed = signedFor(request, settings);
		const requestFlowState = requestFlow(request);
		const {flow} = requestFlowState;
		continueInFlow(requestFlowState, pinRequest(expressRequest(request, settings), flow, settings, readMethods, signed), pin => {
			// Decided when the response starts: the handler is then done with the database.
			pinBeforeHeaders(response, () => settlePin(flow, settings, pin, (response.locals as {dbWrite?: unknown}).dbWrite === true, {
				set: value => {
					writePin(request, response, value, settings, signed);
				},
				clear: () => {
					// Every replica has the write now: the pin has nothing left to do.
					response.clearCookie(settings.cookie, {path: settings.path, domain: settings.domain});
				},
			}));
		}, next);
	};
}

/**
 * Wraps a route handler that writes although its method is a read (a GET that records a
 * like): the current request's reads go to the primary, and the response pins the client.
 */
export function dbWrite<RequestType extends Request = Request, ResponseType extends Response = Response>(handler: (request: RequestType, response: ResponseType, next: NextFunction) => unknown): (request: RequestType, response: ResponseType, next: NextFunction) => Promise<void> {
	if (typeof handler !== 'function') {
		throw invalid('handler', 'a function', handler);
	}

	return async function dbWrite(request, response, next): Promise<void> {
		await runAsWrite(request, () => handler(request, response, next));
	};
}

function writePin(request: Request, response: Response, value: string, settings: ResolvedPinningOptions, signed: boolean): void {
	response.cookie(settings.cookie, value, {...pinCookieAttributes(settings, request.secure), maxAge: settings.seconds * 1000, signed});
	if (settings.header) {
		response.setHeader(settings.header, headerPinValue(value, keySigner(secretsOf(request))));
	}
}

/**
 * Runs `decide` once, when the response starts (`writeHead`, its first `write`, or `end`),
 * and holds the response until it is done: the pin's cookie must go out with the headers.
 * Once decided, every call passes straight through (Node's own `end` calls `writeHead`).
 */
function pinBeforeHeaders(response: Response, decide: () => Promise<void> | undefined): void {
	let started = false;
	let pending: Promise<void> | undefined;
	const start = (): Promise<void> | undefined => {
		if (!started) {
			started = true;
			// A failure to pin (the primary gone) must not lose the response: it goes out unpinned.
			const deciding = response.headersSent ? undefined : decide()?.catch(() => undefined);
			pending = deciding?.then(() => {
				pending = undefined;
			});
		}

		return pending;
	};

	for (const method of ['writeHead', 'write', 'end'] as const) {
		const original = (response[method] as (...arguments_: unknown[]) => unknown).bind(response);
		// Each returns what Node's would: `writeHead` and `end` the response, `write` true.
		const held = method === 'write' ? true : response;
		Object.defineProperty(response, method, {
			value(...arguments_: unknown[]): unknown {
				const waiting = start();
				if (!waiting) {
					return original(...arguments_);
				}

				void waiting.then(() => original(...arguments_));
				return held;
			},
			writable: true,
			configurable: true,
		});
	}
}

/** The framework-neutral view of an Express request (cookies as cookie-parser left them). */
function expressRequest(request: Request, settings: ResolvedPinningOptions): PinRequest {
	const cookies = request.cookies as Record<string, unknown> | undefined;
	const signedCookies = request.signedCookies as Record<string, unknown> | undefined;
	return {
		method: request.method,
		cookieHeader: request.headers.cookie ?? '',
		cookie(wantSigned) {
			if (wantSigned) {
				const value = signedCookies?.[settings.cookie];
				return typeof value === 'string' ? value : undefined;
			}

			// cookie-parser moves a signed cookie out of `req.cookies`, and marks a bad
			// signature `false`: such a cookie was presented all the same.
			const value = cookies?.[settings.cookie] ?? (signedCookies?.[settings.cookie] === false ? '' : undefined);
			return typeof value === 'string' ? value : undefined;
		},
		header: name => request.get(name) ?? '',
		signer: keySigner(secretsOf(request)),
	};
}

function signedFor(request: Request, settings: ResolvedPinningOptions): boolean {
	if (typeof request.cookies !== 'object') {
		throw new TypeError('Expected `req.cookies` to be parsed: mount cookie-parser (`app.use(cookieParser(secret))`) before pinning()');
	}

	const hasSecret = secretsOf(request) !== undefined;
	if (settings.signed === true && !hasSecret) {
		throw new TypeError('Expected cookie-parser to have a secret (`app.use(cookieParser(secret))`), as pinning() was given `signed: true`');
	}

	return settings.signed ?? hasSecret;
}

/** cookie-parser's secret (its first: the one it signs with), to sign header pins. */
function secretsOf(request: Request): string[] | undefined {
	// Declared by cookie-parser's types, which this package does not depend on.
	const {secret} = request as {secret?: unknown};
	return typeof secret === 'string' && secret.length > 0 ? [secret] : undefined;
}
