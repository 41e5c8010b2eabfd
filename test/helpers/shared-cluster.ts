// The cluster the tests share. `npm test` starts one for the whole run and hands it to the
// test processes through the environment; the same variables point the tests at an
// existing cluster instead (the second replica is expected to lag):
//
//   MULTIDB_TEST_PRIMARY=postgres://user:pw@host:5433/db
//   MULTIDB_TEST_REPLICAS=postgres://user:pw@host:5434/db,postgres://user:pw@host:5435/db
//
// A test file run on its own (`npx ava test/x.ts`) without them starts a private cluster.
import {endpointsFromEnvironment, endpointsOf, LocalCluster, type ClusterEndpoints} from '../../scripts/local-cluster/index.js';

export type {ClusterEndpoints, ServerEndpoint} from '../../scripts/local-cluster/index.js';
export {endpointsOf} from '../../scripts/local-cluster/index.js';

let started: Promise<ClusterEndpoints> | undefined;

export async function sharedCluster(): Promise<ClusterEndpoints> {
	// The cluster's watchdog stops a private cluster's servers once this process exits.
	started ??= Promise.resolve(endpointsFromEnvironment()).then(async endpoints => endpoints ?? endpointsOf(await LocalCluster.start()));
	return started;
}
