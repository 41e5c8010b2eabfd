// `npm run cluster`: starts a throwaway primary with two streaming replicas (replica2
// replays 1.5 s late), prints how to reach them, and stops them on Ctrl-C.
// `MULTIDB_PG_MAJOR=14 npm run cluster` runs another PostgreSQL major version;
// `npm run cluster -- --pgbouncer` puts a PgBouncer (transaction pooling) in front of each.
import {clusterEnvironment, LocalCluster} from './local-cluster/index.js';

const cluster = await LocalCluster.start({pgbouncer: process.argv.includes('--pgbouncer')});
console.log(cluster.binaries.version);
for (const server of cluster.servers) {
	const bouncer = server.bouncer ? `, PgBouncer in front of port ${server.port}` : '';
	console.log(`${server.name.padEnd(8)} ${cluster.url(server)}  (data ${server.dataDir}${bouncer})`);
}

console.log('\nPoint the tests at it with:');
for (const [name, value] of Object.entries(clusterEnvironment(cluster))) {
	console.log(`  export ${name}=${value}`);
}

console.log('\nCtrl-C stops the servers.');
cluster.stopOnSignals(0);

// Keep the process (and so the cluster's watchdog) alive until a signal arrives.
setInterval(() => undefined, 1 << 30);
