// WAL positions (LSNs). PostgreSQL prints them as two hex halves, `16/B374D848`; as a
// 64-bit integer they compare and subtract directly.

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
