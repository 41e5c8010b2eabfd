// The pool Sequelize takes write connections from (and pinned, locking and fallback reads),
// in place of its own: connections to whichever node takes the writes now. Sequelize's own
// write pool serves the configured primary; a pool is opened for another node the first time
// writes move to it. When writes move, new connections open to the new primary, the old
// one's idle connections are closed, and its busy ones are closed when they come back:
// nothing is sent to an old primary after the switch, except by a transaction that began
// before it (whose queries fail with the old server, or commit there before it went away).
import {acquireTimed, countsOf, createConnectionPool, type PoolCounts, type WaitReporter} from './connection-pool.js';
import type {Replica} from './replica.js';
import type {ConnectionManagerInternals, PooledConnection, ReadPool} from './sequelize-internals.js';

/** The pool each write connection of ours came from (Sequelize's own are not listed). */
const poolOfConnection = new WeakMap<PooledConnection, ReadPool>();

export interface WritePoolOptions {
	readonly manager: ConnectionManagerInternals;
	/** Sequelize's own write pool, to the configured primary. */
	readonly nativePool: ReadPool;
	readonly configuredPrimary: Replica;
}

export class WritePool implements ReadPool {
	readonly #options: WritePoolOptions;
	readonly #pools = new Map<Replica, ReadPool>();
	#primary: Replica;
	#pool: ReadPool;
	/** Told how long each acquisition waited, while an observer is attached. */
	reportWait: WaitReporter | undefined;

	constructor(options: WritePoolOptions) {
		this.#options = options;
		this.#primary = options.configuredPrimary;
		this.#pool = options.nativePool;
		this.#pools.set(options.configuredPrimary, options.nativePool);
	}

	/** The node writes go to now. */
	get primary(): Replica {
		return this.#primary;
	}

	acquire(): Promise<PooledConnection> {
		return acquireTimed(this.#pool, this.reportWait);
	}

	/** The connections to the primary now: in use, idle, and acquisitions waiting. */
	counts(): PoolCounts {
		return countsOf(this.#pool);
	}

	release(connection: PooledConnection): void {
		const pool = this.#poolOf(connection);
		if (pool === this.#pool) {
			pool.release(connection);
		} else {
			// A connection to a node that no longer takes writes goes no further.
			void pool.destroy(connection).catch(() => undefined);
		}
	}

	async destroy(connection: PooledConnection): Promise<void> {
		await this.#poolOf(connection).destroy(connection);
	}

	async drain(): Promise<void> {
		await Promise.all([...this.#pools.values()].map(async pool => pool.drain()));
	}

	async destroyAllNow(): Promise<void> {
		await Promise.all([...this.#pools.values()].map(async pool => pool.destroyAllNow()));
	}

	/** Writes go to `node` from now on. */
	switchTo(node: Replica): void {
		if (node === this.#primary) {
			return;
		}

		const old = this.#pool;
		this.#primary = node;
		this.#pool = this.#pools.get(node) ?? this.#open(node);
		void old.destroyAllNow().catch(() => undefined);
	}

	#poolOf(connection: PooledConnection): ReadPool {
		return poolOfConnection.get(connection) ?? this.#options.nativePool;
	}

	/** A pool like Sequelize's write pool, to `node`, with the user's own config for it. */
	#open(node: Replica): ReadPool {
		const pool = createConnectionPool({
			name: `write:${node.name}`,
			manager: this.#options.manager,
			config: node.writeConfig,
			queryType: 'write',
			created(connection) {
				poolOfConnection.set(connection, pool);
			},
		});
		this.#pools.set(node, pool);
		return pool;
	}
}
