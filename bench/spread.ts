// Load spread: which replica answers each read, sequentially and concurrently, router vs
// Sequelize's own replication.
import {multidb} from '../source/index.js';
import {markdownTable, whoAnswers, type BenchCluster} from './harness.js';
import type {BenchSection} from './section.js';

const reads = 1000;
const concurrency = 16;

export async function spreadOfReads(cluster: BenchCluster): Promise<BenchSection> {
	const rows: string[][] = [];
	const verdicts: Array<{figure: string; target: string; met: boolean}> = [];
	for (const mode of ['native', 'routed'] as const) {
		const sequelize = cluster.connect();
		if (mode === 'routed') {
			multidb(sequelize);
		}

		try {
			for (const pattern of ['sequential', 'concurrent'] as const) {
				const ports: number[] = [];
				if (pattern === 'sequential') {
					for (let index = 0; index < reads; index++) {
						ports.push(await whoAnswers(sequelize));
					}
				} else {
					let left = reads;
					await Promise.all(Array.from({length: concurrency}, async () => {
						while (left-- > 0) {
							ports.push(await whoAnswers(sequelize));
						}
					}));
				}

				const share = (name: string) => ports.filter(port => cluster.names.get(port) === name).length / ports.length;
				const [first, second] = [share('replica1'), share('replica2')];
				rows.push([mode === 'native' ? 'Sequelize replication' : 'sequelize-multidb', pattern === 'sequential' ? 'sequential' : `concurrent (${concurrency})`, `${(first * 100).toFixed(1)} %`, `${(second * 100).toFixed(1)} %`]);
				if (mode === 'routed') {
					const worst = Math.max(Math.abs(first - 0.5), Math.abs(second - 0.5));
					verdicts.push({figure: `${pattern} reads per replica: ${(first * 100).toFixed(1)} % / ${(second * 100).toFixed(1)} %`, target: '50 % ± 1 %', met: worst <= 0.01});
				}
			}
		} finally {
			await sequelize.close();
		}
	}

	return {
		id: 'spread',
		title: 'Load spread over two replicas',
		method: `${reads} reads of \`SELECT inet_server_port()\`, one after another, then with ${concurrency} in flight; the answering server is the one that ran the query.`,
		body: markdownTable(['reader', 'reads', 'replica1', 'replica2'], rows),
		verdicts,
	};
}
