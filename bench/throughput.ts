// Read throughput and latency through the router vs Sequelize's own replication, on the
// same cluster with the same pool settings, each side in its own long-lived process
// (bench/throughput-worker.ts), measured alternately so drift on a shared machine hits both
// alike; on each Node version asked for (official binaries from the npm registry).
import {execFileSync, fork, type ChildProcess} from 'node:child_process';
import {fileURLToPath} from 'node:url';
import {clusterEnvironment} from '../scripts/local-cluster/index.js';
import {nodeBinary} from '../scripts/node-binary.js';
import {markdownTable, median, spread, type BenchCluster} from './harness.js';
import type {BenchSection} from './section.js';
import type {WorkerMode, WorkerResult, WorkerRun} from './throughput-worker.js';

const concurrencies = [1, 8, 32, 64];
const runs = 9;
const runMs = 1000;
const warmUpMs = 1000;
/** `MULTIDB_BENCH_NODE_VERSIONS="20 24 26"` to choose. */
export const nodeVersions = (process.env.MULTIDB_BENCH_NODE_VERSIONS ?? '20 24').trim().split(/\s+/).map(Number);
const settings = [
	{label: 'one replica', replicas: 1, target: 0.98},
	{label: 'two replicas', replicas: 2, target: 0.95},
] as const;

export async function throughput(cluster: BenchCluster): Promise<BenchSection> {
	const bodies: string[] = [];
	const verdicts: Array<{figure: string; target: string; met: boolean}> = [];
	for (const major of nodeVersions) {
		const node = nodeBinary(major);
		const version = execFileSync(node, ['--version'], {encoding: 'utf8'}).trim();
		for (const setting of settings) {
			console.log(`  Node ${version}, ${setting.label}...`);
			const {table, ratios} = await compare(cluster, node, setting.replicas);
			bodies.push(`Node ${version}, ${setting.label}:\n\n${table}`);
			for (const [concurrency, ratio] of ratios) {
				verdicts.push({figure: `read throughput ratio, Node ${version}, ${setting.label}, concurrency ${concurrency}: ${ratio.toFixed(3)}`, target: `>= ${setting.target}`, met: ratio >= setting.target});
			}
		}
	}

	return {
		id: 'throughput',
		title: 'Read throughput and latency: router vs Sequelize\'s own replication',
		method: `\`SELECT inet_server_port()\` typed as a read, in closed loops at each concurrency; \`pool: {max: 10}\` for both (Sequelize shares one read pool of 10 across replicas; the router has a pool of 10 per replica). Each side runs in its own process (in one process, the router's AsyncLocalStorage would also tax the baseline's promises); after a ${warmUpMs / 1000} s warm-up of each, ${runs} runs of ${runMs / 1000} s per side alternate, the order flipped every run. Reads/s are the median of the runs with min–max; latencies the median over runs of each run's percentile; the ratio is the ratio of the medians, with the spread of the paired runs' ratios. Client CPU per read is each worker's own CPU time (user + system) over its reads: the router's cost without the servers' scheduling. One replica isolates the router's own cost; with two, the router alternates servers query by query while Sequelize keeps reusing warm connections to whichever replica they reached, and on this 2-core machine the primary, both replicas and the client share the cores.`,
		body: bodies.join('\n\n'),
		verdicts,
	};
}

async function compare(cluster: BenchCluster, node: string, replicas: number): Promise<{table: string; ratios: Array<[number, number]>}> {
	const [native, routed] = await Promise.all([Side.start(cluster, node, 'native', replicas), Side.start(cluster, node, 'routed', replicas)]);
	const rows: string[][] = [];
	const ratios: Array<[number, number]> = [];
	try {
		for (const concurrency of concurrencies) {
			const results = await alternate([native, routed], concurrency);
			const {ratio, paired} = ratioOf(results.routed, results.native);
			ratios.push([concurrency, ratio]);
			rows.push(sideRow(concurrency, 'Sequelize replication', results.native, '1'), sideRow(concurrency, 'sequelize-multidb', results.routed, `**${ratio.toFixed(3)}** (paired runs ${paired})`));
		}
	} finally {
		await Promise.all([native.stop(), routed.stop()]);
	}

	return {table: markdownTable(['concurrency', 'reader', 'reads/s median (min–max)', 'p50 ms', 'p99 ms', 'client CPU µs/read', 'ratio to Sequelize'], rows), ratios};
}

/** A warm-up of each side, then `runs` timed runs per side, alternating, the order flipped every run. */
export async function alternate(sides: readonly Side[], concurrency: number): Promise<Record<string, WorkerResult[]>> {
	for (const side of sides) {
		await side.run({concurrency, ms: warmUpMs});
	}

	const results: Record<string, WorkerResult[]> = Object.fromEntries(sides.map(side => [side.mode, []]));
	for (let run = 0; run < runs; run++) {
		const order = run % 2 === 0 ? sides : [...sides].reverse();
		for (const side of order) {
			results[side.mode].push(await side.run({concurrency, ms: runMs}));
		}
	}

	return results;
}

const perSecond = (list: readonly WorkerResult[]) => list.map(result => result.reads / (runMs / 1000));

/** The ratio of the median reads/s of two sides, and the range of the paired runs' ratios. */
export function ratioOf(side: readonly WorkerResult[], baseline: readonly WorkerResult[]): {ratio: number; paired: string} {
	const paired = side.map((result, index) => result.reads / baseline[index].reads);
	return {ratio: median(perSecond(side)) / median(perSecond(baseline)), paired: `${Math.min(...paired).toFixed(3)}–${Math.max(...paired).toFixed(3)}`};
}

/** One table row: a side's reads/s, latencies and client CPU, and its ratio columns. */
export function sideRow(concurrency: number, label: string, results: readonly WorkerResult[], ...ratios: string[]): string[] {
	return [
		String(concurrency),
		label,
		spread(perSecond(results)),
		median(results.map(result => result.p50)).toFixed(2),
		median(results.map(result => result.p99)).toFixed(2),
		median(results.map(result => result.cpuPerRead)).toFixed(1),
		...ratios,
	];
}

/** One side's worker process. */
export class Side {
	static async start(cluster: BenchCluster, node: string, mode: WorkerMode, replicas: number): Promise<Side> {
		const child = fork(fileURLToPath(new URL('throughput-worker.ts', import.meta.url)), [mode, String(replicas)], {
			execPath: node,
			execArgv: ['--import', 'tsx'],
			env: {...process.env, ...clusterEnvironment(cluster.local)},
			stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
		});
		await new Promise<void>((resolve, reject) => {
			child.once('message', () => {
				resolve();
			});
			child.once('exit', code => {
				reject(new Error(`the ${mode} worker exited with ${code}`));
			});
		});
		return new Side(child, mode);
	}

	private constructor(readonly child: ChildProcess, readonly mode: WorkerMode) {}

	async run(run: WorkerRun): Promise<WorkerResult> {
		const result = new Promise<WorkerResult>(resolve => {
			this.child.once('message', message => {
				resolve(message as WorkerResult);
			});
		});
		this.child.send(run);
		return result;
	}

	async stop(): Promise<void> {
		const exited = new Promise(resolve => this.child.once('exit', resolve));
		this.child.send('stop');
		await exited;
	}
}
