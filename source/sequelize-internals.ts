// The parts of Sequelize v6's private API the router stands on, typed in one place and
// checked once at install, so an incompatible Sequelize fails loudly at `multidb()` rather
// than misrouting a query later. See node_modules/sequelize/lib/dialects/abstract/
// connection-manager.js: with `replication` configured, `pool` is an object holding a
// `read` and a `write` pool and dispatching on `connection.queryType`.
import {ConnectionAcquireTimeoutError, type Sequelize} from 'sequelize';
import {TimeoutError} from 'sequelize-pool';
import type {QueryFacts} from './query-kind.js';
import {describe} from './validate.js';

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

/**
 * Sequelize's postgres `connect` attaches its `error` listener to a new node-postgres client
 * only once the connect promise has settled, a microtask after the client became ready. An
 * error the server sends in the same network read as its ReadyForQuery (a backend terminated,
 * or a server shutting down, just as the connection completes) is emitted before that, with
 * no listener, and ends the process (found by the soak, twice in 10-minute runs). The clients
 * of a routed instance get a listener from birth, which marks the connection invalid so that
 * no pool hands it out; Sequelize's own listener still runs once attached.
 */
export function guardNewClients(sequelize: Sequelize): void {
	const manager = (sequelize as unknown as {connectionManager: {lib?: {Client?: ClientConstructor}}}).connectionManager;
	const lib = manager.lib;
	const Client = lib?.Client;
	if (!lib || typeof Client !== 'function' || guardedClients.has(Client)) {
		return;
	}

	class GuardedClient extends Client {
		constructor(...args: unknown[]) {
			super(...args);
			this.on('error', () => {
				(this as unknown as {_invalid: boolean})._invalid = true;
			});
		}
	}

	guardedClients.add(GuardedClient);
	// This instance's view of the driver only: the `pg` module itself is left alone.
	manager.lib = Object.create(lib, {Client: {value: GuardedClient, enumerable: true}}) as typeof lib;
}

type ClientConstructor = new (...args: unknown[]) => {on(event: 'error', listener: (error: unknown) => void): unknown};
const guardedClients = new WeakSet<ClientConstructor>();

/**
 * Where a routed read's attempt rides in the options Sequelize hands its connection manager:
 * `sequelize.query` copies the caller's options (symbol keys included) and passes that copy
 * to `getConnection`. Per query, owned by the query; no shared store.
 */
export const attemptKey = Symbol('sequelize-multidb.attempt');

interface AcquireOptions {
	readonly type?: string;
	readonly useMaster?: boolean;
	readonly [attemptKey]?: unknown;
}

interface ConnectionManagerWithGetConnection {
	getConnection(options?: AcquireOptions): Promise<PooledConnection>;
}

/**
 * Takes over `getConnection` for this instance's routed reads: a query typed SELECT, without
 * `useMaster`, that carries an attempt goes straight to `acquireFor`, without the promise
 * and hook round of Sequelize's own path. What that path does besides acquiring is done
 * here the same way: `beforePoolAcquire`/`afterPoolAcquire` hooks run around the acquire
 * where there are any. (No AsyncLocalStorage scope is entered: on Node 20, a first `run()`
 * would switch on promise hooks that tax every promise of the process from then on.)
 *
 * Sequelize learns the server version on its first connection, always from the configured
 * primary: with the primary down, not even a read could run (Sequelize issue #9845). Every
 * connection, read or write, first waits for `serverVersion`, which asks any node.
 */
