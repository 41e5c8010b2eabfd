// The read pool Sequelize acquires from, in place of its own: the replica chosen per
// *query* (Sequelize's own read pool chooses one per pooled connection, so once warm,
// sequential reads reuse one connection and all land on one replica). A routed read comes
// with its attempt (made by the installed query, carried in the query's own options); a
// `readOnly` transaction comes through Sequelize's dispatcher, with none.
import createDebug from 'debug';
import type {Affinity} from './affinity.js';
import type {Balancer} from './balancer.js';
import type {CatchUp} from './catch-up.js';
import type {Consistency} from './consistency.js';
import {currentScope, readsPinned, type DatabaseMarks, type RoutingScope} from './context.js';
import type {ReadDeadlines} from './deadline.js';
import {NoReplicaAvailableError} from './errors.js';
import type {EmitEvent} from './events.js';
import {describeFailure, isConnectFailure} from './failure.js';
import {acquireLastResort} from './last-resort.js';
import {isLockingRead} from './query-kind.js';
import {onPrimaryConnection, type ReadAttempt} from './read-attempt.js';
import {replicaOf, type Replica} from './replica.js';
import type {ReplicaGroups} from './replica-groups.js';
import {decideRead, lastResortOrder, type ReadDecision, type ReadFacts} from './routing-policy.js';
import {asAcquireError, rethrowAsAcquireError, type PooledConnection, type ReadPool} from './sequelize-internals.js';

const log = createDebug('sequelize-multidb:pool');

export interface ReadPoolOptions {
	/** Every node in round-robin order: the replicas, then the configured primary (which serves reads only once it is a standby). */
	readonly replicas: readonly Replica[];
	/** The router this pool serves (its per-database pins). */
	readonly router: object;
	readonly consistency: Consistency;
	readonly catchUp: CatchUp;
	readonly fallbackToPrimary: boolean;
	/** Sequelize's own read pool, which may still hold connections taken before install. */
	readonly nativePool: ReadPool;
	/** The primary's pool, for reads no replica can serve. */
	readonly primaryPool: ReadPool;
	/** Deadlines of reads on replicas (`readTimeoutMs`); undefined when reads have no time limit. */
	readonly deadlines: ReadDeadlines<ReadAttempt> | undefined;
	/** A replica failed to give a connection (the prober takes it from there). */
	readonly onConnectFailure: (replica: Replica, error: unknown) => void;
	readonly emit: EmitEvent;
	/** Chooses among the replicas a read may use. */
	readonly balancer: Balancer;
	readonly affinity: Affinity;
	readonly groups: ReplicaGroups;
	/** Asks every node its role now (a monitor round), for a read about to fail. */
	readonly askRoles: () => Promise<void>;
}

export class ReadPoolOfReplicas implements ReadPool {
	readonly replicas: readonly Replica[];
	readonly #options: ReadPoolOptions;
	readonly #balancer: Balancer;
	#fallingBack = false;

	constructor(options: ReadPoolOptions) {
		this.#options = options;
		this.replicas = options.replicas;
		this.#balancer = options.balancer;
	}

