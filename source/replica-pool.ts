// The read pool Sequelize acquires from, replaced by ours: one pool per replica, and the
// replica chosen per *query*. Sequelize's own read pool chooses a replica per pooled
// connection (round-robin in `create`), so once its pool is warm, sequential reads reuse
// one connection and all land on one replica.
import {Pool} from 'sequelize-pool';
import {currentScope} from './context.js';
import type {ConnectionConfig, ConnectionManagerInternals, PooledConnection, ReadPool} from './sequelize-internals.js';

/** One replica: where it is and its own connection pool. */
export class Replica {
	readonly host: string;
	readonly port: number;
	readonly database: string | undefined;
	readonly username: string | undefined;
	readonly pool: Pool<PooledConnection>;

	constructor(readonly name: string, readonly config: ConnectionConfig, manager: ConnectionManagerInternals, tag: (connection: PooledConnection, replica: Replica) => void) {
		this.host = config.host ?? 'localhost';
		this.port = Number(config.port ?? 5432);
		this.database = config.database;
		this.username = config.username;
		const poolConfig = manager.config.pool;
		this.pool = new Pool<PooledConnection>({
			name: `sequelize-multidb:${name}`,
			// Through Sequelize's own `_connect`, so `beforeConnect`/`afterConnect` hooks fire
			// for replica connections as they do for Sequelize's.
			create: async () => {
				const connection = await manager._connect(config);
				// Sequelize's pool dispatcher returns a connection to `pool.read` by this tag.
				connection.queryType = 'read';
				tag(connection, this);
				return connection;
			},
			destroy: async connection => manager._disconnect(connection),
			validate: poolConfig.validate,
			max: poolConfig.max,
			min: poolConfig.min,
			acquireTimeoutMillis: poolConfig.acquire,
			idleTimeoutMillis: poolConfig.idle,
			reapIntervalMillis: poolConfig.evict,
			maxUses: poolConfig.maxUses,
		});
	}
}

export interface ReplicaPoolOptions {
	readonly manager: ConnectionManagerInternals;
	readonly configs: readonly ConnectionConfig[];
	readonly shuffle: boolean;
	/** The router this pool serves; a query attempt of another router is not ours to read. */
	readonly router: object;
	/** Sequelize's own read pool, which may still hold connections taken before install. */
	readonly nativePool: ReadPool;
}

export class ReplicaPool implements ReadPool {
	/** The replicas in round-robin order. */
	readonly replicas: readonly Replica[];
	readonly #router: object;
	readonly #nativePool: ReadPool;
	readonly #replicaOfConnection = new WeakMap<PooledConnection, Replica>();
	#cursor = 0;

	constructor(options: ReplicaPoolOptions) {
		this.#router = options.router;
		this.#nativePool = options.nativePool;
		const tag = (connection: PooledConnection, replica: Replica) => {
			this.#replicaOfConnection.set(connection, replica);
		};

		const replicas = options.configs.map((config, index) => new Replica(nameOf(config, index, options.configs), config, options.manager, tag));
		this.replicas = options.shuffle ? shuffled(replicas) : replicas;
	}

	/** The replica a connection of ours belongs to; undefined for the primary's. */
	replicaOf(connection: PooledConnection): Replica | undefined {
		return this.#replicaOfConnection.get(connection);
	}

	/** The next replica in round-robin order. */
	next(): Replica {
		const replica = this.replicas[this.#cursor];
		this.#cursor = (this.#cursor + 1) % this.replicas.length;
		return replica;
	}

	async acquire(): Promise<PooledConnection> {
		const attempt = currentScope()?.attempt;
		const forced = attempt?.router === this.#router ? attempt.forcedReplica : undefined;
		const replica = forced instanceof Replica ? forced : this.next();
		return replica.pool.acquire();
	}

	release(connection: PooledConnection): void {
		const replica = this.#replicaOfConnection.get(connection);
		if (replica) {
			replica.pool.release(connection);
		} else {
			this.#nativePool.release(connection);
		}
	}

	async destroy(connection: PooledConnection): Promise<void> {
		const replica = this.#replicaOfConnection.get(connection);
		await (replica ? replica.pool.destroy(connection) : this.#nativePool.destroy(connection));
	}

	async drain(): Promise<void> {
		await Promise.all([this.#nativePool.drain(), ...this.replicas.map(async replica => replica.pool.drain())]);
	}

	async destroyAllNow(): Promise<void> {
		await Promise.all([this.#nativePool.destroyAllNow(), ...this.replicas.map(async replica => replica.pool.destroyAllNow())]);
	}
}

/** `host:port`, with the database appended only where two replicas share a server. */
function nameOf(config: ConnectionConfig, index: number, all: readonly ConnectionConfig[]): string {
	const server = (entry: ConnectionConfig) => `${entry.host ?? 'localhost'}:${entry.port ?? 5432}`;
	const name = server(config);
	const sameServer = all.filter(entry => server(entry) === name);
	if (sameServer.length === 1) {
		return name;
	}

	const withDatabase = `${name}/${config.database ?? ''}`;
	return all.filter(entry => `${server(entry)}/${entry.database ?? ''}` === withDatabase).length === 1 ? withDatabase : `${name}#${index + 1}`;
}

/** Fisher-Yates, on a copy. */
function shuffled<T>(items: readonly T[]): T[] {
	const result = [...items];
	for (let index = result.length - 1; index > 0; index--) {
		const other = Math.floor(Math.random() * (index + 1));
		[result[index], result[other]] = [result[other], result[index]];
	}

	return result;
}
