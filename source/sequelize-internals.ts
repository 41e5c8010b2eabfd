// The parts of Sequelize v6's private API the router stands on, typed in one place and
// checked once at install, so an incompatible Sequelize fails loudly at `multidb()` rather
// than misrouting a query later. See node_modules/sequelize/lib/dialects/abstract/
// connection-manager.js: with `replication` configured, `pool` is an object holding a
// `read` and a `write` pool and dispatching on `connection.queryType`.
import type {Sequelize} from 'sequelize';

/** A pooled connection as Sequelize sees it (a node-postgres Client plus tags). */
export interface PooledConnection {
	queryType?: 'read' | 'write';
	uuid?: string;
}

/** A pooled connection used directly (node-postgres's promise API). */
export interface ClientConnection extends PooledConnection {
	query(sql: string): Promise<{rows: Array<Record<string, unknown>>}>;
	/** Set by Sequelize's error listener once the connection failed. */
	_invalid?: boolean;
}

/** What `connection.pool.read` must offer; our `ReplicaPool` implements it. */
export interface ReadPool {
	acquire(): Promise<PooledConnection>;
	release(connection: PooledConnection): void;
	destroy(connection: PooledConnection): Promise<void>;
	drain(): Promise<void>;
	destroyAllNow(): Promise<void>;
}

export interface ReplicationPools {
	read: ReadPool;
	write: ReadPool;
	/** The dispatcher's: hands a failed connection to `this[connection.queryType].destroy`. */
	destroy(connection: PooledConnection): unknown;
}

/** A connection config after Sequelize merged the top-level options into it. */
export interface ConnectionConfig {
	host?: string;
	port?: number | string;
	database?: string;
	username?: string;
	password?: string;
	[key: string]: unknown;
}

export interface PoolConfig {
	max: number;
	min: number;
	idle: number;
	acquire: number;
	evict: number;
	maxUses?: number;
	validate: (connection: PooledConnection) => boolean;
}

export interface ConnectionManagerInternals {
	pool: ReplicationPools | ReadPool;
	config: {
		pool: PoolConfig;
		replication?: false | {read: ConnectionConfig[]; write: ConnectionConfig};
	};
	_connect(config: ConnectionConfig): Promise<PooledConnection>;
	_disconnect(connection: PooledConnection): Promise<void>;
}

export function connectionManagerOf(sequelize: Sequelize): ConnectionManagerInternals {
	const manager = (sequelize as unknown as {connectionManager?: Partial<ConnectionManagerInternals>}).connectionManager;
	if (!manager || typeof manager._connect !== 'function' || typeof manager._disconnect !== 'function' || !manager.pool || !manager.config?.pool) {
		throw new TypeError('Expected `sequelize` to be a Sequelize 6 instance with a connection manager; this Sequelize version is not supported');
	}

	return manager as ConnectionManagerInternals;
}

export function hasReplicationPools(pool: ReplicationPools | ReadPool): pool is ReplicationPools {
	return 'read' in pool && 'write' in pool;
}

interface ModelManagerInternals {
	models: object[];
	addModel(model: object): object;
}

/**
 * Calls `visit` for every model of the instance, now and whenever one is defined later
 * (`define`, `Model.init`). It wraps this instance's own `modelManager.addModel` rather than
 * registering an `afterDefine` hook: a hook lands in `sequelize.options.hooks`, which
 * `new Sequelize(..., {...routed.options})` copies into another instance.
 */
export function forEachModel(sequelize: Sequelize, visit: (model: object) => void): void {
	const manager = (sequelize as unknown as {modelManager?: Partial<ModelManagerInternals>}).modelManager;
	if (!manager || !Array.isArray(manager.models) || typeof manager.addModel !== 'function') {
		throw new TypeError('Expected `sequelize` to be a Sequelize 6 instance with a model manager; this Sequelize version is not supported');
	}

	for (const model of manager.models) {
		visit(model);
	}

	const addModel = manager.addModel.bind(manager);
	Object.defineProperty(manager, 'addModel', {
		value(model: object): object {
			const added = addModel(model);
			visit(model);
			return added;
		},
		writable: true,
		configurable: true,
	});
}

/**
 * Sequelize's replication dispatcher destroys a failed connection with
 * `pool[connection.queryType].destroy(connection)`, called from the connection's `error`
 * listener. A connection that fails while it is still being set up (Sequelize's `SET` queries
 * in `connect`, before any pool holds it and before anyone could tag it) has no `queryType`:
 * the TypeError thrown from that listener would end the process. Such a connection belongs
 * to no pool, so there is nothing to destroy. (Servers dying mid-connect is what probes and
 * the monitor meet most.)
 */
export function tolerateUnpooledConnectionFailures(pools: ReplicationPools): void {
	const destroy = pools.destroy.bind(pools);
	pools.destroy = connection => connection.queryType === 'read' || connection.queryType === 'write' ? destroy(connection) : undefined;
}
