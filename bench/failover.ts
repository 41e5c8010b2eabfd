// A replica stopped and restarted under a steady read load: failed reads, router vs
// Sequelize's own replication, each on a fresh cluster. Also draws reads per server over
// time (bench/failover.svg).
import {writeFile} from 'node:fs/promises';
import {setTimeout as delay} from 'node:timers/promises';
import {multidb} from '../source/index.js';
import {markdownTable, startBenchCluster, whoAnswers} from './harness.js';
import {lineChart} from './chart.js';
import type {BenchSection} from './section.js';

const concurrency = 8;
const totalMs = 8000;
const stopAtMs = 2000;
const restartAtMs = 4500;
const bucketMs = 250;

interface Timeline {
	readonly attempted: number;
	readonly failed: number;
	/** Per bucket: reads answered per server, and failures. */
	readonly buckets: Array<Record<string, number>>;
	readonly firstError: string | undefined;
	/** From the restarted replica answering (its `pg_ctl start` returned) to its first read; undefined if it never served one. */
	readonly rejoinMs: number | undefined;
}

export async function failover(): Promise<BenchSection> {
	const timelines = {native: await underLoad('native'), routed: await underLoad('routed')};
	await writeFile(new URL('failover.svg', import.meta.url), chart(timelines));
	const rows = (['native', 'routed'] as const).map(mode => [
		mode === 'native' ? 'Sequelize replication' : 'sequelize-multidb (default options)',
		String(timelines[mode].attempted),
		String(timelines[mode].failed),
		rejoinText(timelines[mode].rejoinMs),
		timelines[mode].firstError ?? '',
	]);
	return {
		id: 'failover',
		title: 'A replica stopped and restarted under load',
		method: `${concurrency} closed loops of reads for ${totalMs / 1000} s; replica1 is stopped with \`pg_ctl stop -m immediate\` at ${stopAtMs / 1000} s and started again at ${restartAtMs / 1000} s. Each side runs on a fresh cluster (no lag).`,
		body: `${markdownTable(['reader', 'reads attempted', 'failed reads', 'replica answers -> serves reads', 'first error'], rows)}\n\n![Reads per second per server during the failure](bench/failover.svg)`,
		verdicts: [
			{figure: `failed reads, router: ${timelines.routed.failed} of ${timelines.routed.attempted}`, target: '0', met: timelines.routed.failed === 0},
			{figure: `failed reads, Sequelize replication: ${timelines.native.failed} of ${timelines.native.attempted}`, target: '> 0 (the problem being solved)', met: timelines.native.failed > 0},
			{figure: `restarted replica back in rotation, router: ${rejoinText(timelines.routed.rejoinMs)} after it answered (Sequelize replication: ${rejoinText(timelines.native.rejoinMs)})`, target: 'within ~1 s (probe back-off capped at 1 s)', met: timelines.routed.rejoinMs !== undefined && timelines.routed.rejoinMs <= 1500},
		],
	};
}

async function underLoad(mode: 'native' | 'routed'): Promise<Timeline> {
	const cluster = await startBenchCluster({applyDelaysMs: [0, 0]});
	const sequelize = cluster.connect();
	if (mode === 'routed') {
		multidb(sequelize);
	}

	const buckets: Array<Record<string, number>> = Array.from({length: Math.ceil(totalMs / bucketMs)}, () => ({}));
	let attempted = 0;
	let failed = 0;
	let firstError: string | undefined;
	let answeringAt: number | undefined;
	let rejoinMs: number | undefined;
	const started = performance.now();
	const count = (key: string) => {
		const bucket = buckets[Math.min(buckets.length - 1, Math.floor((performance.now() - started) / bucketMs))];
		bucket[key] = (bucket[key] ?? 0) + 1;
	};

	try {
		const load = Promise.all(Array.from({length: concurrency}, async () => {
			while (performance.now() - started < totalMs) {
				attempted++;
				try {
					const server = cluster.names.get(await whoAnswers(sequelize)) ?? 'unknown';
					count(server);
					if (server === 'replica1' && answeringAt !== undefined) {
						rejoinMs ??= performance.now() - answeringAt;
					}
				} catch (error) {
					failed++;
					firstError ??= (error as Error).message.slice(0, 80);
					count('failed');
					// A failed read returns at once; pace the loop so failures do not spin.
					await delay(5);
				}
			}
		}));
		await delay(stopAtMs);
		await cluster.local.replicas[0].stop('immediate');
		await delay(restartAtMs - stopAtMs);
		await cluster.local.replicas[0].start();
		answeringAt = performance.now();
		await load;
	} finally {
		await sequelize.close();
		await cluster.stop();
	}

	return {attempted, failed, buckets, firstError, rejoinMs};
}

function rejoinText(ms: number | undefined): string {
	return ms === undefined ? `never (within the remaining ${(totalMs - restartAtMs) / 1000} s)` : `${Math.round(ms)} ms`;
}

/** Reads/s per server over time, one panel per reader. */
function chart(timelines: Record<'native' | 'routed', Timeline>): string {
	return lineChart({
		series: [['primary', '#555'], ['replica1', '#1f77b4'], ['replica2', '#2ca02c'], ['failed', '#d62728']].map(([key, color]) => ({key, color, label: key === 'failed' ? 'failed reads' : `${key} reads`})),
		panels: [{title: 'Sequelize replication', buckets: timelines.native.buckets}, {title: 'sequelize-multidb', buckets: timelines.routed.buckets}],
		bucketMs,
		totalMs,
		marks: [[stopAtMs, 'stop replica1'], [restartAtMs, 'start replica1']],
		unit: '/s',
	});
}
