// `instrument(db)`'s own cost, paired in one process: OpenTelemetry's SDK is set up once (so
// whatever it costs every promise is paid by both halves alike), and batches of sequential
// reads alternate with the router instrumented and not. Prints the client CPU per read of
// each half's batches, as JSON. Run by bench/telemetry.ts on each Node version; with the
// argument `no-waits`, instrumented with `connectionWaitTime: false`.
import {multidb} from '../source/index.js';
import {instrument} from '../source/opentelemetry.js';
import {endpointsFromEnvironment, newSequelize} from '../scripts/local-cluster/index.js';
import {whoAnswers} from './harness.js';
import {setUpSdk} from './telemetry-sdk.js';

const batches = 40;
const readsPerBatch = 2000;
const endpoints = endpointsFromEnvironment();
if (!endpoints) {
	throw new TypeError('Set MULTIDB_TEST_PRIMARY/REPLICAS');
}

const sequelize = newSequelize(endpoints, {pool: {max: 10}, replicas: endpoints.replicas.slice(0, 1)});
const db = multidb(sequelize);
const {meterProvider, tracerProvider} = setUpSdk(db, false);

async function batch(): Promise<number> {
	const cpu = process.cpuUsage();
	for (let index = 0; index < readsPerBatch; index++) {
		await whoAnswers(sequelize);
	}

	const {user, system} = process.cpuUsage(cpu);
	return (user + system) / readsPerBatch;
}

const result = {plain: [] as number[], instrumented: [] as number[]};
await batch();
for (let index = 0; index < batches; index++) {
	// The order flips every batch, so drift hits both halves alike.
	for (const instrumented of index % 2 === 0 ? [false, true] : [true, false]) {
		const instrumentation = instrumented ? instrument(db, {meterProvider, tracerProvider, connectionWaitTime: process.argv[2] !== 'no-waits'}) : undefined;
		result[instrumented ? 'instrumented' : 'plain'].push(await batch());
		instrumentation?.stop();
	}
}

await sequelize.close();
await meterProvider.shutdown();
process.stdout.write(JSON.stringify(result));
