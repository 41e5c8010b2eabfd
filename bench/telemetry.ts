// What OpenTelemetry costs a read: the router reporting to the real SDK (metrics exported
// every second, routing recorded for traces) against the same router uninstrumented in a
// process with the same SDK set up, and against the router with no OpenTelemetry at all
// (and Sequelize's own replication); each side in its own process, alternating runs
// (bench/throughput.ts's machinery), one replica, on each Node version asked for
// (`MULTIDB_BENCH_NODE_VERSIONS`, as for throughput).
import {execFile, execFileSync} from 'node:child_process';
import {fileURLToPath} from 'node:url';
import {promisify} from 'node:util';
import {clusterEnvironment} from '../scripts/local-cluster/index.js';
import {nodeBinary} from '../scripts/node-binary.js';
import {markdownTable, median, type BenchCluster} from './harness.js';
import type {BenchSection} from './section.js';
import {alternate, nodeVersions, ratioOf, Side, sideRow} from './throughput.js';
import type {WorkerResult} from './throughput-worker.js';

const concurrencies = [1, 32];
/**
 * What `instrument(db)` may add to a read's client CPU. CPU per read is the verdict, not the
 * throughput ratio: on this shared 2-core machine two runs of the same side differ by ±40 %.
 * Its hot path: a histogram record (the SDK hashes the pool's name), two clock reads, a
 * promise around the acquisition, a count in a map, a look for the active span.
 */
const cpuTargetMicros = 5;

type Verdict = BenchSection['verdicts'][number];

export async function telemetryOverhead(cluster: BenchCluster): Promise<BenchSection> {
	const rows: string[][] = [];
	const verdicts: Verdict[] = [];
	const pairedRows: string[][] = [];
	for (const major of nodeVersions) {
		const node = nodeBinary(major);
		const version = execFileSync(node, ['--version'], {encoding: 'utf8'}).trim();
		console.log(`  Node ${version}...`);
		await compareOn(cluster, node, version, rows, verdicts);
		for (const variant of ['default', 'no-waits'] as const) {
			console.log(`    paired in one process, ${variant}...`);
			const paired = await pairedInOneProcess(cluster, node, variant);
			// The median of the pairs' differences: each pair ran back to back, so drift cancels.
			const differences = paired.plain.map((value, index) => paired.instrumented[index] - value);
			const added = median(differences);
			const label = variant === 'default' ? '`instrument(db)`' : '`instrument(db, {connectionWaitTime: false})`';
			pairedRows.push([version, label, median(paired.plain).toFixed(1), median(paired.instrumented).toFixed(1), `**${added.toFixed(1)}**`, `${Math.min(...differences).toFixed(1)} to ${Math.max(...differences).toFixed(1)}`]);
			verdicts.push({figure: `client CPU per read added by ${label}, paired in one process with the SDK set up, Node ${version}: ${added.toFixed(1)} µs`, target: `<= ${cpuTargetMicros} µs`, met: added <= cpuTargetMicros});
		}
	}

	return {
		id: 'telemetry',
		title: 'OpenTelemetry: a read with `instrument(db)` vs without',
		method: `\`SELECT inet_server_port()\` typed as a read, in closed loops, one replica, \`pool: {max: 10}\`. Four processes: Sequelize's own replication; the router, which never loads \`@opentelemetry/api\`; the router in a process with OpenTelemetry's SDK set up as an application sets it up (a \`MeterProvider\` with a \`PeriodicExportingMetricReader\` exporting every second to an in-memory exporter, a \`BasicTracerProvider\`, an AsyncLocalStorage context manager), not instrumented; and the same with \`instrument(db)\` (\`traces: 'events'\`; no span is active around the reads, as in a background job). An instrumented read adds one to the router's own count for its attribute set (reported as an observable counter at export), records one \`db.client.connection.wait_time\` (the SDK hashes its attributes), and looks for an active span. The SDK's own cost shows in the third row: its exports run in \`context.with\`, an AsyncLocalStorage \`run()\`, which on Node 20 turns on promise hooks for the whole process. A warm-up, then runs of 1 s alternating, the order flipped every run; medians with min–max, and the paired runs' ratios (second table). Across processes the client CPU per read still varies by ±10 µs between sides on this shared 2-core machine, so the verdict comes from the first table: in one process with the SDK set up, 40 pairs of batches of 2000 sequential reads, instrumented and not, back to back, the order flipped every pair (\`bench/telemetry-paired-worker.ts\`); the median client CPU per read of each half, and the median of the pairs' differences.`,
		body: `${markdownTable(['Node', 'instrumented with', 'client CPU µs/read, not instrumented', 'instrumented', 'added by `instrument(db)` (median of the pairs\' differences)', 'pairs\' differences, min to max'], pairedRows)}\n\n${markdownTable(['Node', 'concurrency', 'reader', 'reads/s median (min–max)', 'p50 ms', 'p99 ms', 'client CPU µs/read', 'ratio to the router without OpenTelemetry', 'ratio to the same SDK without `instrument(db)`'], rows)}`,
		verdicts,
	};
}

