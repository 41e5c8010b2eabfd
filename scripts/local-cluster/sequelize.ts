// Sequelize instances on a cluster, configured the way users configure replication.
import {Sequelize, type Options} from 'sequelize';
import type {ClusterEndpoints, ServerEndpoint} from './endpoints.js';

export interface ClusterSequelizeOptions extends Omit<Options, 'replication' | 'dialect'> {
	/** The replicas to configure; `false` leaves `replication` out entirely. */
	readonly replicas?: readonly ServerEndpoint[] | false;
}

/** A Sequelize instance on the cluster, configured the way users configure replication. */
export function newSequelize(cluster: ClusterEndpoints, options: ClusterSequelizeOptions = {}): Sequelize {
	const {replicas = cluster.replicas, ...rest} = options;
	const {primary} = cluster;
	const connection = (server: ServerEndpoint) => ({host: server.host, port: server.port, username: server.username, password: server.password});
	const common: Options = {dialect: 'postgres', logging: false, ...rest};
	if (replicas === false) {
		return new Sequelize(primary.database, primary.username, primary.password, {...common, host: primary.host, port: primary.port});
	}

	return new Sequelize(primary.database, primary.username, primary.password, {
		...common,
		replication: {write: connection(primary), read: replicas.map(replica => connection(replica))},
	});
}
