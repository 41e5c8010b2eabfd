import test from 'ava';
import request from 'supertest';
import {frameworkNames, type Framework} from '../example/forum-bindings.js';
import {createForum} from '../example/forum.js';
import {sharedCluster} from './helpers/shared-cluster.js';
import {newSequelize, serverNamer} from './helpers/sequelize.js';
import {waitForReplay} from './helpers/replay.js';

const cluster = await sharedCluster();
const lagging = cluster.replicas[1];
const names = new Map([cluster.primary, ...cluster.replicas].map(server => [server.port, server.name]));

// The forum's table is shared by this file's tests: create it once, everywhere.
const setupSequelize = newSequelize(cluster);
await (await createForum({sequelize: setupSequelize})).sync();
await setupSequelize.close();
await waitForReplay(cluster);

async function forumOn(t: {teardown: (fn: () => Promise<void>) => void}, pinningOn: boolean, framework: Framework) {
	// Only the lagging replica serves reads: an unpinned read of a new post is surely stale.
	const sequelize = newSequelize(cluster, {replicas: [lagging]});
	t.teardown(async () => sequelize.close());
	return (await createForum({sequelize, framework, pinning: pinningOn ? {} : false, keys: ['test'], serverNames: names})).listener;
}

// The forum's own tests, on each framework it runs on.
for (const framework of frameworkNames) {
	test(`${framework}: posting redirects to the new post, whose page is served by the primary and shows it`, async t => {
		const agent = request.agent(await forumOn(t, true, framework));
		const posted = await agent.post('/posts').type('form').send({title: 'Hello <world>', body: 'First!'}).expect(303);
		const location = posted.headers.location;
		t.regex(location, /^\/posts\/\d+$/);
		const page = await agent.get(location).expect(200);
		t.is(page.headers['x-served-by'], 'primary');
		t.true(page.text.includes('<h2 class="title">Hello &lt;world&gt;</h2>'));
		t.true(page.text.includes('<span class="served-by">primary</span>'));
	});

	test(`${framework}: without pinning, the post page right after posting is stale on the lagging replica`, async t => {
		const agent = request.agent(await forumOn(t, false, framework));
		const posted = await agent.post('/posts').type('form').send({title: 'Lost?', body: 'Not yet replayed'}).expect(303);
		const page = await agent.get(posted.headers.location).expect(404);
		t.is(page.headers['x-served-by'], lagging.name);
	});

	test(`${framework}: liking a post is a GET wrapped in dbWrite: it writes on the primary and pins the client`, async t => {
		const agent = request.agent(await forumOn(t, true, framework));
		const posted = await agent.post('/posts').type('form').send({title: 'Like me', body: '!'}).expect(303);
		const location = posted.headers.location;
		// A new client (no cookie) likes the post: its GET must still reach the primary.
		const liker = request.agent(await forumOn(t, true, framework));
		const liked = await liker.get(`${location}/like`).expect(302);
		t.is(liked.headers['x-served-by'], 'primary');
		t.true((liked.headers['set-cookie'] as unknown as string[]).some(cookie => cookie.startsWith('multidb_pin_writes=')));
		const page = await liker.get(location).expect(200);
		t.true(page.text.includes('<span class="likes">1</span>'));
	});

	test(`${framework}: a post without a title is refused with 400`, async t => {
		const response = await request(await forumOn(t, true, framework)).post('/posts').type('form').send({body: 'no title'});
		t.is(response.status, 400);
		t.true(response.text.includes('A post needs a title and a body.'));
	});

	test(`${framework}: the list page names the servers that answered`, async t => {
		const page = await request(await forumOn(t, true, framework)).get('/').expect(200);
		const served = /<span class="served-by">([^<]+)<\/span>/.exec(page.text)?.[1];
		t.is(served, serverNamer(cluster)(lagging.port));
	});
}

test('/metrics serves the router\'s OpenTelemetry metrics in Prometheus\'s format, and /status.json each server', async t => {
	const sequelize = newSequelize(cluster);
	t.teardown(async () => sequelize.close());
	const forum = await createForum({sequelize, keys: ['test'], serverNames: names, operatorPages: true});
	t.teardown(async () => forum.stop());
	const agent = request(forum.listener);
	for (let index = 0; index < 4; index++) {
		await agent.get('/').expect(200);
	}

	await forum.db.refreshReplicas();
	const scrape = await agent.get('/metrics').expect(200);
	t.regex(scrape.type, /^text\/plain/);
	const series = parseExposition(scrape.text);
	const find = (name: string, labels: Record<string, string>) => series.filter(each => each.name === name && Object.entries(labels).every(([key, value]) => each.labels[key] === value)).map(each => each.value);
	const [first, second] = cluster.replicas;
	for (const replica of [first, second]) {
		const server = {server_address: replica.host, server_port: String(replica.port)};
		// Each replica answered two of the four list pages.
		t.deepEqual(find('multidb_queries_total', {...server, multidb_reason: 'round-robin'}), [2]);
		t.deepEqual(find('multidb_server_state', {...server, multidb_server_state: 'healthy'}), [1]);
		const pool = {db_client_connection_pool_name: `sequelize-multidb:${replica.host}:${replica.port}:read`};
		t.deepEqual(find('db_client_connection_wait_time_count', pool), [2]);
		t.is(find('db_client_connection_count', {...pool, db_client_connection_state: 'idle'}).length, 1);
		t.is(find('multidb_replica_lag_time', server).length, 1);
		t.is(find('multidb_replica_lag_size', server).length, 1);
	}

	t.deepEqual(find('multidb_server_state', {server_port: String(cluster.primary.port), multidb_server_state: 'primary'}), [1]);
	t.regex(scrape.text, /^# UNIT multidb_replica_lag_time s$/m);

	const status = await agent.get('/status.json').expect(200);
	const body = status.body as {servers: Array<{name: string; state: string; role: string}>};
	t.deepEqual(body.servers.map(server => [server.name, server.role, server.state]).sort(), [['primary', 'primary', 'writes'], ['replica1', 'replica', 'healthy'], ['replica2', 'replica', 'healthy']]);
	const page = await agent.get('/status').expect(200);
	t.true(page.text.includes('<svg id="reads"'));
});

/** The samples of a Prometheus text exposition: name, labels, value. */
function parseExposition(text: string): Array<{name: string; labels: Record<string, string>; value: number}> {
	return text.split('\n').filter(line => line && !line.startsWith('#')).map(line => {
		const match = /^([\w:]+)(?:\{(.*)\})? (\S+)/.exec(line);
		if (!match) {
			throw new Error(`Not a sample line: ${line}`);
		}

		// `at`: an optional group that did not match is undefined.
		const labels = Object.fromEntries([...(match.at(2) ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, key, value]) => [key, value]));
		return {name: match[1], labels, value: Number(match[3])};
	});
}
