// Read-your-writes pinning, whatever the web framework: what a request presents (a pin in
// a cookie or a header, a write method), how the request's flow is pinned by it, whether
// the response must pin the client, and the pin's value. Each adapter (koa.ts, express.ts,
// fastify.ts) reads its framework's request through `PinRequest` and writes the pin with its
// framework's own cookie and signing machinery.
//
// A pin is `1.<expiry epoch ms>` (`consistency: 'time'`: reads go to the primary) or a
// consistency token with the primary's WAL position after the write (`consistency: 'lsn'`:
// reads go to any replica that has replayed that far).
import createDebug from 'debug';
import {currentScope, marksOf, newFlow, runInNewFlow, usePrimaryDb, type FlowState} from './context.js';
import {warningCodes, warnOnce} from './errors.js';
import {decodeToken, encodeToken} from './lsn.js';
import type {PinSigner} from './pin-signer.js';
import type {MultiDb} from './multidb.js';
import type {ResolvedPinningOptions} from './pinning-options.js';

const log = createDebug('sequelize-multidb:pinning');

/** A time pin: `1.<expiry epoch ms>`. */
const timePinPattern = /^1\.(\d{1,15})$/;
/** Longer values are never ours: read no further. */
const maxPinLength = 256;
/** Clock skew allowed between the servers of a fleet that share pins. */
const clockSkewMs = 1000;

/** What a request presented: nothing usable, a time pin, a WAL position, or a forgery. */
export type PresentedPin =
	| {readonly kind: 'time'}
	| {readonly kind: 'lsn'; readonly lsn: bigint; readonly systemId: string}
	| {readonly kind: 'forged'};

/** The request, as pinning reads it (the adapter answers from its framework's request). */
export interface PinRequest {
	readonly method: string;
	/** The raw `Cookie` header, '' without one. */
	readonly cookieHeader: string;
	/**
	 * The pin cookie's value; with `signed`, only if its signature is valid. May throw on a
	 * malformed `Cookie` header (that is then no pin).
	 */
	cookie(signed: boolean): string | undefined;
	/** A request header, '' when absent. */
	header(name: string): string;
	/** Signs and checks header pins, where the framework has a secret; without one they go unsigned. */
	readonly signer: PinSigner | undefined;
}

/** Where a request stands: its method, and the pin it presented (if any). */
export interface RequestPin {
	readonly writeMethod: boolean;
	readonly presented: PresentedPin | undefined;
}

/**
 * The request's routing flow: the one an earlier `pinning()` of the same request made (for
 * another database), which this one joins, or a new one, owned by the framework's request.
 */
export function requestFlow(owner: object): {flow: FlowState; joined: boolean} {
	const current = currentScope()?.flow;
	return current?.owner === owner ? {flow: current, joined: true} : {flow: newFlow(owner), joined: false};
}

/**
 * Reads what the request presents, and pins its flow by it: a write method, or a valid pin.
 * Synchronous unless the request presents a WAL-position pin (the cluster's identity is
 * checked): most requests carry no pin, and must not pay for a promise.
 */
export function pinRequest(request: PinRequest, flow: FlowState, settings: ResolvedPinningOptions, readMethods: ReadonlySet<string>, signed: boolean): RequestPin | Promise<RequestPin> {
	// Node hands standard methods over in upper case already.
	const writeMethod = !readMethods.has(request.method) && !readMethods.has(request.method.toUpperCase());
	const presented = presentedPin(request, settings, signed);
	const pin: RequestPin = {writeMethod, presented};
	if ((settings.pinWriteMethods && writeMethod) || (presented && (presented.kind !== 'lsn' || !settings.db))) {
		// A write method, a time pin, or a forged one: a forgery may cost primary reads, never older data.
		pinFlow(flow, settings.db);
	} else if (presented?.kind === 'lsn' && settings.db) {
		return honourPosition(presented, flow, settings.db).then(() => pin);
	}

	return pin;
}

/**
 * For frameworks whose middleware continue by callback (Express, Fastify): once the request
 * is pinned by what it presents (at once, or after a WAL-position pin is checked), tells
 * `pinned` where it stands and continues the request inside its flow; `next(error)` if the
 * check failed.
 */
export function continueInFlow({flow, joined}: {flow: FlowState; joined: boolean}, pin: RequestPin | Promise<RequestPin>, pinned: (pin: RequestPin) => void, next: (error?: unknown) => void): void {
	const proceed = (settled: RequestPin) => {
		pinned(settled);
		if (joined) {
			next();
		} else {
			runInNewFlow(next, flow);
		}
	};

	if (pin instanceof Promise) {
		pin.then(proceed, next);
	} else {
		proceed(pin);
	}
}

/** How an adapter sets and clears the pin on its framework's response. */
export interface PinWriter {
	set(value: string): void;
	clear(): void;
}

/**
 * What the response does about the pin once its handler is done with the database: sets it
 * (a promise only while a WAL position is read), clears an LSN pin every replica has
 * replayed, or nothing.
 */
export function settlePin(flow: FlowState, settings: ResolvedPinningOptions, pin: RequestPin, flagged: boolean, writer: PinWriter): Promise<void> | undefined {
	if (responsePins(flow, settings, pin, flagged)) {
		const value = newPinValue(settings);
		if (value instanceof Promise) {
			return value.then(position => {
				writer.set(position);
			});
		}

		writer.set(value);
	} else if (pinServed(pin, settings)) {
		writer.clear();
	}

	return undefined;
}

