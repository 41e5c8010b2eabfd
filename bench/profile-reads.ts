// A profiling aid, not a benchmark: N sequential reads through the router or through
// Sequelize's own replication. `node --cpu-prof --import tsx bench/profile-reads.ts routed`
import {multidb, usePrimaryDb} from '../source/index.js';
import {startBenchCluster, whoAnswers} from './harness.js';

const mode = process.argv[2] ?? 'routed';
const reads = Number(process.argv[3] ?? 30_000);
const cluster = await startBenchCluster();
// `-one` modes configure a single replica: per-query alternation between servers aside.
const sequelize = mode.endsWith('-one') ? cluster.connectTo([cluster.endpoints.replicas[0]]) : cluster.connect();
if (mode.startsWith('routed')) {
	multidb(sequelize, JSON.parse(process.env.MULTIDB_OPTIONS ?? '{}') as object);
}

if (mode.startsWith('native-als')) {
	// Sequelize's own replication, with AsyncLocalStorage's promise hooks switched on.
	usePrimaryDb(() => undefined);
}

try {
	for (let index = 0; index < 2000; index++) {
		await whoAnswers(sequelize);
	}

	const started = performance.now();
	const cpu = process.cpuUsage();
	for (let index = 0; index < reads; index++) {
		await whoAnswers(sequelize);
	}

	const {user, system} = process.cpuUsage(cpu);
	const elapsed = performance.now() - started;
	console.log(`${mode}: ${reads} reads in ${elapsed.toFixed(0)} ms, ${(elapsed * 1000 / reads).toFixed(1)} µs per read, client CPU ${((user + system) / reads).toFixed(1)} µs per read`);
} finally {
	await sequelize.close();
	await cluster.stop();
}
