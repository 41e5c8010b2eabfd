// The cluster the tests share. `npm test` starts one for the whole run and hands it to the
// test processes through the environment; the same variables point the tests at an
// existing cluster instead (the second replica is expected to lag):
//
//   MULTIDB_TEST_PRIMARY=postgres://user:pw@host:5433/db
//   MULTIDB_TEST_REPLICAS=postgres://user:pw@host:5434/db,postgres://user:pw@host:5435/db
//
// A test file run on its own (`npx ava test/x.ts`) without them starts a private cluster.
import {LocalCluster, type ServerAddress} from './cluster.js';

export interface ServerEndpoint extends ServerAddress {
	readonly database: string;
	readonly username: string;
	readonly password: string | undefined;
}

export interface ClusterEndpoints {
	readonly primary: ServerEndpoint;
	readonly replicas: readonly ServerEndpoint[];
}

let started: Promise<ClusterEndpoints> | undefined;

export async function sharedCluster(): Promise<ClusterEndpoints> {
	started ??= fromEnvironment() ?? startPrivateCluster();
	return started;
}

/** The environment for child processes that should use `cluster`. */
export function clusterEnvironment(cluster: LocalCluster): Record<string, string> {
	return {
		MULTIDB_TEST_PRIMARY: cluster.url(cluster.primary),
		MULTIDB_TEST_REPLICAS: cluster.replicas.map(replica => cluster.url(replica)).join(','),
	};
}

function fromEnvironment(): Promise<ClusterEndpoints> | undefined {
	const primary = process.env.MULTIDB_TEST_PRIMARY;
	const replicas = process.env.MULTIDB_TEST_REPLICAS;
	if (!primary || !replicas) {
		return undefined;
	}

	return Promise.resolve({
		primary: parseEndpoint('primary', primary),
		replicas: replicas.split(',').map((url, index) => parseEndpoint(`replica${index + 1}`, url.trim())),
	});
}

async function startPrivateCluster(): Promise<ClusterEndpoints> {
	// The cluster's watchdog stops the servers once this process exits.
	return endpointsOf(await LocalCluster.start());
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