export function routeReadConnections(sequelize: Sequelize, acquireFor: (attempt: unknown) => Promise<PooledConnection>, serverVersion: () => Promise<string>): void {
	const manager = connectionManagerOf(sequelize) as unknown as ConnectionManagerWithGetConnection;
	const getConnection = manager.getConnection.bind(manager);
	const instance = sequelize as unknown as {options: {databaseVersion?: unknown}; hasHook(name: string): boolean; runHooks(name: string, ...arguments_: unknown[]): Promise<void>};
	let versionKnown: Promise<void> | undefined;
	const learnVersion = async () => {
		versionKnown ??= serverVersion().then(version => {
			if (instance.options.databaseVersion === 0) {
				// As Sequelize stores it: `18.4` becomes `18.4.0`.
				instance.options.databaseVersion = semverOf(version) ?? instance.options.databaseVersion;
			}
		}).finally(() => {
			versionKnown = undefined;
		});
		return versionKnown;
	};

	const acquireRead = async (options: AcquireOptions, attempt: unknown): Promise<PooledConnection> => {
		await instance.runHooks('beforePoolAcquire', options);
		const connection = await acquireFor(attempt);
		await instance.runHooks('afterPoolAcquire', connection, options);
		return connection;
	};

	const routedGetConnection = (options?: AcquireOptions): Promise<PooledConnection> => {
		if (instance.options.databaseVersion === 0) {
			// Where no version could be read off the answer, Sequelize's own probe decides.
			return learnVersion().then(() => instance.options.databaseVersion === 0 ? getConnection(options) : routedGetConnection(options));
		}

		const attempt = options?.[attemptKey];
		if (attempt === undefined || options?.type !== 'SELECT' || options.useMaster === true) {
			return getConnection(options);
		}

		if (instance.hasHook('beforePoolAcquire') || instance.hasHook('afterPoolAcquire')) {
			return acquireRead(options, attempt);
		}

		return acquireFor(attempt);
	};

	Object.defineProperty(manager, 'getConnection', {value: routedGetConnection, writable: true, configurable: true});
}

/** A server version as Sequelize keeps it (`major.minor.patch`), or undefined where none can be read. */
export function semverOf(version: string): string | undefined {
	const match = /(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(version);
	return match ? [match[1], match[2] || '0', match[3] || '0'].join('.') : undefined;
}

/** What Sequelize's own `getConnection` makes of a pool's acquire timeout. */
export function asAcquireError(error: unknown): unknown {
	// By name too: the primary's pool may come from Sequelize's own copy of sequelize-pool.
	const timedOut = error instanceof TimeoutError || (error instanceof Error && error.constructor.name === 'TimeoutError');
	return timedOut ? new ConnectionAcquireTimeoutError(error) : error;
}

export function rethrowAsAcquireError(error: unknown): never {
	throw asAcquireError(error);
}

/** A Sequelize 6.31+ instance on the `postgres` dialect, or a TypeError that says what it is instead. */
export function checkSequelize(sequelize: unknown): asserts sequelize is Sequelize {
	if (!looksLikeSequelize(sequelize) || typeof sequelize.addHook !== 'function') {
		throw new TypeError(`Expected \`sequelize\` to be a Sequelize instance, got ${describe(sequelize)}`);
	}

	const dialect = sequelize.getDialect();
	if (dialect !== 'postgres') {
		throw new TypeError(`Expected \`sequelize\` to use the \`postgres\` dialect, got ${describe(dialect)}`);
	}

	const {version} = sequelize.constructor as {version?: unknown};
	const [major, minor] = typeof version === 'string' ? version.split('.').map(Number) : [];
	if (major !== 6 || minor < 31) {
		// The router stands on Sequelize 6's connection manager internals, tested against 6.31+.
		throw new TypeError(`Expected Sequelize >= 6.31 and < 7, got ${describe(version)}`);
	}
}

export function looksLikeSequelize(value: unknown): value is Sequelize {
	return typeof value === 'object' && value !== null && typeof (value as Partial<Sequelize>).getDialect === 'function';
}

/**
 * The replicas the user listed. Sequelize fills a missing `replication.read` with the
 * top-level connection options, which would make the primary look like a replica.
 */
export function configuredReplicas(sequelize: Sequelize): ConnectionConfig[] {
	const {replication} = (sequelize as unknown as {options: {replication?: false | {read?: unknown}}}).options;
	const given = replication ? replication.read : undefined;
	const listed = Array.isArray(given) ? given.length > 0 : given !== undefined && given !== null;
	const manager = connectionManagerOf(sequelize);
	return listed && manager.config.replication ? manager.config.replication.read : [];
}

/** Sequelize's `options.query`: defaults merged into every query's options. */
export function queryDefaultsOf(sequelize: Sequelize): QueryFacts {
	return (sequelize as unknown as {options: {query?: QueryFacts}}).options.query ?? {};
}

/** The transaction Sequelize takes from its CLS namespace, where `useCLS` is on. */
export function clsTransactionOf(sequelize: Sequelize): {connection?: PooledConnection} | undefined {
	const cls = (sequelize.constructor as {_cls?: {get(key: string): unknown}})._cls;
	return cls?.get('transaction') as {connection?: PooledConnection} | undefined;
}
