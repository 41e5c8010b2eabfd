// A replica stopped and restarted under a steady read load: failed reads, router vs
// Sequelize's own replication, each on a fresh cluster. Also draws reads per server over
// time (bench/failover.svg).
import {writeFile} from 'node:fs/promises';
import {setTimeout as delay} from 'node:timers/promises';
import {multidb} from '../source/index.js';
import {markdownTable, startBenchCluster, whoAnswers} from './harness.js';
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

/** A small SVG line chart: reads/s per server over time, one panel per reader. */
function chart(timelines: Record<'native' | 'routed', Timeline>): string {
	const series = [['primary', '#555'], ['replica1', '#1f77b4'], ['replica2', '#2ca02c'], ['failed', '#d62728']] as const;
	const width = 460;
	const height = 220;
	const margin = {left: 50, right: 10, top: 30, bottom: 35};
	const perSecond = (value: number) => value * (1000 / bucketMs);
	const top = Math.max(1, ...Object.values(timelines).flatMap(timeline => timeline.buckets.flatMap(bucket => Object.values(bucket).map(perSecond))));
	const panel = (timeline: Timeline, title: string, offsetX: number) => {
		const x = (index: number) => offsetX + margin.left + ((index + 0.5) / timeline.buckets.length) * (width - margin.left - margin.right);
		const y = (value: number) => margin.top + (1 - (value / top)) * (height - margin.top - margin.bottom);
		const lines = series.map(([name, color]) => `<polyline fill="none" stroke="${color}" stroke-width="2" points="${timeline.buckets.map((bucket, index) => `${x(index).toFixed(1)},${y(perSecond(bucket[name] ?? 0)).toFixed(1)}`).join(' ')}"/>`).join('');
		const marks = [[stopAtMs, 'stop'], [restartAtMs, 'start']] as const;
		const events = marks.map(([at, label]) => {
			const position = x((at / bucketMs) - 0.5);
			return `<line x1="${position}" x2="${position}" y1="${margin.top}" y2="${height - margin.bottom}" stroke="#999" stroke-dasharray="4"/><text x="${position + 3}" y="${margin.top + 10}" font-size="10">${label} replica1</text>`;
		}).join('');
		const axis = `<line x1="${offsetX + margin.left}" x2="${offsetX + margin.left}" y1="${margin.top}" y2="${height - margin.bottom}" stroke="#000"/><line x1="${offsetX + margin.left}" x2="${offsetX + width - margin.right}" y1="${height - margin.bottom}" y2="${height - margin.bottom}" stroke="#000"/><text x="${offsetX + margin.left - 5}" y="${margin.top + 4}" font-size="10" text-anchor="end">${Math.round(top)}</text><text x="${offsetX + margin.left - 5}" y="${height - margin.bottom}" font-size="10" text-anchor="end">0</text><text x="${offsetX + (width / 2)}" y="${height - 8}" font-size="11" text-anchor="middle">seconds (0–${totalMs / 1000})</text>`;
		return `<text x="${offsetX + (width / 2)}" y="18" font-size="13" text-anchor="middle" font-weight="bold">${title}</text>${axis}${events}${lines}`;
	};

	const legend = series.map(([name, color], index) => `<rect x="${20 + (index * 110)}" y="${height + 5}" width="12" height="12" fill="${color}"/><text x="${36 + (index * 110)}" y="${height + 15}" font-size="12">${name === 'failed' ? 'failed reads' : `${name} reads`}/s</text>`).join('');
	return `<svg xmlns="http://www.w3.org/2000/svg" width="${width * 2}" height="${height + 25}" font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/>${panel(timelines.native, 'Sequelize replication', 0)}${panel(timelines.routed, 'sequelize-multidb', width)}${legend}</svg>\n`;
}
