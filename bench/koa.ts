// Koa with `pinning()` vs bare Koa, on the same routes: one that touches no database, one
// that does one routed read. Load comes from autocannon in its own process, so the client
// does not share the server's event loop.
import {execFile} from 'node:child_process';
import {createServer, type Server} from 'node:http';
import type {AddressInfo} from 'node:net';
import {createRequire} from 'node:module';
import {promisify} from 'node:util';
import KoaRouter from '@koa/router';
import Koa from 'koa';
import {multidb, pinning} from '../source/index.js';
import {markdownTable, median, spread, whoAnswers, type BenchCluster} from './harness.js';
import type {BenchSection} from './section.js';

const runs = 3;
const seconds = 3;
const connections = 16;
/** How every HTTP benchmark loads a server (bench/frameworks.ts too). */
export const loadSettings = {seconds, connections} as const;
const autocannon = createRequire(import.meta.url).resolve('autocannon/autocannon.js');

export async function koaOverhead(cluster: BenchCluster): Promise<BenchSection> {
	const sequelize = cluster.connect();
	const db = multidb(sequelize);
	const router = new KoaRouter();
	router.get('/plain', ctx => {
		ctx.body = 'ok';
	});
	router.get('/read', async ctx => {
		ctx.body = String(await whoAnswers(sequelize));
	});
	const bare = new Koa();
	bare.use(router.routes());
	const pinned = new Koa();
	pinned.use(pinning({db}));
	pinned.use(router.routes());
	// A reference: what any one extra middleware layer costs on this route.
	const layered = new Koa();
	layered.use(async function noop(_ctx, next) {
		await next();
	});
	layered.use(router.routes());
	const servers = await Promise.all([listen(bare), listen(pinned), listen(layered)]);
	const [bareUrl, pinnedUrl, layeredUrl] = servers.map(server => `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
	const rows: string[][] = [];
	const verdicts: Array<{figure: string; target: string; met: boolean}> = [];
	try {
		for (const route of ['/plain', '/read']) {
			await load(`${bareUrl}${route}`, 1);
			await load(`${pinnedUrl}${route}`, 1);
			await load(`${layeredUrl}${route}`, 1);
			const results = {bare: [] as number[], pinned: [] as number[], layered: [] as number[]};
			for (let run = 0; run < runs; run++) {
				results.pinned.push(await load(`${pinnedUrl}${route}`, seconds));
				results.bare.push(await load(`${bareUrl}${route}`, seconds));
				results.layered.push(await load(`${layeredUrl}${route}`, seconds));
			}

			const ratio = median(results.pinned) / median(results.bare);
			const layerRatio = median(results.layered) / median(results.bare);
			rows.push([route === '/plain' ? 'no database' : 'one read', spread(results.bare), spread(results.pinned), `**${ratio.toFixed(3)}**`, spread(results.layered), layerRatio.toFixed(3)]);
			verdicts.push({figure: `pinning() / bare Koa, ${route === '/plain' ? 'no database' : 'one read'}: ${ratio.toFixed(3)}`, target: '>= 0.97', met: ratio >= 0.97});
		}
	} finally {
		await Promise.all(servers.map(async server => new Promise(resolve => {
			server.close(resolve);
		})));
		await sequelize.close();
	}

	return {
		id: 'koa',
		title: 'Koa: pinning() vs bare Koa',
		method: `autocannon (separate process, ${connections} connections, ${seconds} s per run, ${runs} alternating runs per side after a 1 s warm-up) against GET routes of the same router; requests/s median (min–max). The "one read" route runs \`SELECT inet_server_port()\` through the router in both apps. The last two columns measure an app with one \`async (ctx, next) => { await next(); }\` middleware instead of \`pinning()\`: the cost of any middleware layer on this route.`,
		body: markdownTable(['route', 'bare Koa req/s', 'with pinning() req/s', 'ratio', 'with a no-op middleware req/s', 'ratio'], rows),
		verdicts,
	};
}

async function listen(app: Koa): Promise<Server> {
	return new Promise(resolve => {
		const server = createServer(app.callback());
		server.listen(0, '127.0.0.1', () => {
			resolve(server);
		});
	});
}

export async function load(url: string, durationSeconds: number): Promise<number> {
	const {stdout} = await promisify(execFile)(process.execPath, [autocannon, '--json', '-c', String(connections), '-d', String(durationSeconds), url], {maxBuffer: 10 * 1024 * 1024});
	const result = JSON.parse(stdout) as {requests: {average: number}; non2xx: number; errors: number};
	if (result.non2xx > 0 || result.errors > 0) {
		throw new Error(`${url}: ${result.non2xx} non-2xx responses, ${result.errors} errors`);
	}

	return result.requests.average;
}
