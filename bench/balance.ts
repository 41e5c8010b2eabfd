// Replica selection under an uneven fleet: least outstanding requests against round robin
// with one replica slower than the other (every read on replica1 sleeps 5 ms on the server),
// and the split that weights 2:1 give.
import {QueryTypes, type Sequelize} from 'sequelize';
import {multidb, type MultiDbOptions} from '../source/index.js';
import {markdownTable, median, percentile, runFor, spread, type BenchCluster} from './harness.js';
import type {BenchSection} from './section.js';

const concurrency = 16;
const runMs = 3000;
const runs = 3;
const slowMs = 5;
const weightedReads = 3000;

interface Run {
	readonly readsPerSecond: number;
	readonly p50: number;
	readonly p99: number;
	/** Share of reads on the fast replica. */
	readonly fastShare: number;
}

export async function balance(cluster: BenchCluster): Promise<BenchSection> {
	const slowPort = cluster.endpoints.replicas[0].port;
	const sql = `SELECT inet_server_port() AS port, CASE WHEN inet_server_port() = ${slowPort} THEN pg_sleep(${slowMs / 1000}) END AS slept`;
	const results: Record<'round-robin' | 'least-outstanding', Run[]> = {'round-robin': [], 'least-outstanding': []};
	for (let run = 0; run < runs; run++) {
		// Alternate, flipping the order every run, so a noisy moment does not favour one side.
		const order = run % 2 === 0 ? ['round-robin', 'least-outstanding'] as const : ['least-outstanding', 'round-robin'] as const;
		for (const policy of order) {
			results[policy].push(await measure(cluster, {balance: policy}, sql, slowPort));
		}
	}

	const rows = (['round-robin', 'least-outstanding'] as const).map(policy => {
		const list = results[policy];
		return [policy, spread(list.map(run => run.readsPerSecond)), spread(list.map(run => run.p50), 2), spread(list.map(run => run.p99), 2), `${(median(list.map(run => run.fastShare)) * 100).toFixed(1)} %`];
	});
	const p99 = (policy: keyof typeof results) => median(results[policy].map(run => run.p99));
	const ratio = p99('least-outstanding') / p99('round-robin');
	const split = await weightedSplit(cluster);
	return {
		id: 'balance',
		title: 'Replica selection: least outstanding vs round robin with a slow replica; weights',
		method: `${concurrency} closed loops of reads for ${runMs / 1000} s per run, ${runs} runs per policy alternating; every read on replica1 sleeps ${slowMs} ms on the server (\`pg_sleep\` when \`inet_server_port()\` is replica1's), so replica1 is a slower server and replica2 a fast one; \`pool: {max: 10}\` per replica. Then ${weightedReads} sequential reads with replica1 weighted 2 and replica2 1.`,
		body: `${markdownTable(['balance', 'reads/s median (min–max)', 'p50 ms', 'p99 ms', 'reads on the fast replica'], rows)}\n\nleast-outstanding p99 / round-robin p99: **${ratio.toFixed(3)}**\n\nWeights 2:1 over ${weightedReads} sequential reads: replica1 ${split.replica1}, replica2 ${split.replica2} (${(split.replica1 / weightedReads * 100).toFixed(2)} % / ${(split.replica2 / weightedReads * 100).toFixed(2)} %).`,
		verdicts: [
			{figure: `p99 latency, least-outstanding / round-robin, one replica ${slowMs} ms slower: ${ratio.toFixed(3)}`, target: '< 1 (least outstanding beats round robin)', met: ratio < 1},
			{figure: `weights 2:1 over ${weightedReads} reads: ${(split.replica1 / weightedReads * 100).toFixed(2)} % on the heavier replica`, target: '66.67 % ± 1 %', met: Math.abs((split.replica1 / weightedReads) - (2 / 3)) <= 0.01},
		],
	};
}

async function measure(cluster: BenchCluster, options: MultiDbOptions, sql: string, slowPort: number): Promise<Run> {
	const sequelize = cluster.connect();
	multidb(sequelize, {shuffle: false, ...options});
	try {
		let fast = 0;
		let total = 0;
		const read = async () => {
			const row = await sequelize.query<{port: number}>(sql, {type: QueryTypes.SELECT, plain: true});
			total++;
			if (row?.port !== slowPort) {
				fast++;
			}
		};

		await runFor(500, concurrency, read);
		fast = 0;
		total = 0;
		const latencies = await runFor(runMs, concurrency, read);
		return {readsPerSecond: latencies.length / (runMs / 1000), p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), fastShare: fast / total};
	} finally {
		await sequelize.close();
	}
}

async function weightedSplit(cluster: BenchCluster): Promise<{replica1: number; replica2: number}> {
	const sequelize: Sequelize = cluster.connect();
	const [first] = cluster.endpoints.replicas;
	multidb(sequelize, {shuffle: false, weights: {[`${first.host}:${first.port}`]: 2}});
	try {
		const counts = {replica1: 0, replica2: 0};
		for (let index = 0; index < weightedReads; index++) {
			const row = await sequelize.query<{port: number}>('SELECT inet_server_port() AS port', {type: QueryTypes.SELECT, plain: true});
			counts[row?.port === first.port ? 'replica1' : 'replica2']++;
		}

		return counts;
	} finally {
		await sequelize.close();
	}
}