/** The pin cookie's attributes every framework takes alike (each adds its lifetime, in its unit, and `signed`). */
export function pinCookieAttributes(settings: ResolvedPinningOptions, secureRequest: boolean) {
	return {
		path: settings.path,
		domain: settings.domain,
		httpOnly: settings.httpOnly,
		sameSite: settings.sameSite,
		secure: settings.secure ?? secureRequest,
	};
}

/**
 * The response must pin the client: a write method, a write flag the handler set on the
 * framework's request or response (`flagged`), a `dbWrite` handler, or a write that ran.
 */
export function responsePins(flow: FlowState, settings: ResolvedPinningOptions, {writeMethod}: RequestPin, flagged: boolean): boolean {
	const wrote = settings.db ? flow.databases?.get(settings.db)?.wrote === true : flow.wrote;
	return (settings.pinWriteMethods && writeMethod) || flagged || flow.markedAsWrite || wrote;
}

/** An LSN pin every replica has replayed has nothing left to do: the adapter clears it. */
export function pinServed({presented}: RequestPin, settings: ResolvedPinningOptions): boolean {
	return presented?.kind === 'lsn' && settings.db?.everyReplicaHasReplayed(presented.lsn) === true;
}

/**
 * The pin to set now: by WAL position (read after the handler's writes committed, so it
 * covers them) with `consistency: 'lsn'`, else (or when the primary cannot say) by time.
 * A time pin is made at once, without a promise.
 */
export function newPinValue(settings: ResolvedPinningOptions): string | Promise<string> {
	const expiresAt = Date.now() + (settings.seconds * 1000);
	const {db} = settings;
	if (settings.consistency !== 'lsn' || !db) {
		return `1.${expiresAt}`;
	}

	return db.primaryPosition().then(({systemId, lsn}) => encodeToken({systemId, lsn, expiresAt}), (error: unknown) => {
		// Without a position, pin by time: reads go to the primary for `seconds`.
		log('no WAL position for the pin (%s); pinning by time', (error as Error).message);
		return `1.${expiresAt}`;
	});
}

/**
 * Runs a handler that writes although its method is a read (`dbWrite`): in the request's
 * flow (`owner` is the framework's request object the flow belongs to), its reads go to the
 * primary and the response pins the client. Without `pinning()` the handler's reads still go
 * to the primary (the seed's `@db_write` pins by itself); only the *next* request cannot be
 * pinned.
 */
export async function runAsWrite<T>(owner: object, handler: () => T): Promise<Awaited<T>> {
	const flow = currentScope()?.flow;
	if (flow?.owner === owner) {
		markAsWrite(flow);
		return await handler();
	}

	warnOnce(warningCodes.dbWriteWithoutPinning, 'sequelize-multidb: dbWrite() ran in a request without pinning(): its reads go to the primary, but the next request of the client cannot be pinned; mount pinning() before the router');
	return await usePrimaryDb(handler);
}

/** The request writes, though its method may say otherwise: its reads go to the primary, and its response pins. */
export function markAsWrite(flow: FlowState): void {
	flow.pinned = true;
	flow.markedAsWrite = true;
}

/** A pinned flow: every read of `db` (or of every database, without `db`) goes to the primary. */
export function pinFlow(flow: FlowState, db: MultiDb | undefined): void {
	if (db) {
		marksOf(flow, db).pinned = true;
	} else {
		flow.pinned = true;
	}
}

/** A WAL-position pin of this cluster: the flow's reads need a server that has replayed that far. */
async function honourPosition(presented: PresentedPin & {kind: 'lsn'}, flow: FlowState, db: MultiDb): Promise<void> {
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

/** The pin the request carries, from the cookie or else the header; undefined if none is valid. */
function presentedPin(request: PinRequest, settings: ResolvedPinningOptions, signed: boolean): PresentedPin | undefined {
	// Most requests carry no pin: skip cookie parsing (and signature checks) for them.
	if (!request.cookieHeader.includes(settings.cookie)) {
		return settings.header ? headerPin(request, settings) : undefined;
	}

	let value: string | undefined;
	try {
		value = request.cookie(signed);
		if (value === undefined && signed && settings.consistency === 'lsn' && request.cookie(false) !== undefined) {
			// A WAL-position pin whose signature is wrong: it may cost primary reads, never older data.
			return {kind: 'forged'};
		}
	} catch {
		// A malformed Cookie header: no pin, never an error response.
		return undefined;
	}

	if (value === undefined && settings.header) {
		return headerPin(request, settings);
	}

	return value === undefined || value.length > maxPinLength ? undefined : parsePin(value, settings);
}

/** A pin from the header: signed where the framework has a secret, else the bare value. */
function headerPin(request: PinRequest, settings: ResolvedPinningOptions): PresentedPin | undefined {
	const header = settings.header ? request.header(settings.header) : '';
	if (header === '' || header.length > maxPinLength) {
		return undefined;
	}

	const {signer} = request;
	const unsigned = signer?.unsign(header);
	const pin = parsePin(unsigned ? unsigned.value : header, settings);
	if (!pin || !signer) {
		// Garbage is no pin at all; without a secret there is no signature to check.
		return pin;
	}

	// A well-formed pin whose signature does not match: it may cost primary reads, never older data.
	return unsigned?.valid ? pin : {kind: 'forged'};
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
