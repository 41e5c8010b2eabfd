// A pool of connections to one server, made like Sequelize's own pools: through its
// `_connect` (so `beforeConnect`/`afterConnect` hooks fire), sized and timed by its `pool`
// options. Used for each replica's reads and for writes to a node other than the
// configured primary.
//
// A connection's time limit (`connectionTimeoutMillis`, which the router sets to
// `connectTimeoutMs` on replicas) bounds the whole of Sequelize's connect, not only the
// driver's handshake: behind PgBouncer the handshake is PgBouncer's and succeeds at once,
// while Sequelize's set-up query (`SET client_min_messages ...`) waits for a server that may
// be frozen or gone.
import {Pool} from 'sequelize-pool';
import {abortConnection, connectWithin, withTimeout} from './deadline.js';
import type {ConnectionConfig, ConnectionManagerInternals, PooledConnection} from './sequelize-internals.js';

/** Bound on a clean goodbye before the socket is cut. */
const disconnectTimeoutMs = 1000;

export interface ConnectionPoolOptions {
	readonly name: string;
	readonly manager: ConnectionManagerInternals;
	readonly config: ConnectionConfig;
	/** Sequelize's dispatcher returns a connection to `pool.read` or `pool.write` by this tag. */
	readonly queryType: 'read' | 'write';
	/** Called with each new connection (to note where it came from). */
	readonly created: (connection: PooledConnection) => void;
	/** Checked, besides Sequelize's own `pool.validate`, before a connection is handed out. */
	readonly stillValid?: (connection: PooledConnection) => boolean;
}

export function createConnectionPool(options: ConnectionPoolOptions): Pool<PooledConnection> {
	const {manager, config, stillValid} = options;
	const poolConfig = manager.config.pool;
	const timeoutMs = connectTimeoutOf(config);
	return new Pool<PooledConnection>({
		name: `sequelize-multidb:${options.name}`,
		create: async () => {
			const connection = await connectWithin(manager, config, timeoutMs, `connect to ${options.name}`);
			connection.queryType = options.queryType;
			options.created(connection);
			return connection;
		},
		// A dead or frozen server may never answer a clean goodbye: bound it, then cut.
		destroy: async connection => withTimeout(manager._disconnect(connection), disconnectTimeoutMs, 'disconnect').catch(() => {
			abortConnection(connection);
		}),
		validate: stillValid ? connection => stillValid(connection) && poolConfig.validate(connection) : poolConfig.validate,
		max: poolConfig.max,
		min: poolConfig.min,
		acquireTimeoutMillis: poolConfig.acquire,
		idleTimeoutMillis: poolConfig.idle,
		reapIntervalMillis: poolConfig.evict,
		maxUses: poolConfig.maxUses,
	});
}

function connectTimeoutOf(config: ConnectionConfig): number | undefined {
	const value = (config.dialectOptions as {connectionTimeoutMillis?: unknown} | undefined)?.connectionTimeoutMillis;
	return typeof value === 'number' && value > 0 ? value : undefined;
}

export interface PoolCounts {
	/** Connections handed out now. */
	readonly used: number;
	/** Connections open and idle in the pool. */
	readonly idle: number;
	/** Acquisitions waiting for a connection. */
	readonly pending: number;
}

/** The counts of a sequelize-pool `Pool` (Sequelize's own pools and the router's are all one kind). */
export function countsOf(pool: unknown): PoolCounts {
	const {using = 0, available = 0, waiting = 0} = pool as {using?: number; available?: number; waiting?: number};
	return {used: using, idle: available, pending: waiting};
}

/** Told how long an acquisition waited, in seconds (a new connection's connect included). */
export type WaitReporter = (seconds: number) => void;

/**
 * `pool.acquire()`, timed where someone listens (`sequelize-multidb/opentelemetry`);
 * without a listener, exactly `pool.acquire()`.
 */
export function acquireTimed(pool: {acquire(): Promise<PooledConnection>}, report: WaitReporter | undefined): Promise<PooledConnection> {
	if (!report) {
		return pool.acquire();
	}

	const started = performance.now();
	return pool.acquire().then(connection => {
		report((performance.now() - started) / 1000);
		return connection;
	});
}
