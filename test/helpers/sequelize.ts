// Sequelize instances wired to a test cluster, and ways to see which server answered.
import {QueryTypes, type Sequelize} from 'sequelize';
import type {ClusterEndpoints} from './shared-cluster.js';

export {newSequelize, type ClusterSequelizeOptions as TestSequelizeOptions} from '../../scripts/local-cluster/index.js';

/** Names the server of the cluster listening on a port. */
export function serverNamer(cluster: ClusterEndpoints): (port: number) => string {
	const byPort = new Map([cluster.primary, ...cluster.replicas].map(server => [server.port, server.name]));
	return port => byPort.get(port) ?? `unknown:${port}`;
}

/** Asks the server that answers a typed SELECT who it is. */
export async function answeringServer(sequelize: Sequelize, cluster: ClusterEndpoints): Promise<string> {
	const row = await sequelize.query<{port: number; inRecovery: boolean}>('SELECT inet_server_port() AS port, pg_is_in_recovery() AS "inRecovery"', {type: QueryTypes.SELECT, plain: true});
	if (!row) {
		throw new Error('no row');
	}

	const name = serverNamer(cluster)(row.port);
	// The primary is never in recovery, a replica always is: a cross-check of the port.
	if ((name === 'primary') === row.inRecovery) {
		throw new Error(`${name} answered with pg_is_in_recovery() = ${row.inRecovery}`);
	}

	return name;
}

/** Records, for every query, the server whose connection ran it (seen by an `afterQuery` hook). */
export function recordServers(sequelize: Sequelize, cluster: ClusterEndpoints): Array<{sql: string; server: string}> {
	const name = serverNamer(cluster);
	const log: Array<{sql: string; server: string}> = [];
	sequelize.addHook('afterQuery', (_options, query) => {
		const {connection, sql} = query as unknown as {connection: {port: number}; sql: string};
		log.push({sql, server: name(connection.port)});
	});
	return log;
}

export function countBy(items: readonly unknown[]): Record<string, number> {
	const counts: Record<string, number> = {};
	for (const item of items) {
		counts[String(item)] = (counts[String(item)] ?? 0) + 1;
	}

	return counts;
}

export function uniqueName(prefix: string): string {
	return `${prefix}_${Math.random().toString(36).slice(2, 10)}`;
}
