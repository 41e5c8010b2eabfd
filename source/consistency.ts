// Read-your-writes by WAL position: the cluster's identity, the primary's position after a
// write, consistency tokens, and the position a scope's reads must see.
import type {RoutingScope} from './context.js';
import {MultiDbError} from './errors.js';
import {decodeToken, encodeToken, parseLsn, type DecodedToken} from './lsn.js';
import {checkNumber, describe} from './validate.js';

/** How long a token from `db.consistencyToken()` is honoured, unless told otherwise. */
const defaultTokenTtlMs = 60_000;

/** Decoded tokens kept: a flow carries one or two, decoded again on every read. */
const tokenCacheSize = 256;

/** Runs a plain SELECT on the primary and resolves its one row. */
export type PrimaryRead = (sql: string) => Promise<Record<string, unknown> | null>;

export class Consistency {
	readonly #read: PrimaryRead;
	readonly #keys: readonly string[];
	readonly #router: object;
	readonly #decodedTokens = new Map<string, DecodedToken>();
	#systemId: Promise<string> | undefined;
	#knownSystemId: string | undefined;

	/** @param router The router whose LSN pins this is about. */
	constructor(read: PrimaryRead, keys: readonly string[], router: object) {
		this.#read = read;
		this.#keys = keys;
		this.#router = router;
	}

	/** The cluster's identity, once learned (tokens cannot be judged before). */
	get knownSystemId(): string | undefined {
		return this.#knownSystemId;
	}

	/**
	 * PostgreSQL's system identifier, which a primary and its physical replicas share: the
	 * cluster's identity in tokens. Read once, then cached (a failed read is tried again).
	 */
	async systemIdentifier(): Promise<string> {
		this.#systemId ??= this.#read('SELECT system_identifier::text AS id FROM pg_control_system()')
			.then(row => {
				const id = String(row?.id);
				this.#knownSystemId = id;
				return id;
			}, (error: unknown) => {
				this.#systemId = undefined;
				throw error;
			});
		return this.#systemId;
	}

	/** The cluster's identity and the primary's WAL position, read now. */
	async primaryPosition(): Promise<{systemId: string; lsn: bigint}> {
		const [systemId, row] = await Promise.all([
			this.systemIdentifier(),
			this.#read('SELECT pg_current_wal_lsn()::text AS lsn'),
		]);
		const lsn = parseLsn(row?.lsn);
		if (lsn === undefined) {
			throw new MultiDbError('MULTIDB_BAD_TOKEN', `The primary reported no WAL position (got ${describe(row?.lsn)})`);
		}

		return {systemId, lsn};
	}

	/** A signed token for the primary's position now, honoured for `ttlMs`. */
	async token(ttlMs = defaultTokenTtlMs): Promise<string> {
		checkNumber('ttlMs', ttlMs, {min: 0, exclusive: true});
		const {systemId, lsn} = await this.primaryPosition();
		return encodeToken({systemId, lsn, expiresAt: Date.now() + ttlMs}, this.#keys);
	}

	/** Whether the scope asks for a position at all (the common read asks for none). */
	concerns(scope: RoutingScope | undefined): boolean {
		return scope?.consistency !== undefined || scope?.flow?.databases?.get(this.#router)?.minLsn !== undefined;
	}

	/**
	 * The WAL position this scope's reads must see: from an LSN-mode pin (Koa) and from
	 * `withConsistency` tokens of this cluster that have not expired. `primary` where a
	 * token's signature is wrong, or the cluster's identity is still unknown: such a read may
	 * use the primary, never read older.
	 */
	requiredPosition(scope: RoutingScope | undefined, now = Date.now()): bigint | 'primary' | undefined {
		let required = scope?.flow?.databases?.get(this.#router)?.minLsn;
		for (const text of scope?.consistency ?? []) {
			const decoded = this.#decode(text);
			if (!decoded.ok || this.#knownSystemId === undefined) {
				return 'primary';
			}

			const {token} = decoded;
			if (token.systemId === this.#knownSystemId && token.expiresAt > now && (required === undefined || token.lsn > required)) {
				required = token.lsn;
			}
		}

		return required;
	}

	#decode(text: string): DecodedToken {
		let decoded = this.#decodedTokens.get(text);
		if (!decoded) {
			decoded = decodeToken(text, this.#keys);
			if (this.#decodedTokens.size >= tokenCacheSize) {
				this.#decodedTokens.clear();
			}

			this.#decodedTokens.set(text, decoded);
		}

		return decoded;
	}
}
