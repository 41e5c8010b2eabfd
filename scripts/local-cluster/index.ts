// The local PostgreSQL cluster: a primary with streaming replicas on free ports, and the
// faults tests inject into it. Used by the tests, the demo, the benchmarks and
// `npm run cluster`.
export {LocalCluster, PostgresServer, withClient} from './cluster.js';
export type {ClusterOptions, ServerAddress} from './cluster.js';
export {clusterEnvironment, endpointsFromEnvironment, endpointsOf} from './endpoints.js';
export type {ClusterEndpoints, ServerEndpoint} from './endpoints.js';
export {newSequelize} from './sequelize.js';
export type {ClusterSequelizeOptions} from './sequelize.js';
export {followOtherPrimary, rebuildAsStandby} from './rebuild.js';
export {findPgBouncer, PgBouncer} from './pgbouncer.js';
export type {RebuildOptions} from './rebuild.js';
