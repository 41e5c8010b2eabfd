// Heap growth over a million routed reads: contexts, attempts and stats must not leak.
// Needs `--expose-gc` (npm run bench passes it) to measure the heap after a full GC.
import {multidb, usePrimaryDb} from '../source/index.js';
import {markdownTable, whoAnswers, type BenchCluster} from './harness.js';
import type {BenchSection} from './section.js';

const total = 1_000_000;
const checkpoints = 5;
const concurrency = 32;

export async function memory(cluster: BenchCluster): Promise<BenchSection> {
	const gc = (globalThis as {gc?: () => void}).gc;
	if (!gc) {
		throw new Error('bench/memory needs node --expose-gc');
	}

	const sequelize = cluster.connect();
	multidb(sequelize);
	const heap = () => {
		gc();
		gc();
		return process.memoryUsage().heapUsed / 2 ** 20;
	};

	const rows: string[][] = [];
	try {
		// Warm-up: pools, JIT and lazily built structures are not a leak.
		await readMany(sequelize, 20_000);
		const start = heap();
		rows.push(['0', start.toFixed(1), '']);
		const started = performance.now();
		for (let checkpoint = 1; checkpoint <= checkpoints; checkpoint++) {
			await readMany(sequelize, total / checkpoints);
			const used = heap();
			rows.push([(checkpoint * total / checkpoints).toLocaleString('en'), used.toFixed(1), `${(used - start >= 0 ? '+' : '')}${(used - start).toFixed(1)}`]);
		}

		const growth = heap() - start;
		const seconds = (performance.now() - started) / 1000;
		return {
			id: 'memory',
			title: 'Memory over a million routed reads',
			method: `${total.toLocaleString('en')} reads (\`SELECT inet_server_port()\`, ${concurrency} in flight; every 10th inside \`usePrimaryDb\`) through one router, after a 20,000-read warm-up; heap used after two forced GCs at each checkpoint. Took ${seconds.toFixed(0)} s.`,
			body: markdownTable(['reads', 'heap used (MiB)', 'growth (MiB)'], rows),
			verdicts: [{figure: `heap growth over ${total.toLocaleString('en')} reads: ${growth.toFixed(1)} MiB`, target: 'no growth with the read count (< 5 MiB)', met: growth < 5}],
		};
	} finally {
		await sequelize.close();
	}
}

async function readMany(sequelize: Parameters<typeof whoAnswers>[0], count: number): Promise<void> {
	let left = count;
	await Promise.all(Array.from({length: concurrency}, async () => {
		while (left > 0) {
			left--;
			await (left % 10 === 0 ? usePrimaryDb(async () => whoAnswers(sequelize)) : whoAnswers(sequelize));
		}
	}));
}