async function compareOn(cluster: BenchCluster, node: string, version: string, rows: string[][], verdicts: Verdict[]): Promise<void> {
	const sides = await Promise.all((['native', 'routed', 'sdk', 'instrumented'] as const).map(async mode => Side.start(cluster, node, mode, 1)));
	const [native, routed, sdk, instrumented] = sides;
	try {
		for (const concurrency of concurrencies) {
			console.log(`    concurrency ${concurrency}...`);
			const results = await alternate(sides, concurrency);
			const toRouted = (mode: string) => ratioOf(results[mode], results[routed.mode]);
			const toSdk = ratioOf(results[instrumented.mode], results[sdk.mode]);
			const row = (label: string, mode: string, ...ratios: string[]) => [version, ...sideRow(concurrency, label, results[mode], ...ratios)];
			rows.push(
				row('Sequelize replication', native.mode, toRouted(native.mode).ratio.toFixed(3), '–'),
				row('sequelize-multidb, no OpenTelemetry', routed.mode, '1', '–'),
				row('sequelize-multidb, OpenTelemetry SDK set up, router not instrumented', sdk.mode, `${toRouted(sdk.mode).ratio.toFixed(3)} (paired runs ${toRouted(sdk.mode).paired})`, '1'),
				row('sequelize-multidb, `instrument(db)` on that SDK', instrumented.mode, toRouted(instrumented.mode).ratio.toFixed(3), `**${toSdk.ratio.toFixed(3)}** (paired runs ${toSdk.paired})`),
			);
			const extraCpu = medianCpu(results[instrumented.mode]) - medianCpu(results[sdk.mode]);
			verdicts.push({figure: `client CPU per read added by \`instrument(db)\` (same SDK set up), Node ${version}, concurrency ${concurrency}: ${extraCpu.toFixed(1)} µs (throughput ratio ${toSdk.ratio.toFixed(3)})`, target: `<= ${cpuTargetMicros} µs`, met: extraCpu <= cpuTargetMicros});
		}
	} finally {
		await Promise.all(sides.map(async side => side.stop()));
	}
}

function medianCpu(results: readonly WorkerResult[]): number {
	return median(results.map(result => result.cpuPerRead));
}

async function pairedInOneProcess(cluster: BenchCluster, node: string, variant: 'default' | 'no-waits'): Promise<{plain: number[]; instrumented: number[]}> {
	const {stdout} = await promisify(execFile)(node, ['--import', 'tsx', fileURLToPath(new URL('telemetry-paired-worker.ts', import.meta.url)), variant], {env: {...process.env, ...clusterEnvironment(cluster.local)}, maxBuffer: 1024 * 1024});
	return JSON.parse(stdout) as {plain: number[]; instrumented: number[]};
}
