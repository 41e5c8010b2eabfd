// `sequelize-multidb/fastify`: the Koa middleware's read-your-writes for Fastify 5, on the
// same framework-neutral core (pinning-core.ts). Fastify's own cookie machinery carries the
// pin: @fastify/cookie reads it, signs it with its secret (header pins too), and sets it. A
// route is marked as a write by its config (`{config: {dbWrite: true}}`) or the `dbWrite`
// wrapper; a handler flags a write with `reply.dbWrite = true`.
//
// The request's routing flow starts in a `preHandler` hook, after the body is parsed (a
// flow started earlier would not reach a handler resumed by the body parser), and the pin
// is set in `onSend`, which every response passes through before its headers leave (an
// error's too), so a WAL-position pin can wait for the primary's position there.
import type {FastifyPluginCallback, FastifyReply, FastifyRequest} from 'fastify';
import type {FlowState} from './context.js';
import {headerPinValue, type PinSigner} from './pin-signer.js';
import {continueInFlow, markAsWrite, pinCookieAttributes, pinRequest, requestFlow, runAsWrite, settlePin, type PinRequest, type RequestPin} from './pinning-core.js';
import {resolvePinningOptions, type PinningOptions, type ResolvedPinningOptions} from './pinning-options.js';
import {invalid} from './validate.js';

export type {PinningOptions} from './pinning-options.js';

/** What a route's `config` may say: `{dbWrite: true}` marks it as a write. */
export interface PinningRouteConfig {
	readonly dbWrite?: boolean;
}

declare module 'fastify' {
	interface FastifyReply {
		/** Set to `true` by a handler that wrote: the response pins the client (its next request reads from the primary). */
		dbWrite: boolean;
	}

	interface FastifyContextConfig {
		/** Marks the route as a write: its reads go to the primary, and its response pins the client. */
		dbWrite?: boolean;
	}
}

/** A request's pinning, from its preHandler hook to its response. */
interface RequestState {
	readonly flow: FlowState;
	readonly pin: RequestPin;
	readonly signed: boolean;
}

/** @fastify/cookie's decorations, which this package does not depend on for its types. */
interface CookieRequest {
	readonly cookies?: Record<string, string | undefined>;
	unsignCookie?(value: string): {valid: boolean; value: string | null};
	signCookie?(value: string): string;
}

interface CookieReply {
	setCookie(name: string, value: string, options: object): unknown;
	clearCookie(name: string, options: object): unknown;
}

/**
 * A Fastify plugin that keeps a client on fresh data right after it writes:
 * `app.register(pinning({db}))`, after `@fastify/cookie` (with a secret, to sign the pin).
 * It applies to the whole app (it is not encapsulated).
 */
