// Where a cluster's servers are, as connection endpoints, and how to hand them to another
// process through the environment (MULTIDB_TEST_PRIMARY / MULTIDB_TEST_REPLICAS).
import type {LocalCluster, ServerAddress} from './cluster.js';

export interface ServerEndpoint extends ServerAddress {
	readonly database: string;
	readonly username: string;
	readonly password: string | undefined;
}

export interface ClusterEndpoints {
	readonly primary: ServerEndpoint;
	readonly replicas: readonly ServerEndpoint[];
}

/** The environment for child processes that should use `cluster`. */
export function clusterEnvironment(cluster: LocalCluster): Record<string, string> {
	return {
		MULTIDB_TEST_PRIMARY: cluster.url(cluster.primary),
		MULTIDB_TEST_REPLICAS: cluster.replicas.map(replica => cluster.url(replica)).join(','),
		// The binaries' `postgres --version`: set only for a cluster the project started.
		MULTIDB_TEST_POSTGRES: cluster.binaries.version,
	};
}

/** The cluster named by MULTIDB_TEST_PRIMARY / MULTIDB_TEST_REPLICAS, if both are set. */
export function endpointsFromEnvironment(): ClusterEndpoints | undefined {
	const primary = process.env.MULTIDB_TEST_PRIMARY;
	const replicas = process.env.MULTIDB_TEST_REPLICAS;
	if (!primary || !replicas) {
		return undefined;
	}

	return {
		primary: parseEndpoint('primary', primary),
		replicas: replicas.split(',').map((url, index) => parseEndpoint(`replica${index + 1}`, url.trim())),
	};
}

export function endpointsOf(cluster: LocalCluster): ClusterEndpoints {
	return {
		primary: parseEndpoint('primary', cluster.url(cluster.primary)),
		replicas: cluster.replicas.map(replica => parseEndpoint(replica.name, cluster.url(replica))),
	};
}

function parseEndpoint(name: string, url: string): ServerEndpoint {
	const parsed = new URL(url);
	return {
		name,
		host: parsed.hostname,
		port: Number(parsed.port || 5432),
		database: decodeURIComponent(parsed.pathname.slice(1)),
		username: decodeURIComponent(parsed.username),
		password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
	};
}
