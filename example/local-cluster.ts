// Shared by the demo and the runnable forum: a local primary with two replicas (the second
// lagging 1.5 s), or an existing cluster named by MULTIDB_TEST_PRIMARY/REPLICAS. Stops
// what it started on exit and on Ctrl-C.
import type {Options, Sequelize} from 'sequelize';
import {endpointsFromEnvironment, endpointsOf, LocalCluster, newSequelize, type ClusterEndpoints} from '../scripts/local-cluster/index.js';

export interface RunningCluster {
	readonly endpoints: ClusterEndpoints;
	/** Server display names by port: primary, replica1, replica2. */
	readonly names: ReadonlyMap<number, string>;
	connect(options?: Options): Sequelize;
	stop(): Promise<void>;
}

export async function startCluster(): Promise<RunningCluster> {
	let local: LocalCluster | undefined;
	let endpoints: ClusterEndpoints;
	const given = endpointsFromEnvironment();
	if (given) {
		endpoints = given;
	} else {
		console.log('Starting a local PostgreSQL primary and two streaming replicas (replica2 replays 1.5 s late)...');
		local = await LocalCluster.start();
		endpoints = endpointsOf(local);
	}

	local?.stopOnSignals();
	const stop = async () => local?.stop();

	return {
		endpoints,
		names: new Map([endpoints.primary, ...endpoints.replicas].map(server => [server.port, server.name])),
		connect: (options = {}) => newSequelize(endpoints, options),
		stop,
	};
}