	/**
	 * A connection for one routed read. The common case (a usable replica) is one promise;
	 * failures, consistency questions, the fallback and the last resort take the slow path.
	 * Not `async`: an async frame costs extra microtask turns per read.
	 */
	acquireFor(attempt: ReadAttempt): Promise<PooledConnection> {
		const forced = attempt.forcedReplica;
		if (forced) {
			attempt.reason = 'chosen-replica';
			return forced.acquire().then(connection => this.#watched(attempt, forced, connection), rethrowAsAcquireError);
		}

		if (attempt.scope?.consistency && this.#options.consistency.knownSystemId === undefined && !attempt.identityAsked) {
			// A token names its cluster: learn ours before judging tokens (once; without it,
			// as with the primary down, such a read goes to the primary).
			attempt.identityAsked = true;
			const again = async () => this.acquireFor(attempt);
			return this.#options.consistency.systemIdentifier().then(again, again);
		}

		const {scope} = attempt;
		const decision = decideRead(this.#facts(scope, isLockingRead(attempt.sql), attempt.misroutedWrite, false));
		attempt.reason = decision.reason === 'round-robin' ? this.#balancer.reason : decision.reason;
		if (decision.target === 'primary') {
			return this.#options.primaryPool.acquire().then(onPrimaryConnection(attempt), rethrowAsAcquireError);
		}

		const marks = this.#options.affinity.marksFor(scope);
		if (marks) {
			return this.#acquireWithAffinity(attempt, decision, marks);
		}

		const replica = this.#balancer.next(attempt.excluded, decision.minLsn, this.#options.groups.allowed(scope));
		if (!replica) {
			return this.#acquireSlowly(attempt, attempt.excluded, decision);
		}

		return replica.acquire().then(connection => {
			this.#fallingBack = false;
			return this.#watched(attempt, replica, connection);
		}, async (error: unknown) => this.#acquireSlowly(attempt, this.#connectFailed(replica, error, attempt.excluded), decision));
	}

	/**
	 * Sequelize's dispatcher asks here for a connection of type SELECT without `useMaster`
	 * that is not a routed read: a `readOnly` transaction's. It is never retried; its replica
	 * is the first usable one (connect failures skipped), else the primary.
	 */
	acquire(): Promise<PooledConnection> {
		const scope = currentScope();
		const decision = decideRead(this.#facts(scope, false, false, true));
		if (decision.target === 'primary') {
			return this.#options.primaryPool.acquire();
		}

		const replica = this.#options.affinity.replicaForTransaction(scope);
		return replica ? replica.acquire().then(connection => this.#watched(undefined, replica, connection)) : this.#acquireSlowly(undefined, undefined, decision);
	}

	release(connection: PooledConnection): void {
		const replica = replicaOf(connection);
		if (replica) {
			this.#balancer.finished(replica, connection);
			replica.pool.release(connection);
		} else {
			this.#options.nativePool.release(connection);
		}
	}

	async destroy(connection: PooledConnection): Promise<void> {
		const replica = replicaOf(connection);
		if (replica) {
			this.#balancer.finished(replica, connection);
		}

		await (replica ? replica.pool.destroy(connection) : this.#options.nativePool.destroy(connection));
	}

	async drain(): Promise<void> {
		await Promise.all([this.#options.nativePool.drain(), ...this.replicas.map(async replica => replica.pool.drain())]);
	}

	async destroyAllNow(): Promise<void> {
		await Promise.all([this.#options.nativePool.destroyAllNow(), ...this.replicas.map(async replica => replica.pool.destroyAllNow())]);
	}

	/** What the scope asks of a read, and what the read is, as the policy takes them. */
	#facts(scope: RoutingScope | undefined, locking: boolean, misroutedWrite: boolean, transaction: boolean): ReadFacts {
		const {consistency} = this.#options;
		return {pinned: readsPinned(scope, this.#options.router), required: consistency.concerns(scope) ? consistency.requiredPosition(scope) : undefined, locking, misroutedWrite, transaction};
	}

	/**
	 * A read of a flow with affinity: on the flow's replica, or the one that takes over from
	 * it; where none may, on the primary for the rest of the flow (a flow that saw the
	 * primary's data must not read a replica behind it).
	 */
	async #acquireWithAffinity(attempt: ReadAttempt, decision: ReadDecision & {target: 'replicas'}, marks: DatabaseMarks): Promise<PooledConnection> {
		const allowed = this.#options.groups.allowed(attempt.scope);
		let failed = attempt.excluded;
		for (;;) {
			const choice = this.#options.affinity.choose(marks, {excluded: failed, minLsn: decision.minLsn, allowed});
			if (choice === 'lost' || choice === 'unbound') {
				const connection = await (choice === 'lost' ? this.#options.primaryPool.acquire() : this.#acquireSlowly(attempt, failed, decision));
				if (attempt.replica) {
					marks.replica = attempt.replica;
				} else {
					marks.pinned = true;
					if (choice === 'lost') {
						attempt.reason = 'affinity-lost';
					}
				}

				return connection;
			}

			try {
				const connection = await choice.acquire();
				attempt.reason = 'affinity';
				return this.#watched(attempt, choice, connection);
			} catch (error) {
				failed = this.#connectFailed(choice, error, failed);
			}
		}
	}

	/** A replica failed to give a connection: nothing was sent to it, so it is safe to skip. */
	#connectFailed(replica: Replica, error: unknown, failed: ReadonlyMap<Replica, string> | undefined): ReadonlyMap<Replica, string> {
		if (!isConnectFailure(error)) {
			throw asAcquireError(error);
		}

		this.#options.onConnectFailure(replica, error);
		return new Map(failed).set(replica, describeFailure(error));
	}

	async #acquireSlowly(attempt: ReadAttempt | undefined, excluded: ReadonlyMap<Replica, string> | undefined, decision: ReadDecision & {target: 'replicas'}): Promise<PooledConnection> {
		let failed = excluded;
		const {minLsn} = decision;
		const allowed = this.#options.groups.allowed(attempt?.scope ?? currentScope());
		for (;;) {
			let replica = this.#balancer.next(failed, minLsn, allowed);
			if (!replica && minLsn !== undefined) {
				const triedWithout = failed;
				replica = await this.#options.catchUp.find(triedWithout, minLsn, () => this.#balancer.next(triedWithout, minLsn, allowed));
				if (!replica) {
					if (attempt) {
						attempt.reason = 'not-caught-up';
					}

					return this.#options.primaryPool.acquire();
				}
			}

			if (!replica) {
				return this.#fallback(attempt, failed);
			}

			try {
				const connection = await replica.acquire();
				this.#fallingBack = false;
				return this.#watched(attempt, replica, connection);
			} catch (error) {
				failed = this.#connectFailed(replica, error, failed);
			}
		}
	}

	async #fallback(attempt: ReadAttempt | undefined, failed: ReadonlyMap<Replica, string> | undefined): Promise<PooledConnection> {
		const reasons = Object.fromEntries(this.replicas.filter(replica => !replica.takesWrites).map(replica => [replica.name, failed?.get(replica) ?? replica.unusableReason()]));

		if (!this.#options.fallbackToPrimary || attempt?.primaryFailed) {
			return this.#lastResort(attempt, failed, new NoReplicaAvailableError(reasons, {primaryFailed: attempt?.primaryFailed}));
		}

		if (!this.#fallingBack) {
			this.#fallingBack = true;
			log('no replica can serve reads, falling back to the primary: %o', reasons);
			this.#options.emit('fallbackToPrimary', {reasons});
		}

		if (attempt) {
			attempt.reason = 'fallback';
		}

		return this.#options.primaryPool.acquire().catch(async (error: unknown) => {
			if (!attempt || !isConnectFailure(error)) {
				throw error;
			}

			return this.#lastResort(attempt, failed, error);
		});
	}

	/**
	 * No replica in rotation, and the primary cannot take the read (down, or `fallbackToPrimary`
	 * off): the replicas out of rotation are tried before it fails (last-resort.ts). Only a
	 * routed read gets here, never a transaction.
	 */
	async #lastResort(attempt: ReadAttempt | undefined, failed: ReadonlyMap<Replica, string> | undefined, finalError: unknown): Promise<PooledConnection> {
		if (!attempt) {
			throw finalError;
		}

		const allowed = this.#options.groups.allowed(attempt.scope);
		const connection = await acquireLastResort({
			failed,
			order: excluded => lastResortOrder(this.replicas, excluded, allowed),
			attempt,
			use: (replica, acquired) => this.#watched(attempt, replica, acquired),
			onConnectFailure: this.#options.onConnectFailure,
			askRoles: this.#options.askRoles,
		});
		if (connection) {
			return connection;
		}

		throw finalError;
	}

	/**
	 * Notes on the attempt which replica its read runs on (only such reads are retried) and
	 * watches the read's deadline: past it, the connection is cut (`readPastDeadline`) and
	 * the read fails over.
	 */
	#watched(attempt: ReadAttempt | undefined, replica: Replica, connection: PooledConnection): PooledConnection {
		this.#balancer.started(replica, connection);
		if (attempt) {
			attempt.replica = replica;
			attempt.connection = connection;
			this.#options.deadlines?.watch(attempt);
		}

		return connection;
	}
}

