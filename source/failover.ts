// The installed `sequelize.query`: it hands each query its attempt (in the query's own
// options, where the read pool finds it), retries a read that failed because of its server,
// counts where every query ran and why, and marks the flow's writes (so its later reads,
// and the Koa pin, see them).
import createDebug from 'debug';
import {QueryTypes} from 'sequelize';
import {currentScope, marksOf, type RoutingScope} from './context.js';
import {abortConnection, type ReadDeadlines} from './deadline.js';
import type {Affinity} from './affinity.js';
import {classifyFailure, describeFailure} from './failure.js';
import type {Prober} from './prober.js';
import {isWriteQuery, queryTypeOf, type QueryFacts} from './query-kind.js';
import type {ReadAttempt} from './read-attempt.js';
import type {ReadPoolOfReplicas} from './read-pool.js';
import {replicaOf, type Replica} from './replica.js';
import {attemptKey, type PooledConnection} from './sequelize-internals.js';
import type {StatsRecorder} from './stats.js';

const log = createDebug('sequelize-multidb:failover');

export type QueryFunction = (sql: unknown, options?: unknown) => Promise<unknown>;

/** What a query's next attempt must avoid, after failed ones. */
interface Retry {
	readonly excluded?: ReadonlyMap<Replica, string>;
	/** A write reached a replica: run it on the primary. */
	readonly misroutedWrite?: boolean;
	/** The primary failed a read that fell back to it. */
	readonly primaryFailed?: boolean;
	/** A routed read failed on the primary's connection and was tried there once more. */
	readonly primaryRetried?: boolean;
	readonly attemptNumber: number;
}

/** Shared by every first attempt: nothing to allocate for it. */
const firstAttempt: Retry = Object.freeze({attemptNumber: 1});

export interface FailoverOptions {
	/** Sequelize's own `query`, bound to the instance. */
	readonly originalQuery: QueryFunction;
	/** Undefined when no replica is configured: queries are only counted. */
	readonly pool: ReadPoolOfReplicas | undefined;
	/** The router whose flow marks this sets. */
	readonly router: object;
	readonly stats: StatsRecorder;
	readonly deadlines: ReadDeadlines<ReadAttempt> | undefined;
	readonly prober: Prober | undefined;
	/** Request affinity: a flow's completed read on its replica bounds what it has seen. */
	readonly affinity: Affinity | undefined;
	/** Sequelize's `options.query`: defaults merged into every query's options. */
	readonly queryDefaults: QueryFacts;
	/** The transaction Sequelize takes from its CLS namespace, where `useCLS` is on. */
	readonly clsTransaction: () => {connection?: PooledConnection} | undefined;
}

export class Failover {
	readonly #options: FailoverOptions;

	constructor(options: FailoverOptions) {
		this.#options = options;
	}

	/** The installed `sequelize.query`. */
	readonly query: QueryFunction = (sql, options) => this.#run(sql, options, currentScope(), firstAttempt);

	/** `getReplica().query`: a read on exactly this replica, never retried elsewhere. */
	async queryOn(replica: Replica, sql: string, options: object): Promise<unknown> {
		const attempt = this.#attempt(sql, currentScope(), firstAttempt, replica);
		const typed = {...options, type: QueryTypes.SELECT};
		try {
			return await this.#options.originalQuery(sql, attempt ? {...typed, [attemptKey]: attempt} : typed);
		} finally {
			if (attempt) {
				this.#options.deadlines?.done(attempt);
			}

			this.#account(attempt, sql, typed, attempt?.scope);
		}
	}

	/**
	 * One attempt, and the next after a failure of its server: on the next usable replica,
	 * then the primary; and a read that fell back to a primary that failed, on the replicas
	 * out of rotation. Only a read outside a transaction is retried (the attempt's `replica`
	 * or its `fallback` reason is set only then), and Sequelize hands no row to the caller
	 * before the query completes, so nothing is written or returned twice. A promise chain,
	 * not async/await: on a fast read, each extra promise is measurable.
	 */
	#run(sql: unknown, options: unknown, scope: RoutingScope | undefined, retry: Retry): Promise<unknown> {
		const attempt = this.#attempt(sql, scope, retry, undefined);
		const routedOptions = attempt ? {...options as object, [attemptKey]: attempt} : options;
		return this.#options.originalQuery(sql, routedOptions).then(result => {
			if (attempt) {
				this.#options.deadlines?.done(attempt);
				if (attempt.replica) {
					this.#options.affinity?.readCompleted(scope, attempt.replica);
				}
			}