export function pinning(options?: PinningOptions): FastifyPluginCallback {
	const settings = resolvePinningOptions(options);
	const readMethods = new Set(settings.readMethods);
	const states = new WeakMap<FastifyRequest, RequestState>();
	const plugin: FastifyPluginCallback = (fastify, _options, done) => {
		if (!fastify.hasRequestDecorator('cookies')) {
			done(new TypeError('Expected @fastify/cookie to be registered before pinning() (`app.register(fastifyCookie, {secret})`)'));
			return;
		}

		fastify.decorateReply('dbWrite', false);
		fastify.addHook('preHandler', (request, _reply, next) => {
			const signed = signedFor(request, settings);
			const requestFlowState = requestFlow(request);
			const {flow} = requestFlowState;
			if ((request.routeOptions.config as PinningRouteConfig).dbWrite === true) {
				markAsWrite(flow);
			}

			continueInFlow(requestFlowState, pinRequest(fastifyRequest(request, settings), flow, settings, readMethods, signed), pin => {
				states.set(request, {flow, pin, signed});
			}, error => {
				next(error as Error | undefined);
			});
		});
		fastify.addHook('onSend', (request, reply, payload, next) => {
			const state = states.get(request);
			const deciding = state && settlePin(state.flow, settings, state.pin, reply.dbWrite, {
				set: value => {
					writePin(request, reply, value, settings, state.signed);
				},
				clear: () => {
					// Every replica has the write now: the pin has nothing left to do.
					(reply as unknown as CookieReply).clearCookie(settings.cookie, {path: settings.path, domain: settings.domain});
				},
			});
			if (deciding) {
				// A WAL-position pin: the headers wait for the primary's position.
				deciding.then(() => {
					next(null, payload);
				}, next);
			} else {
				next(null, payload);
			}
		});
		done();
	};

	// Like fastify-plugin: the hooks apply to the app that registers it, not a child context.
	Object.assign(plugin, {[Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'sequelize-multidb pinning'});
	return plugin;
}

/**
 * Wraps a route handler that writes although its method is a read (a GET that records a
 * like): the current request's reads go to the primary, and the response pins the client.
 * (Route config `{dbWrite: true}` does the same.)
 */
export function dbWrite<RequestType extends FastifyRequest = FastifyRequest, ReplyType extends FastifyReply = FastifyReply>(handler: (this: unknown, request: RequestType, reply: ReplyType) => unknown): (this: unknown, request: RequestType, reply: ReplyType) => Promise<unknown> {
	if (typeof handler !== 'function') {
		throw invalid('handler', 'a function', handler);
	}

	return async function dbWrite(this: unknown, request, reply) {
		return runAsWrite(request, () => handler.call(this, request, reply));
	};
}

function writePin(request: FastifyRequest, reply: FastifyReply, value: string, settings: ResolvedPinningOptions, signed: boolean): void {
	// @fastify/cookie takes `maxAge` in seconds.
	(reply as unknown as CookieReply).setCookie(settings.cookie, value, {...pinCookieAttributes(settings, request.protocol === 'https'), maxAge: settings.seconds, signed});
	if (settings.header) {
		void reply.header(settings.header, headerPinValue(value, signerOf(request, signed)));
	}
}

/** The framework-neutral view of a Fastify request (cookies as @fastify/cookie left them). */
function fastifyRequest(request: FastifyRequest, settings: ResolvedPinningOptions): PinRequest {
	const withCookies = request as unknown as CookieRequest;
	return {
		method: request.method,
		cookieHeader: request.headers.cookie ?? '',
		cookie(wantSigned) {
			const raw = withCookies.cookies?.[settings.cookie];
			if (raw === undefined || !wantSigned) {
				return raw;
			}

			const unsigned = withCookies.unsignCookie?.(raw);
			return unsigned?.valid ? unsigned.value ?? undefined : undefined;
		},
		header(name) {
			const value = request.headers[name.toLowerCase()];
			return typeof value === 'string' ? value : '';
		},
		signer: signerOf(request, true),
	};
}

/** @fastify/cookie's signer (`value.signature`, any of its secrets checks), where it has a secret. */
function signerOf(request: FastifyRequest, signed: boolean): PinSigner | undefined {
	const cookies = request as unknown as CookieRequest;
	if (!signed || !hasSecret(request)) {
		return undefined;
	}

	return {
		sign: value => cookies.signCookie?.(value) ?? value,
		unsign(signedValue) {
			const separator = signedValue.lastIndexOf('.');
			const result = separator < 0 ? undefined : cookies.unsignCookie?.(signedValue);
			return result && {value: result.valid ? result.value ?? '' : signedValue.slice(0, separator), valid: result.valid};
		},
	};
}

function signedFor(request: FastifyRequest, settings: ResolvedPinningOptions): boolean {
	const secret = hasSecret(request);
	if (settings.signed === true && !secret) {
		throw new TypeError('Expected @fastify/cookie to have a secret (`app.register(fastifyCookie, {secret})`), as pinning() was given `signed: true`');
	}

	return settings.signed ?? secret;
}

/** @fastify/cookie decorates requests with `signCookie` only when it was given a secret. */
function hasSecret(request: FastifyRequest): boolean {
	return typeof (request as unknown as CookieRequest).signCookie === 'function';
}
