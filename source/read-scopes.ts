// Scopes that change how the reads inside them are routed, without pinning them to the
// primary: a consistency token's position, request affinity, a replica group.
import {currentScope, newFlow, runInScope} from './context.js';
import {MultiDbError} from './errors.js';
import {decodeToken} from './lsn.js';
import {describe, invalid} from './validate.js';

/**
 * Runs `fn` with reads that see at least what the token's write saw: each read goes to a
 * replica that has replayed the token's WAL position, or to the primary while none has.
 * For work that leaves the request (a queued job, another service): pass it the token
 * from `db.consistencyToken()`. A malformed or oversized token throws `MULTIDB_BAD_TOKEN`;
 * one of another cluster is ignored; one with a bad signature sends reads to the primary.
 */
export function withConsistency<T>(token: string, fn: () => T): T {
	if (typeof fn !== 'function') {
		throw new TypeError(`Expected \`fn\` to be a function, got ${describe(fn)}`);
	}

	const decoded = decodeToken(token);
	if (!decoded.ok) {
		throw new MultiDbError('MULTIDB_BAD_TOKEN', `Expected \`token\` to be a consistency token from db.consistencyToken(), got ${decoded.problem === 'oversized' ? `one of ${token.length} characters` : describe(token)}`);
	}

	const scope = currentScope();
	return runInScope({primaryOnly: false, ...scope, consistency: [...scope?.consistency ?? [], token]}, fn);
}

/**
 * Runs `fn` with request affinity, whatever the router's `affinity` option says: its reads
 * of each database go to one replica, picked at the first read, so they never go back in
 * time (see the README for what happens when that replica fails). Outside any flow (a job,
 * a script), `fn` runs as a flow of its own. Returns `fn`'s result.
 */
export function withAffinity<T>(fn: () => T): T {
	if (typeof fn !== 'function') {
		throw new TypeError(`Expected \`fn\` to be a function, got ${describe(fn)}`);
	}

	const scope = currentScope();
	return runInScope({primaryOnly: false, ...scope, flow: scope?.flow ?? newFlow(), affinity: true}, fn);
}

/**
 * Runs `fn` with its reads confined to one replica group (the router's `groups` option):
 * API traffic on its own replicas, say. Where the whole group is out of rotation, reads go
 * to the primary (or fail, with `fallbackToPrimary: false`); a group the router does not
 * define makes the read throw a TypeError. Nests: the innermost group wins.
 */
export function useReplicas<T>(group: string, fn: () => T): T {
	if (typeof group !== 'string' || group.length === 0) {
		throw invalid('group', 'a non-empty string naming a replica group', group);
	}

	if (typeof fn !== 'function') {
		throw new TypeError(`Expected \`fn\` to be a function, got ${describe(fn)}`);
	}

	return runInScope({primaryOnly: false, ...currentScope(), replicaGroup: group}, fn);
}
