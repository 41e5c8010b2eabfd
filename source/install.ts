// The only code that writes onto a Sequelize instance: its `query` and `close`, its read
// and write pools, how routed reads acquire connections and how the server version is
// learned, and the methods that read back their own writes. Private API is reached only through sequelize-internals.ts.
import type {Sequelize} from 'sequelize';
import type {Failover} from './failover.js';
import {routeOwnReads} from './own-reads.js';
import type {ReadAttempt} from './read-attempt.js';
import type {ReadPoolOfReplicas} from './read-pool.js';
import {connectionManagerOf, guardNewClients, hasReplicationPools, routeReadConnections, tolerateUnpooledConnectionFailures, type ReadPool} from './sequelize-internals.js';
import type {WritePool} from './write-pool.js';

export interface Installation {
	readonly sequelize: Sequelize;
	readonly failover: Failover;
	/** Undefined without replicas: reads then use the primary's pool. */
	readonly pool: ReadPoolOfReplicas | undefined;
	/** Connections to whichever node takes the writes; undefined without replicas. */
	readonly writePool: WritePool | undefined;
	/** The server version, asked of any node that answers; undefined: Sequelize asks the primary. */
	readonly serverVersion: (() => Promise<string>) | undefined;
	/** The router's own `close`, run before Sequelize closes its pools. */
	readonly close: () => Promise<void>;
}

export function install({sequelize, failover, pool, writePool, serverVersion, close}: Installation): void {
	const manager = connectionManagerOf(sequelize);
	guardNewClients(sequelize);
	if (hasReplicationPools(manager.pool)) {
		tolerateUnpooledConnectionFailures(manager.pool);
		// Without replicas, Sequelize built a read pool over its top-level host (or none):
		// reads use the primary's pool instead.
		manager.pool.read = pool ?? manager.pool.write;
		manager.pool.write = writePool ?? manager.pool.write;
	}

	if (pool && serverVersion) {
		// Not `async`: a wrapper promise per read is measurable.
		routeReadConnections(sequelize, attempt => pool.acquireFor(attempt as ReadAttempt), serverVersion);
	}

	define(sequelize, 'query', failover.query);
	const originalClose = sequelize.close.bind(sequelize);
	define(sequelize, 'close', async () => {
		await close();
		await originalClose();
	});
	// Sequelize's own reads around its writes (`sync`, `reload`, `findOrCreate`, ...).
	routeOwnReads(sequelize);
}

/** The read pool Sequelize built, before `install` replaces it (it may hold connections). */
export function nativePools(sequelize: Sequelize): {read: ReadPool; write: ReadPool} | undefined {
	const manager = connectionManagerOf(sequelize);
	return hasReplicationPools(manager.pool) ? {read: manager.pool.read, write: manager.pool.write} : undefined;
}

function define(target: object, name: string, value: unknown): void {
	Object.defineProperty(target, name, {value, writable: true, configurable: true});
}
