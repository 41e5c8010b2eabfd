// What OpenTelemetry costs a read: the router reporting to the real SDK (metrics exported
// every second, routing recorded for traces) against the same router uninstrumented in a
// process with the same SDK set up, and against the router with no OpenTelemetry at all
// (and Sequelize's own replication); each side in its own process, alternating runs
// (bench/throughput.ts's machinery), one replica, on the Node running the bench.
import {markdownTable, type BenchCluster} from './harness.js';
import type {BenchSection} from './section.js';
import {alternate, ratioOf, Side, sideRow} from './throughput.js';

const concurrencies = [1, 32];
/** Where an instrumented read may land against an uninstrumented one; the SDK's work is real work. */
const target = 0.95;

export async function telemetryOverhead(cluster: BenchCluster): Promise<BenchSection> {
	const sides = await Promise.all((['native', 'routed', 'sdk', 'instrumented'] as const).map(async mode => Side.start(cluster, process.execPath, mode, 1)));
	const [native, routed, sdk, instrumented] = sides;
	const rows: string[][] = [];
	const verdicts: Array<{figure: string; target: string; met: boolean}> = [];
	try {
		for (const concurrency of concurrencies) {
			console.log(`  concurrency ${concurrency}...`);
			const results = await alternate(sides, concurrency);
			const toRouted = (mode: string) => ratioOf(results[mode], results[routed.mode]);
			const toSdk = ratioOf(results[instrumented.mode], results[sdk.mode]);
			rows.push(
				sideRow(concurrency, 'Sequelize replication', results[native.mode], toRouted(native.mode).ratio.toFixed(3), '–'),
				sideRow(concurrency, 'sequelize-multidb, no OpenTelemetry', results[routed.mode], '1', '–'),
				sideRow(concurrency, 'sequelize-multidb, OpenTelemetry SDK set up, router not instrumented', results[sdk.mode], `${toRouted(sdk.mode).ratio.toFixed(3)} (paired runs ${toRouted(sdk.mode).paired})`, '1'),
				sideRow(concurrency, 'sequelize-multidb, `instrument(db)` on that SDK', results[instrumented.mode], toRouted(instrumented.mode).ratio.toFixed(3), `**${toSdk.ratio.toFixed(3)}** (paired runs ${toSdk.paired})`),
			);
			verdicts.push({figure: `read throughput with \`instrument(db)\` / without, same SDK set up, Node ${process.version}, concurrency ${concurrency}: ${toSdk.ratio.toFixed(3)}`, target: `>= ${target}`, met: toSdk.ratio >= target});
		}
	} finally {
		await Promise.all(sides.map(async side => side.stop()));
	}

	return {
		id: 'telemetry',
		title: 'OpenTelemetry: a read with `instrument(db)` vs without',
		method: `\`SELECT inet_server_port()\` typed as a read, in closed loops, one replica, \`pool: {max: 10}\`. Four processes: Sequelize's own replication; the router, which never loads \`@opentelemetry/api\`; the router in a process with OpenTelemetry's SDK set up as an application sets it up (a \`MeterProvider\` with a \`PeriodicExportingMetricReader\` exporting every second to an in-memory exporter, a \`BasicTracerProvider\`, an AsyncLocalStorage context manager), not instrumented; and the same with \`instrument(db)\` (\`traces: 'events'\`; no span is active around the reads, as in a background job). An instrumented read adds one to the router's own count for its attribute set (reported as an observable counter at export), records one \`db.client.connection.wait_time\` (the SDK hashes its attributes), and looks for an active span. The SDK's own cost shows in the third row: its exports run in \`context.with\`, an AsyncLocalStorage \`run()\`, which on Node 20 turns on promise hooks for the whole process. A warm-up, then runs of 1 s alternating, the order flipped every run; medians with min–max, and the paired runs' ratios.`,
		body: markdownTable(['concurrency', 'reader', 'reads/s median (min–max)', 'p50 ms', 'p99 ms', 'client CPU µs/read', 'ratio to the router without OpenTelemetry', 'ratio to the same SDK without `instrument(db)`'], rows),
		verdicts,
	};
}
