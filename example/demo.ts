// `npm run demo`: starts a local primary and two replicas (replica2 replays 1.5 s late),
// then shows, with real servers answering:
// 1. per-query round-robin, next to Sequelize's own replication;
// 2. the forum scenario: a user posts, is redirected, and views the post 500 ms later,
//    with pinning (served by the primary, the post is there), with LSN pinning (served by
//    a replica that has replayed the post) and without (a replica that has not replayed
//    the post yet answers 404: the stale read pinning prevents);
// 3. what an operator sees: the forum's queries in its Prometheus metrics (OpenTelemetry),
//    and where the live status page is.
// It stops everything it started, also on Ctrl-C.
import {createServer, type Server} from 'node:http';
import type {AddressInfo} from 'node:net';
import {setTimeout as delay} from 'node:timers/promises';
import {QueryTypes, type Sequelize} from 'sequelize';
import {multidb} from '../source/index.js';
import {CookieJar} from '../test/helpers/cookie-jar.js';
import {waitForReplay} from '../test/helpers/replay.js';
import {createForum, type ForumOptions} from './forum.js';
import {startCluster, type RunningCluster} from './local-cluster.js';

const pinSeconds = 3;
const closers: Array<() => Promise<unknown>> = [];

async function showRoundRobin(cluster: RunningCluster): Promise<void> {
	const whoAnswers = async (sequelize: Sequelize) => {
		const row = await sequelize.query<{port: number}>('SELECT inet_server_port() AS port', {type: QueryTypes.SELECT, plain: true});
		return cluster.names.get(row?.port ?? 0) ?? 'unknown';
	};

	const tenReads = async (sequelize: Sequelize) => {
		const servers: string[] = [];
		for (let index = 0; index < 10; index++) {
			servers.push(await whoAnswers(sequelize));
		}

		return servers.join(' ');
	};

	const native = cluster.connect();
	const routed = cluster.connect();
	closers.push(async () => native.close(), async () => routed.close());
	multidb(routed);
	console.log('\n1. Ten sequential reads: which server answered each');
	console.log(`   Sequelize's own replication: ${await tenReads(native)}`);
	console.log(`   with sequelize-multidb:      ${await tenReads(routed)}`);
}

async function showForumScenario(cluster: RunningCluster): Promise<string> {
	console.log(`\n2. The forum: post, get redirected, view the post 500 ms later (replica2 lags 1.5 s; pins last ${pinSeconds} s)`);
	const pinned = await serveForum(cluster, {pinning: {seconds: pinSeconds}, operatorPages: true});
	const byPosition = await serveForum(cluster, {pinning: {seconds: pinSeconds, consistency: 'lsn'}});
	const unpinned = await serveForum(cluster, {pinning: false});
	await pinned.sync();
	await waitForReplay(cluster.endpoints);

	for (const [label, forum] of [['with pinning   ', pinned], ['LSN pinning    ', byPosition], ['without pinning', unpinned]] as const) {
		for (let round = 1; round <= 3; round++) {
			const browser = new CookieJar();
			const posted = await browser.fetch(`${forum.url}/posts`, {method: 'POST', body: new URLSearchParams({title: `${label.trim()} #${round}`, body: 'Hello'}), redirect: 'manual'});
			const location = posted.headers.get('location') ?? '';
			await delay(500);
			const viewed = await browser.fetch(`${forum.url}${location}`);
			const verdict = viewed.status === 200 ? 'the post is there' : 'STALE: not found';
			console.log(`   ${label}  POST /posts -> ${posted.status} ${location.padEnd(10)} then GET -> ${viewed.status} ${verdict.padEnd(17)} served by ${viewed.headers.get('x-served-by') ?? '?'}`);
		}
	}

	const browser = new CookieJar();
	await browser.fetch(`${pinned.url}/posts`, {method: 'POST', body: new URLSearchParams({title: 'later', body: 'Hello'}), redirect: 'manual'});
	const during = await browser.fetch(`${pinned.url}/`);
	console.log(`\n   Pinned client, list page right after its post:  served by ${during.headers.get('x-served-by') ?? '?'}`);
	await delay((pinSeconds * 1000) + 200);
	const reads: string[] = [];
	for (let index = 0; index < 2; index++) {
		const after = await browser.fetch(`${pinned.url}/`);
		reads.push(after.headers.get('x-served-by') ?? '?');
	}

	console.log(`   The same client, ${pinSeconds} s later (pin expired):       served by ${reads.join(', then ')}`);
	return pinned.url;
}

async function showMetrics(cluster: RunningCluster, forumUrl: string): Promise<void> {
	console.log('\n3. What operators see: the pinned forum\'s queries, from its /metrics (OpenTelemetry, Prometheus format)');
	const scrape = await (await fetch(`${forumUrl}/metrics`)).text();
	for (const line of scrape.split('\n').filter(each => each.startsWith('multidb_queries_total{'))) {
		const label = (name: string) => new RegExp(`${name}="([^"]*)"`).exec(line)?.[1] ?? '?';
		const server = cluster.names.get(Number(label('server_port'))) ?? label('server_port');
		console.log(`   ${server.padEnd(9)} ${label('multidb_reason').padEnd(12)} ${line.slice(line.lastIndexOf(' ') + 1)} queries`);
	}

	console.log('   Live, with charts: `npm run example`, then http://localhost:3000/status (and /metrics)');
}

async function serveForum(cluster: RunningCluster, options: Omit<ForumOptions, 'sequelize'>) {
	const sequelize = cluster.connect();
	const forum = await createForum({sequelize, serverNames: cluster.names, ...options});
	const server = await listen(createServer(forum.listener));
	closers.push(async () => sequelize.close(), forum.stop, async () => new Promise(resolve => server.close(resolve)));
	return {url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sync: forum.sync};
}

async function listen(server: Server): Promise<Server> {
	return new Promise(resolve => {
		server.listen(0, '127.0.0.1', () => {
			resolve(server);
		});
	});
}

// Last, so that every declaration above is initialised before the demo runs.
const cluster = await startCluster();
try {
	await showRoundRobin(cluster);
	const forumUrl = await showForumScenario(cluster);
	await showMetrics(cluster, forumUrl);
} finally {
	for (const close of closers.reverse()) {
		await close();
	}

	await cluster.stop();
}
