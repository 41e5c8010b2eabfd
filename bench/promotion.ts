// The primary crashed and replica1 promoted under a steady load of writes and reads, for
// the router and for Sequelize's own replication, each on a fresh cluster: writes/s and
// reads/s per server through it (bench/promotion-writes.svg, bench/promotion-reads.svg),
// failed operations, and the time from the promotion to the first write that succeeds.
import {writeFile} from 'node:fs/promises';
import {setTimeout as delay} from 'node:timers/promises';
import {QueryTypes} from 'sequelize';
import {followOtherPrimary} from '../scripts/local-cluster/index.js';
import {multidb} from '../source/index.js';
import {multidbDefaults} from '../source/options.js';
import {lineChart} from './chart.js';
import {markdownTable, startBenchCluster, type BenchCluster} from './harness.js';
import type {BenchSection} from './section.js';

const readers = 4;
const totalMs = 10_000;
const crashAtMs = 2500;
/** When replica2 is pointed at the new primary, as a failover manager would do. */
const repointAtMs = 5500;
const bucketMs = 250;

interface Timeline {
	readonly reads: {attempted: number; failed: number};
	readonly writes: {attempted: number; failed: number; afterPromotion: number};
	readonly buckets: Array<Record<string, number>>;
	/** When the promotion completed, from the start (ms). */
	readonly promotedAtMs: number;
	/** From the promotion completing to the first write that succeeded after it; undefined: none did. */
	readonly switchMs: number | undefined;
	readonly firstWriteError: string | undefined;
}

export async function promotion(): Promise<BenchSection> {
	const timelines = {native: await underLoad('native'), routed: await underLoad('routed')};
	await writeFile(new URL('promotion-writes.svg', import.meta.url), chart(timelines, 'write'));
	await writeFile(new URL('promotion-reads.svg', import.meta.url), chart(timelines, 'read'));
	const interval = multidbDefaults.monitorIntervalMs;
	const rows = (['native', 'routed'] as const).map(mode => {
		const {reads, writes, switchMs, firstWriteError} = timelines[mode];
		return [
			mode === 'native' ? 'Sequelize replication' : 'sequelize-multidb (default options)',
			`${reads.failed} of ${reads.attempted}`,
			`${writes.failed} of ${writes.attempted}`,
			switchText(switchMs),
			String(writes.afterPromotion),
			firstWriteError ?? '',
		];
	});
	const routed = timelines.routed;
	return {
		id: 'promotion',
		title: 'The primary crashed and a replica promoted under load',
		method: `One closed loop of writes (an INSERT of a unique id, \`RETURNING inet_server_port()\`) and ${readers} closed loops of reads for ${totalMs / 1000} s. At ${crashAtMs / 1000} s the primary is stopped with \`pg_ctl stop -m immediate\` and replica1 promoted with \`pg_ctl promote\`; at ${repointAtMs / 1000} s replica2 is pointed at replica1 (\`primary_conninfo\`, reloaded), as a failover manager would. Each side runs on a fresh cluster (no lag); the router runs with its defaults (monitor every ${interval} ms ±20 %).`,
		body: `${markdownTable(['client', 'failed reads', 'failed writes', 'promotion -> first write', 'writes after the promotion', 'first failed write'], rows)}\n\n![Writes per second per server through the promotion](bench/promotion-writes.svg)\n\n![Reads per second per server through the promotion](bench/promotion-reads.svg)`,
		verdicts: [
			{figure: `failed reads through the promotion, router: ${routed.reads.failed} of ${routed.reads.attempted}`, target: '0', met: routed.reads.failed === 0},
			{figure: `promotion -> first write on the new primary, router: ${switchText(routed.switchMs)}`, target: `within two monitor intervals (${2 * interval} ms, plus their jitter)`, met: routed.switchMs !== undefined && routed.switchMs <= 2 * 1.2 * interval},
			{figure: `writes after the promotion, Sequelize replication: ${timelines.native.writes.afterPromotion}`, target: '0 until restarted (the problem being solved)', met: timelines.native.writes.afterPromotion === 0},
		],
	};
}

