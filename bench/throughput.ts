// Read throughput and latency through the router vs Sequelize's own replication, on the
// same cluster with the same pool settings. Runs alternate between the two, so drift on a
// shared machine hits both alike.
import {multidb} from '../source/index.js';
import {markdownTable, median, percentile, runFor, spread, whoAnswers, type BenchCluster} from './harness.js';
import type {BenchSection} from './section.js';

const concurrencies = [1, 8, 64];
const runs = 5;
const runMs = 2000;

export async function throughput(cluster: BenchCluster): Promise<BenchSection> {
	const twoReplicas = await compare(cluster, 'two replicas', cluster.endpoints.replicas, true);
	// The same with one replica: the router's own cost, without the cost (on this machine)
	// of spreading reads over two servers that share its two cores.
	const oneReplica = await compare(cluster, 'one replica', cluster.endpoints.replicas.slice(0, 1), false);
	return {
		id: 'throughput',
		title: 'Read throughput and latency: router vs Sequelize\'s own replication',
		method: `\`SELECT inet_server_port()\` typed as a read, in closed loops at each concurrency, for ${runs} alternating runs of ${runMs / 1000} s per side after a 1 s warm-up; \`pool: {max: 10}\` for both (Sequelize shares one read pool of 10 across replicas; the router has a pool of 10 per replica). Reads/s are the median of the runs with min–max; latencies are the median over runs of each run's percentile. The one-replica table isolates the router's own cost: with two replicas, Sequelize keeps reusing warm connections to whichever replica they reach, while the router alternates servers query by query, and on this machine both replicas share the benchmark's two cores with the client.`,
		body: `Two replicas (the target's setting):\n\n${twoReplicas.table}\n\nOne replica (the router's own overhead):\n\n${oneReplica.table}`,
		verdicts: [...twoReplicas.verdicts, ...oneReplica.verdicts],
	};
}

async function compare(cluster: BenchCluster, label: string, replicas: BenchCluster['endpoints']['replicas'], target: boolean) {
	const native = cluster.connectTo(replicas);
	const routed = cluster.connectTo(replicas);
	multidb(routed);
	const rows: string[][] = [];
	const verdicts: Array<{figure: string; target: string; met: boolean}> = [];
	try {
		for (const concurrency of concurrencies) {
			// Warm both: pools filled, JIT settled.
			await runFor(1000, concurrency, async () => whoAnswers(native));
			await runFor(1000, concurrency, async () => whoAnswers(routed));
			const results = {native: [] as number[][], routed: [] as number[][]};
			for (let run = 0; run < runs; run++) {
				results.routed.push(await runFor(runMs, concurrency, async () => whoAnswers(routed)));
				results.native.push(await runFor(runMs, concurrency, async () => whoAnswers(native)));
			}

			const perSecond = (latencies: number[][]) => latencies.map(run => run.length / (runMs / 1000));
			const ratios = results.routed.map((run, index) => run.length / results.native[index].length);
			const ratio = median(perSecond(results.routed)) / median(perSecond(results.native));
			for (const mode of ['native', 'routed'] as const) {
				rows.push([
					String(concurrency),
					mode === 'native' ? 'Sequelize replication' : 'sequelize-multidb',
					spread(perSecond(results[mode])),
					median(results[mode].map(run => percentile(run, 0.5))).toFixed(2),
					median(results[mode].map(run => percentile(run, 0.99))).toFixed(2),
					mode === 'routed' ? `**${ratio.toFixed(3)}** (paired runs ${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})` : '1',
				]);
			}

			verdicts.push({figure: `read throughput ratio, ${label}, concurrency ${concurrency}: ${ratio.toFixed(3)}`, target: target ? '>= 0.98' : '>= 0.98 (overhead check)', met: ratio >= 0.98});
		}
	} finally {
		await Promise.all([native.close(), routed.close()]);
	}

	return {table: markdownTable(['concurrency', 'reader', 'reads/s median (min–max)', 'p50 ms', 'p99 ms', 'ratio to Sequelize'], rows), verdicts};
}