			this.#account(attempt, sql, options, scope);
			return result;
		}, (error: unknown) => {
			if (attempt) {
				this.#options.deadlines?.done(attempt);
			}

			// A failed query counts too: a write may have committed before its connection died.
			this.#account(attempt, sql, options, scope);
			const again = attempt && this.#retryAfter(attempt, error, scope, retry);
			if (!again) {
				throw error;
			}

			return this.#run(sql, options, scope, again);
		});
	}

	#attempt(sql: unknown, scope: RoutingScope | undefined, retry: Retry, forcedReplica: Replica | undefined): ReadAttempt | undefined {
		const {pool} = this.#options;
		if (!pool) {
			return undefined;
		}

		return {
			nodeCount: pool.replicas.length,
			scope,
			sql: sqlText(sql),
			misroutedWrite: retry.misroutedWrite === true,
			primaryFailed: retry.primaryFailed === true,
			excluded: retry.excluded,
			forcedReplica,
			identityAsked: false,
			reason: undefined,
			replica: undefined,
			timedOut: false,
			deadline: 0,
			connection: undefined,
		};
	}

	/** What the next attempt of a failed query avoids, or undefined where it must not be retried. */
	#retryAfter(attempt: ReadAttempt, error: unknown, scope: RoutingScope | undefined, retry: Retry): Retry | undefined {
		const {replica} = attempt;
		const kind = attempt.timedOut ? 'timeout' : classifyFailure(error);
		const attemptNumber = retry.attemptNumber + 1;
		if (kind === undefined || attempt.forcedReplica || attemptNumber > attempt.nodeCount + 2) {
			return undefined;
		}

		if (!replica) {
			// A read that fell back to the primary, which failed: the replicas out of rotation
			// are its last resort (once).
			if (attempt.reason === 'fallback') {
				return kind === 'connection' && !retry.primaryFailed ? {...retry, primaryFailed: true, attemptNumber} : undefined;
			}

			// A routed read (the read pool gave it a reason) that ran on the primary, whose
			// connection failed: once more, on a fresh connection. A restarted primary leaves dead
			// connections in the pool, and a read that needs the primary should not die of one.
			const routedRead = attempt.reason !== undefined && !retry.misroutedWrite && !retry.primaryRetried && kind === 'connection';
			if (routedRead) {
				this.#options.stats.failover(kind, 'primary');
				if (attempt.connection) {
					// Back in the pool already, maybe not yet seen closed: never handed out again.
					abortConnection(attempt.connection);
				}
			}

			return routedRead ? {...retry, primaryRetried: true, attemptNumber} : undefined;
		}

		if (kind === 'read-only') {
			if (retry.misroutedWrite) {
				return undefined;
			}

			// A write reached a replica: it runs once on the primary and pins like a write.
			this.#options.stats.failover(kind, replica.name);
			this.#markWrite(scope);
			log('write on %s (25006), retrying on the primary', replica.name);
			return {...retry, misroutedWrite: true, attemptNumber};
		}

		this.#options.stats.failover(kind, replica.name);
		if (kind !== 'conflict') {
			// One connection failed; a probe decides about the server.
			this.#options.prober?.connectionFailed(replica, error);
		}

		log('read failed on %s (%s), retrying elsewhere', replica.name, kind);
		return {...retry, excluded: new Map(retry.excluded).set(replica, describeFailure(error)), attemptNumber};
	}

	/** Counts where a finished query ran and why, and marks a write in the flow. */
	#account(attempt: ReadAttempt | undefined, sql: unknown, queryOptions: unknown, scope: RoutingScope | undefined): void {
		if (attempt?.replica && attempt.reason) {
			// A routed read on a replica (the common case): the read pool said where and why.
			this.#options.stats.record(attempt.replica.name, attempt.reason);
			if (scope?.replicaGroup !== undefined) {
				this.#options.stats.group(scope.replicaGroup);
			}

			return;
		}

		const options = queryOptions as QueryFacts | undefined;
		const transaction = options?.transaction === undefined ? this.#options.clsTransaction() : options.transaction;
		const connection = transaction?.connection as PooledConnection | undefined;
		const replica = connection && replicaOf(connection);
		const type = queryTypeOf(options, this.#options.queryDefaults);
		let reason = attempt?.reason;
		if (!reason) {
			// The query never asked the read pool: Sequelize sent it to the primary itself.
			if (transaction) {
				reason = replica ? 'read-only-transaction' : 'transaction';
			} else if (type === 'SELECT') {
				reason = this.#options.pool ? 'use-master' : 'no-replicas';
			} else {
				reason = 'write';
			}
		}

		this.#options.stats.record(replica?.name ?? 'primary', reason);
		if (!replica && isWriteQuery(type, attempt?.sql ?? sqlText(sql))) {
			this.#markWrite(scope);
		}
	}

	/** A write ran in the flow: its later reads of this database must see it, and the client is pinned. */
	#markWrite(scope: RoutingScope | undefined): void {
		if (scope?.flow) {
			scope.flow.wrote = true;
			const marks = marksOf(scope.flow, this.#options.router);
			marks.wrote = true;
			marks.pinned = true;
		}
	}
}

function sqlText(sql: unknown): string | undefined {
	if (typeof sql === 'string') {
		return sql;
	}

	const query = (sql as {query?: unknown} | null | undefined)?.query;
	return typeof query === 'string' ? query : undefined;
}
