// How header pins are signed (cookies are signed by each framework itself): a framework's
// signing machinery as pinning-core.ts uses it, and the HMAC signer of Koa's `app.keys` and
// cookie-parser's secret.
import {signValue, verifiedValue} from './lsn.js';

/** A framework's signing machinery, for header pins (cookies are signed by the framework itself). */
export interface PinSigner {
	sign(value: string): string;
	/** The value of a signed string, and whether its signature is valid; undefined when it is not in signed form. */
	unsign(signed: string): {readonly value: string; readonly valid: boolean} | undefined;
}

/** Signs as `value~signature`, an HMAC by the first key, checked by any (Koa's `app.keys`, cookie-parser's secret). */
export function keySigner(keys: readonly string[] | undefined): PinSigner | undefined {
	if (!keys || keys.length === 0) {
		return undefined;
	}

	return {
		sign: value => signValue(value, keys),
		unsign(signed) {
			const separator = signed.lastIndexOf('~');
			return separator < 0 ? undefined : {value: signed.slice(0, separator), valid: verifiedValue(signed, keys) !== undefined};
		},
	};
}

/** The pin as the response header carries it: signed where the framework has a secret. */
export function headerPinValue(value: string, signer: PinSigner | undefined): string {
	return signer ? signer.sign(value) : value;
}
