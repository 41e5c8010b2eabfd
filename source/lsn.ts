// WAL positions (LSNs), and consistency tokens built on them. PostgreSQL prints an LSN as
// two hex halves, `16/B374D848`; as a 64-bit integer it compares and subtracts directly.
import {createHmac, timingSafeEqual} from 'node:crypto';

const lsnPattern = /^([\dA-F]{1,8})\/([\dA-F]{1,8})$/i;

/** Parses `X/Y`; undefined for anything else (including SQL NULL). */
export function parseLsn(text: unknown): bigint | undefined {
	if (typeof text !== 'string') {
		return undefined;
	}

	const match = lsnPattern.exec(text);
	if (!match) {
		return undefined;
	}

	return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(lsn: bigint): string {
	return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xFF_FF_FF_FFn).toString(16).toUpperCase()}`;
}

/**
 * A consistency token: "reads must see the primary's WAL up to `lsn`", for the cluster
 * `systemId` (PostgreSQL's system identifier, shared by a primary and its physical
 * replicas), until `expiresAt` (epoch ms). On the wire:
 * `mdb1.<systemId>.<lsn hex>.<expiresAt>[.<signature>]`.
 */
export interface ConsistencyToken {
	readonly systemId: string;
	readonly lsn: bigint;
	readonly expiresAt: number;
	/** The token carried a valid signature (false where no keys are set). */
	readonly signed: boolean;
}

const tokenVersion = 'mdb1';
/** Longer text is never a token of ours: not even parsed. */
export const maxTokenLength = 200;
const tokenPattern = /^mdb1\.([\dA-Za-z-]{1,64})\.([\dA-F]{1,16})\.(\d{1,15})(?:\.([\w-]{16,64}))?$/i;

export function encodeToken(token: Omit<ConsistencyToken, 'signed'>, keys?: readonly string[]): string {
	const payload = `${tokenVersion}.${token.systemId}.${token.lsn.toString(16).toUpperCase()}.${token.expiresAt}`;
	return keys && keys.length > 0 ? `${payload}.${signature(payload, keys[0])}` : payload;
}

export type DecodedToken =
	| {readonly ok: true; readonly token: ConsistencyToken}
	| {readonly ok: false; readonly problem: 'malformed' | 'oversized' | 'bad-signature'};

/**
 * Parses a token and checks its signature against `keys` (any of them, so keys can be
 * rotated). Expiry and cluster are the caller's to judge. Without keys, a signature
 * cannot be checked and the token counts as unsigned.
 */
export function decodeToken(text: unknown, keys?: readonly string[]): DecodedToken {
	if (typeof text !== 'string') {
		return {ok: false, problem: 'malformed'};
	}

	if (text.length > maxTokenLength) {
		return {ok: false, problem: 'oversized'};
	}

	const match = tokenPattern.exec(text);
	if (!match) {
		return {ok: false, problem: 'malformed'};
	}

	const [, systemId, lsnHex, expiresAt] = match;
	// An optional group: absent when the token is unsigned.
	const givenSignature = match[4] as string | undefined;
	let signed = false;
	if (keys && keys.length > 0) {
		const payload = text.slice(0, text.length - (givenSignature === undefined ? 0 : givenSignature.length + 1));
		signed = givenSignature !== undefined && keys.some(key => safeEqual(signature(payload, key), givenSignature));
		if (!signed) {
			return {ok: false, problem: 'bad-signature'};
		}
	}

	return {ok: true, token: {systemId, lsn: BigInt(`0x${lsnHex}`), expiresAt: Number(expiresAt), signed}};
}

function signature(payload: string, key: string): string {
	return createHmac('sha256', key).update(payload).digest('base64url').slice(0, 27);
}

/** `value~signature` with the first key, for values that travel outside signed cookies. */
export function signValue(value: string, keys: readonly string[]): string {
	return `${value}~${signature(value, keys[0])}`;
}

/** The value of a `signValue` result, when one of `keys` signed it; undefined otherwise. */
export function verifiedValue(signed: string, keys: readonly string[]): string | undefined {
	const separator = signed.lastIndexOf('~');
	if (separator < 0) {
		return undefined;
	}

	const value = signed.slice(0, separator);
	const given = signed.slice(separator + 1);
	return keys.some(key => safeEqual(signature(value, key), given)) ? value : undefined;
}

function safeEqual(a: string, b: string): boolean {
	const left = Buffer.from(a);
	const right = Buffer.from(b);
	return left.length === right.length && timingSafeEqual(left, right);
}
