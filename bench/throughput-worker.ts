// One side of a throughput comparison, in a process of its own: Sequelize's own
// replication (`native`), the router (`routed`), the router in a process with OpenTelemetry's
// SDK set up but the router not instrumented (`sdk`), or the router reporting to that SDK
// (`instrumented`: metrics exported every second, routing as span events), so that none
// pays for another (in one process the router's AsyncLocalStorage would also tax the
// baseline's promises). The parent (bench/throughput.ts) sends `{concurrency, ms}` and gets
// the run's latencies back.
import {multidb} from '../source/index.js';
import {endpointsFromEnvironment, newSequelize} from '../scripts/local-cluster/index.js';
import {percentile, runFor, whoAnswers} from './harness.js';

export type WorkerMode = 'native' | 'routed' | 'sdk' | 'instrumented';

export interface WorkerRun {
	readonly concurrency: number;
	readonly ms: number;
}

export interface WorkerResult {
	readonly reads: number;
	readonly p50: number;
	readonly p99: number;
	/** This process's CPU time (user + system) per read, in µs: the client's own cost. */
	readonly cpuPerRead: number;
}

const [mode, replicaCount] = [process.argv[2], Number(process.argv[3])];
const endpoints = endpointsFromEnvironment();
if (!endpoints || !['native', 'routed', 'sdk', 'instrumented'].includes(mode) || !(replicaCount > 0)) {
	throw new TypeError('Usage: throughput-worker.ts native|routed|sdk|instrumented <replicas>, with MULTIDB_TEST_PRIMARY/REPLICAS set');
}

const sequelize = newSequelize(endpoints, {pool: {max: 10}, replicas: endpoints.replicas.slice(0, replicaCount)});
if (mode === 'routed') {
	multidb(sequelize);
} else if (mode === 'sdk' || mode === 'instrumented') {
	// Loaded only on these sides: the others never load OpenTelemetry.
	const {setUpSdk} = await import('./telemetry-sdk.js');
	setUpSdk(multidb(sequelize), mode === 'instrumented');
}

process.on('message', (message: WorkerRun | 'stop') => {
	if (message === 'stop') {
		void sequelize.close().then(() => process.exit(0));
		return;
	}

	const cpu = process.cpuUsage();
	void runFor(message.ms, message.concurrency, async () => whoAnswers(sequelize)).then(latencies => {
		const {user, system} = process.cpuUsage(cpu);
		const result: WorkerResult = {reads: latencies.length, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), cpuPerRead: (user + system) / Math.max(1, latencies.length)};
		process.send?.(result);
	});
});
process.send?.('ready');