async function underLoad(mode: 'native' | 'routed'): Promise<Timeline> {
	const cluster = await startBenchCluster({applyDelaysMs: [0, 0]});
	const sequelize = cluster.connect();
	if (mode === 'routed') {
		multidb(sequelize);
	}

	await sequelize.query('CREATE TABLE entries (id text PRIMARY KEY)');
	await cluster.local.waitForReplay();
	const buckets: Array<Record<string, number>> = Array.from({length: Math.ceil(totalMs / bucketMs)}, () => ({}));
	const reads = {attempted: 0, failed: 0};
	const writes = {attempted: 0, failed: 0, afterPromotion: 0};
	let promotedAt: number | undefined;
	let switchMs: number | undefined;
	let firstWriteError: string | undefined;
	const started = performance.now();
	const count = (key: string) => {
		const bucket = buckets[Math.min(buckets.length - 1, Math.floor((performance.now() - started) / bucketMs))];
		bucket[key] = (bucket[key] ?? 0) + 1;
	};

	const running = () => performance.now() - started < totalMs;
	try {
		const writer = (async () => {
			for (let n = 0; running(); n++) {
				writes.attempted++;
				try {
					const [rows] = await sequelize.query(`INSERT INTO entries (id) VALUES ('w${n}') RETURNING inet_server_port() AS port`);
					count(`write:${serverOf(cluster, rows)}`);
					if (promotedAt !== undefined) {
						writes.afterPromotion++;
						switchMs ??= performance.now() - promotedAt;
					}
				} catch (error) {
					writes.failed++;
					firstWriteError ??= (error as Error).message.slice(0, 60);
					count('write:failed');
					await delay(5);
				}
			}
		})();
		const load = Array.from({length: readers}, async () => {
			while (running()) {
				reads.attempted++;
				try {
					const rows = await sequelize.query('SELECT inet_server_port() AS port', {type: QueryTypes.SELECT});
					count(`read:${serverOf(cluster, rows)}`);
				} catch {
					reads.failed++;
					count('read:failed');
					await delay(5);
				}
			}
		});
		await delay(crashAtMs);
		await cluster.local.primary.stop('immediate');
		await cluster.local.replicas[0].promote();
		promotedAt = performance.now();
		await delay(repointAtMs - (promotedAt - started));
		await followOtherPrimary(cluster.local.replicas[1], cluster.local.replicas[0]);
		await Promise.all([writer, ...load]);
	} finally {
		await sequelize.close();
		await cluster.stop();
	}

	return {reads, writes, buckets, promotedAtMs: promotedAt - started, switchMs, firstWriteError};
}

function serverOf(cluster: BenchCluster, rows: unknown): string {
	const [row] = rows as Array<{port: number}>;
	return cluster.names.get(row.port) ?? 'unknown';
}

function switchText(ms: number | undefined): string {
	return ms === undefined ? 'never (until restarted)' : `${Math.round(ms)} ms`;
}

/** Writes/s or reads/s per server, one panel per client (two charts: reads outnumber writes 5 to 1). */
function chart(timelines: Record<'native' | 'routed', Timeline>, kind: 'write' | 'read'): string {
	const servers = kind === 'write' ? [['primary', '#555'], ['replica1', '#9467bd']] : [['primary', '#555'], ['replica1', '#1f77b4'], ['replica2', '#2ca02c']];
	return lineChart({
		series: [
			...servers.map(([server, color]) => ({key: `${kind}:${server}`, label: `${kind}s on ${server}`, color})),
			{key: `${kind}:failed`, label: `failed ${kind}s`, color: '#d62728'},
		],
		panels: [{title: 'Sequelize replication', buckets: timelines.native.buckets}, {title: 'sequelize-multidb', buckets: timelines.routed.buckets}],
		bucketMs,
		totalMs,
		marks: [[crashAtMs, 'crash primary, promote replica1'], [repointAtMs, 'replica2 follows replica1']],
		unit: '/s',
	});
}
