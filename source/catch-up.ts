// The slow path of read-your-writes by WAL position: no replica is *known* to have replayed
// the write yet (the monitor's view is up to an interval old), so the likeliest one is asked.
// A replica that keeps up usually has the write within milliseconds, so it is asked again,
// briefly, before the primary takes the read; one that is not moving is not waited for.
import {setTimeout as delay} from 'node:timers/promises';
import createDebug from 'debug';
import {queryWithin} from './deadline.js';
import {describeFailure} from './failure.js';
import {parseLsn} from './lsn.js';
import type {Replica} from './replica.js';
import type {ClientConnection} from './sequelize-internals.js';

const log = createDebug('sequelize-multidb:catch-up');

/** How often a read that must see a fresh write asks a replica before using the primary. */
const maxQuestions = 5;
/**
 * Pause before each further question: 2, 4, 8, then 8 ms (22 ms at most in all, and only
 * while the replica is close behind or moving). A replica on a loaded machine can take
 * 10-20 ms to replay a fresh commit; giving up after a few ms sent such reads to the primary.
 */
const questionIntervalMs = 2;
const maxQuestionIntervalMs = 8;
/** A replica measured this close behind the primary is worth those few ms. */
const closeLagMs = 100;

export class CatchUp {
	readonly #replicas: readonly Replica[];
	readonly #timeoutMs: number;
	/** Concurrent reads share one question per replica. */
	readonly #questions = new Map<Replica, Promise<void>>();

	/** @param timeoutMs Bound on one question (`connectTimeoutMs`). */
	constructor(replicas: readonly Replica[], timeoutMs: number) {
		this.#replicas = replicas;
		this.#timeoutMs = timeoutMs;
	}

	/**
	 * Asks until `pick()` finds a replica that has replayed `minLsn`, or it is not worth
	 * asking again; resolves what `pick()` last found.
	 */
	async find(excluded: ReadonlyMap<Replica, string> | undefined, minLsn: bigint, pick: () => Replica | undefined): Promise<Replica | undefined> {
		// The likeliest replica's position after the question before last: set from the
		// second question on, so movement between two answers can be seen.
		let previousAnswer: bigint | undefined;
		for (let questions = 0; questions < maxQuestions; questions++) {
			if (questions > 0) {
				if (!this.#worthWaitingFor(excluded, previousAnswer)) {
					return undefined;
				}

				previousAnswer = this.#likeliest(excluded)?.replayLsn;
				await delay(Math.min(questionIntervalMs * (2 ** (questions - 1)), maxQuestionIntervalMs));
			}

			await this.#ask(excluded, minLsn);
			const replica = pick();
			if (replica) {
				return replica;
			}
		}

		return undefined;
	}

	#likeliest(excluded: ReadonlyMap<Replica, string> | undefined): Replica | undefined {
		return this.#replicas.filter(replica => replica.usable && !excluded?.has(replica)).sort(likelierCaughtUp).at(0);
	}

	/**
	 * Whether the likeliest replica is worth a few ms more: the monitor measured it close
	 * behind, or its replay position moved since the previous answer (it is catching up,
	 * not held back).
	 */
	#worthWaitingFor(excluded: ReadonlyMap<Replica, string> | undefined, previousAnswer: bigint | undefined): boolean {
		const replica = this.#likeliest(excluded);
		if (!replica) {
			return false;
		}

		const moving = previousAnswer === undefined || (replica.replayLsn !== undefined && replica.replayLsn > previousAnswer);
		return moving || (replica.lagMs !== undefined && replica.lagMs < closeLagMs);
	}

	async #ask(excluded: ReadonlyMap<Replica, string> | undefined, minLsn: bigint): Promise<void> {
		const best = this.#likeliest(excluded);
		if (!best) {
			return;
		}

		let question = this.#questions.get(best);
		if (!question) {
			question = this.#readReplayPosition(best, minLsn).finally(() => {
				this.#questions.delete(best);
			});
			this.#questions.set(best, question);
		}

		await question;
	}

	/** Reads the replica's replay position, bounded; the answer becomes its known position. */
	async #readReplayPosition(replica: Replica, minLsn: bigint): Promise<void> {
		let connection: ClientConnection | undefined;
		try {
			connection = await replica.acquire() as ClientConnection;
			const row = await queryWithin(connection, 'SELECT pg_last_wal_replay_lsn()::text AS lsn', this.#timeoutMs, 'replay position check');
			const lsn = parseLsn(row?.lsn);
			if (lsn !== undefined) {
				replica.replayed(lsn, minLsn);
			}
		} catch (error) {
			log('replay position of %s unknown: %s', replica.name, describeFailure(error));
		} finally {
			// A cut connection comes back too: the pool's validation discards it.
			if (connection) {
				replica.pool.release(connection);
			}
		}
	}
}

/**
 * Orders replicas by how likely they are to have replayed a fresh write: the smallest
 * measured time lag first (known positions are read at different moments, so a position
 * alone can favour a replica that is held back); then the furthest known replay position;
 * then the one most recently found caught up.
 */
function likelierCaughtUp(a: Replica, b: Replica): number {
	const byLag = (a.lagMs ?? Number.POSITIVE_INFINITY) - (b.lagMs ?? Number.POSITIVE_INFINITY);
	if (byLag !== 0 && !Number.isNaN(byLag)) {
		return byLag;
	}

	const byPosition = (b.replayLsn ?? -1n) - (a.replayLsn ?? -1n);
	if (byPosition !== 0n) {
		return byPosition > 0n ? 1 : -1;
	}

	return b.lastCaughtUpAt - a.lastCaughtUpAt;
}
