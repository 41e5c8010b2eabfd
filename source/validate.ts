// Checks of user-supplied values, shared by every options type. Each failure is a
// TypeError that names the option, what was expected and what was received.

/** A short, safe description of a received value for an error message. */
export function describe(value: unknown): string {
	if (value === null) {
		return 'null';
	}

	switch (typeof value) {
		case 'string': {
			return `${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)} (string)`;
		}

		case 'number':
		case 'boolean':
		case 'bigint': {
			return `${String(value)} (${typeof value})`;
		}

		case 'object': {
			return Array.isArray(value) ? 'an array' : 'an object';
		}

		default: {
			return typeof value;
		}
	}
}

export function invalid(name: string, expected: string, received: unknown): TypeError {
	return new TypeError(`Expected \`${name}\` to be ${expected}, got ${describe(received)}`);
}

/** The options argument itself: absent, or a plain object with only known keys. */
export function checkOptionsObject(label: string, options: unknown, known: readonly string[]): Record<string, unknown> {
	if (options === undefined) {
		return {};
	}

	if (typeof options !== 'object' || options === null || Array.isArray(options)) {
		throw invalid(label, 'an object', options);
	}

	for (const key of Object.keys(options)) {
		if (!known.includes(key)) {
			throw new TypeError(`Unknown option \`${key}\` in \`${label}\`; known options are ${known.map(name => `\`${name}\``).join(', ')}`);
		}
	}

	return options as Record<string, unknown>;
}

export function checkBoolean(name: string, value: unknown): boolean {
	if (typeof value !== 'boolean') {
		throw invalid(name, 'a boolean', value);
	}

	return value;
}

/** A finite number >= `min`, or > `min` where `exclusive` (a duration of 0 would mean nothing). */
export function checkNumber(name: string, value: unknown, {min = 0, exclusive = false, integer = false}: {min?: number; exclusive?: boolean; integer?: boolean} = {}): number {
	const inRange = typeof value === 'number' && (exclusive ? value > min : value >= min);
	if (!inRange || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
		throw invalid(name, `a finite ${integer ? 'integer' : 'number'} ${exclusive ? '>' : '>='} ${min}`, value);
	}

	return value;
}

export function checkString(name: string, value: unknown, pattern?: RegExp, patternDescription?: string): string {
	if (typeof value !== 'string' || value.length === 0) {
		throw invalid(name, 'a non-empty string', value);
	}

	if (pattern && !pattern.test(value)) {
		throw invalid(name, patternDescription ?? `a string matching ${String(pattern)}`, value);
	}

	return value;
}

export function checkOneOf<T extends string>(name: string, value: unknown, choices: readonly T[]): T {
	if (!choices.includes(value as T)) {
		throw invalid(name, `one of ${choices.map(choice => `'${choice}'`).join(', ')}`, value);
	}

	return value as T;
}

/** Brands a `MultiDb` handle: `instanceof` fails across the ESM and CommonJS builds. */
export const routerBrand = Symbol.for('sequelize-multidb.router');

/** Whether `value` is a router handle from `multidb()`, from either build of this package. */
export function isMultiDb(value: unknown): value is {readonly [routerBrand]: true} {
	return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[routerBrand] === true;
}
