// Simulated users who write, then read what they wrote several times: where do the reads
// go, and how many are stale? Sequelize's own replication (no pinning), time pinning (the
// seed's behaviour) and LSN pinning, on a cluster whose second replica replays 1.5 s late.
import {createServer, type Server} from 'node:http';
import type {AddressInfo} from 'node:net';
import {setTimeout as delay} from 'node:timers/promises';
import KoaRouter from '@koa/router';
import Koa from 'koa';
import {QueryTypes} from 'sequelize';
import {multidb, pinning} from '../source/index.js';
import {CookieJar} from '../test/helpers/cookie-jar.js';
import {waitForReplay} from '../test/helpers/replay.js';
import {markdownTable, type BenchCluster} from './harness.js';
import type {BenchSection} from './section.js';

const users = 12;
const rounds = 5;
/** After each write, the user reads its note at these delays (ms after the write). */
const readDelaysMs = [0, 100, 500, 1000];

type Mode = 'native' | 'time' | 'lsn';

export interface ReadAfterWriteResult {
	readonly reads: number;
	readonly onPrimary: number;
	readonly stale: number;
}

export async function readAfterWrite(cluster: BenchCluster): Promise<BenchSection & {results: Record<Mode, ReadAfterWriteResult>}> {
	const setup = cluster.connect();
	await setup.query('CREATE TABLE IF NOT EXISTS bench_notes (id serial PRIMARY KEY, body text)');
	await setup.close();
	await waitForReplay(cluster.endpoints);
	const results = {} as Record<Mode, ReadAfterWriteResult>;
	for (const mode of ['native', 'time', 'lsn'] as const) {
		results[mode] = await runMode(cluster, mode);
	}

	const share = (result: ReadAfterWriteResult) => result.onPrimary / result.reads;
	const label = {native: 'Sequelize replication', time: 'pinning, consistency: \'time\'', lsn: 'pinning, consistency: \'lsn\''};
	const rows = (['native', 'time', 'lsn'] as const).map(mode => [label[mode], String(results[mode].reads), `${(share(results[mode]) * 100).toFixed(1)} %`, String(results[mode].stale)]);
	const lsnToTime = share(results.time) === 0 ? 0 : share(results.lsn) / share(results.time);
	return {
		id: 'read-after-write',
		title: 'Read-after-write: share of reads on the primary, and stale reads',
		method: `${users} simulated users, each doing ${rounds} rounds of: POST a note (a write), then GET it back at ${readDelaysMs.join(', ')} ms after the write, with a cookie jar like a browser's. Each GET is one query that reports both the answering server and whether the note was visible (not visible = stale). Replica2 replays 1.5 s late.`,
		body: `${markdownTable(['reader', 'reads', 'on the primary', 'stale reads'], rows)}\n\nLSN mode's primary share is ${lsnToTime.toFixed(3)} of time mode's.`,
		verdicts: [
			{figure: `LSN mode's primary share / time mode's: ${lsnToTime.toFixed(3)}`, target: '<= 0.1', met: lsnToTime <= 0.1},
			{figure: `stale reads: time ${results.time.stale}, LSN ${results.lsn.stale}`, target: '0 in both', met: results.time.stale === 0 && results.lsn.stale === 0},
			{figure: `stale reads with Sequelize's replication: ${results.native.stale}`, target: '> 0 (the problem being solved)', met: results.native.stale > 0},
		],
		results,
	};
}

async function runMode(cluster: BenchCluster, mode: Mode): Promise<ReadAfterWriteResult> {
	const sequelize = cluster.connect();
	const app = new Koa();
	if (mode !== 'native') {
		const db = multidb(sequelize);
		app.use(pinning({db, consistency: mode}));
	}

	const router = new KoaRouter();
	router.post('/notes', async ctx => {
		const [rows] = await sequelize.query('INSERT INTO bench_notes (body) VALUES (\'hello\') RETURNING id');
		ctx.body = {id: (rows as Array<{id: number}>)[0].id};
	});
	router.get('/notes/:id', async ctx => {
		const row = await sequelize.query<{port: number; found: boolean}>('SELECT inet_server_port() AS port, EXISTS (SELECT 1 FROM bench_notes WHERE id = :id) AS found', {type: QueryTypes.SELECT, plain: true, replacements: {id: Number(ctx.params.id)}});
		ctx.body = {port: row?.port, found: row?.found};
	});
	app.use(router.routes());
	const server = await listen(app);
	const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
	const totals = {reads: 0, onPrimary: 0, stale: 0};
	try {
		await Promise.all(Array.from({length: users}, async () => {
			const browser = new CookieJar();
			for (let round = 0; round < rounds; round++) {
				const {id} = await (await browser.fetch(`${base}/notes`, {method: 'POST'})).json() as {id: number};
				const wroteAt = Date.now();
				for (const readAt of readDelaysMs) {
					await delay(Math.max(0, wroteAt + readAt - Date.now()));
					const {port, found} = await (await browser.fetch(`${base}/notes/${id}`)).json() as {port: number; found: boolean};
					totals.reads++;
					if (cluster.names.get(port) === 'primary') {
						totals.onPrimary++;
					}

					if (!found) {
						totals.stale++;
					}
				}
			}
		}));
	} finally {
		await new Promise(resolve => {
			server.close(resolve);
		});
		await sequelize.close();
	}

	return totals;
}

async function listen(app: Koa): Promise<Server> {
	return new Promise(resolve => {
		const server = createServer(app.callback());
		server.listen(0, '127.0.0.1', () => {
			resolve(server);
		});
	});
}
