// The pinning semantics, one table of scenarios run against every framework adapter
// (test/helpers/framework-apps.ts: the same routes on Koa and Express), on the real cluster.
// Reads go to the lagging replica only (replica2 replays 1.5 s late) unless a scenario says
// otherwise, so a missing pin shows as a stale read.
import {setTimeout as delay} from 'node:timers/promises';
import test, {type ExecutionContext} from 'ava';
import cookieParser from 'cookie-parser';
import express from 'express';
import fastifyCookie from '@fastify/cookie';
import Fastify from 'fastify';
import request from 'supertest';
import {multidb} from '../source/index.js';
import {dbWrite as expressDbWrite, pinning as expressPinning} from '../source/express.js';
import {dbWrite as fastifyDbWrite, pinning as fastifyPinning} from '../source/fastify.js';
import {createNotesTable} from './helpers/app.js';
import {frameworks, type FrameworkApp, type FrameworkAppOptions} from './helpers/framework-apps.js';
import {newSequelize} from './helpers/sequelize.js';
import {sharedCluster} from './helpers/shared-cluster.js';

const cluster = await sharedCluster();
const table = await createNotesTable(cluster);
const lagging = cluster.replicas[1];
const cookieName = 'multidb_pin_writes';
const secret = 'a test secret';

interface Scenario {
	readonly title: string;
	readonly options?: FrameworkAppOptions;
	run(t: ExecutionContext, app: FrameworkApp): Promise<void>;
}

function pinCookie(response: request.Response): string | undefined {
	const header = response.headers['set-cookie'] as string[] | string | undefined;
	return (header === undefined ? [] : [header].flat()).find(cookie => cookie.startsWith(`${cookieName}=`));
}

/** The pin as a client sends it back: `name=value` (and its signature cookie, if any). */
function cookieHeader(response: request.Response): string {
	const header = response.headers['set-cookie'] as string[] | string | undefined;
	return (header === undefined ? [] : [header].flat()).map(cookie => cookie.split(';')[0]).join('; ');
}

const onLagging = {sequelize: {replicas: [lagging]}, secret};

const scenarios: Scenario[] = [
	{
		title: 'a read right after a POST goes to the primary and sees the new row; without the pin it is stale',
		options: onLagging,
		async run(t, {listener}) {
			const agent = request.agent(listener);
			const created = await agent.post('/notes').send({title: 'a body to parse'}).expect(200);
			t.is(created.body.server, 'primary');
			t.deepEqual((await agent.get(`/notes/${created.body.id as number}/check`).expect(200)).body, {found: true, server: 'primary'});
			// Another client, right after its own POST, without the pin: the lagging replica has not the row.
			const stranger = await request(listener).post('/notes').expect(200);
			const stale = await request(listener).get(`/notes/${stranger.body.id as number}/check`).expect(200);
			t.deepEqual(stale.body, {found: false, server: lagging.name});
		},
	},
	{
		title: 'read methods are not pinned; a POST that only reads still pins (pinWriteMethods), and not with it off',
		options: onLagging,
		async run(t, {listener}) {
			const read = await request(listener).get('/read').expect(200);
			t.is(read.body.server, lagging.name);
			t.is(pinCookie(read), undefined);
			t.truthy(pinCookie(await request(listener).post('/search').expect(200)));
		},
	},
	{
		title: 'with pinWriteMethods off, a POST that only reads is not pinned, and one that writes is',
		options: {...onLagging, pinning: {pinWriteMethods: false}},
		async run(t, {listener}) {
			const search = await request(listener).post('/search').expect(200);
			t.is(search.body.server, lagging.name);
			t.is(pinCookie(search), undefined);
			t.truthy(pinCookie(await request(listener).post('/notes').expect(200)));
		},
	},
	{
		title: 'a GET that writes without saying so is detected: its later reads and the next request use the primary',
		options: onLagging,
		async run(t, {listener}) {
			const agent = request.agent(listener);
			const response = await agent.get('/sneaky-write').expect(200);
			t.deepEqual(response.body, {before: lagging.name, after: 'primary'});
			t.truthy(pinCookie(response));
			t.is((await agent.get('/read').expect(200)).body.server, 'primary');
		},
	},
	{
		title: 'the write flag pins the next request, not the current one',
		options: onLagging,
		async run(t, {listener}) {
			const agent = request.agent(listener);
			const flagged = await agent.get('/flagged').expect(200);
			t.is(flagged.body.server, lagging.name);
			t.truthy(pinCookie(flagged));
			t.is((await agent.get('/read').expect(200)).body.server, 'primary');
		},
	},
	{
		title: 'a route wrapped in dbWrite pins the current request and the next',
		options: onLagging,
		async run(t, {listener}) {
			const agent = request.agent(listener);
			const liked = await agent.get('/notes/1/like').expect(200);
			t.is(liked.body.server, 'primary');
			t.truthy(pinCookie(liked));
			t.is((await agent.get('/read').expect(200)).body.server, 'primary');
		},
	},
	{
		title: 'a handler that fails after its write committed still pins the client',
		options: onLagging,
		async run(t, {listener}) {
			const agent = request.agent(listener);
			const failed = await agent.post('/fails-after-write').expect(500);
			t.truthy(pinCookie(failed));
			t.is((await agent.get('/read').expect(200)).body.server, 'primary');
		},
	},
	{
		title: 'the pin is signed: a forged, unsigned, garbage, oversized, far-future or expired pin is ignored',
		options: onLagging,
		async run(t, {listener}) {
			const set = pinCookie(await request(listener).post('/notes').expect(200)) ?? '';
			t.regex(set, new RegExp(`^${cookieName}=`));
			t.regex(set, /HttpOnly/i);
			t.regex(set, /SameSite=Lax/i);
			const now = Date.now();
			for (const value of [`1.${now + 5000}`, 'garbage', 'x'.repeat(5000), `1.${now + (365 * 24 * 3_600_000)}`, `1.${now - 1000}`]) {
				const response = await request(listener).get('/read').set('Cookie', `${cookieName}=${value}`).expect(200);
				t.is(response.body.server, lagging.name, value.slice(0, 40));
			}

			// The genuine one pins.
			const genuine = await request(listener).post('/notes').expect(200);
			t.is((await request(listener).get('/read').set('Cookie', cookieHeader(genuine)).expect(200)).body.server, 'primary');
		},
	},
	{
		title: 'after the pin expires, reads go back to the replicas',
		// Two seconds: a cookie's Expires has whole seconds, so one could lapse in the client at once.
		options: {...onLagging, pinning: {seconds: 2}},
		async run(t, {listener}) {
			const agent = request.agent(listener);
			await agent.post('/notes').expect(200);
			t.is((await agent.get('/read').expect(200)).body.server, 'primary');
			await delay(2300);
			t.is((await agent.get('/read').expect(200)).body.server, lagging.name);
		},
	},
	{
		title: 'consistency: \'lsn\' pins by WAL position: the next read waits for a replica that has the write, not the primary',
		// Both replicas: replica1 replays at once, so an LSN pin reads there, not on the primary.
		options: {sequelize: {replicas: cluster.replicas}, secret, pinning: {consistency: 'lsn'}},
		async run(t, {listener}) {
			const agent = request.agent(listener);
			const created = await agent.post('/notes').expect(200);
			const value = decodeURIComponent(/=([^;]+)/.exec(pinCookie(created) ?? '')?.[1] ?? '');
			t.notRegex(value, /^1\./, 'a WAL-position pin, not a time pin');
			const servers: string[] = [];
			for (let index = 0; index < 4; index++) {
				const check = await agent.get(`/notes/${created.body.id as number}/check`).expect(200);
				t.true(check.body.found, JSON.stringify(check.body));
				servers.push(check.body.server as string);
			}

			// Not pinned to the primary: replica1, which replays at once, serves the client's reads.
			t.true(servers.some(server => server !== 'primary'), servers.join());
		},
	},
	{
		title: 'the header carries the pin for API clients, signed, and a forged one is ignored',
		options: {...onLagging, pinning: {header: 'X-Pin'}},
		async run(t, {listener}) {
			const created = await request(listener).post('/notes').expect(200);
			const pin = created.headers['x-pin'] as string | undefined;
			// Signed by the framework's own machinery (`value~signature`, or @fastify/cookie's `value.signature`).
			t.regex(pin ?? '', /^1\.\d+[~.][\w+/=-]{10,}$/);
			t.is((await request(listener).get('/read').set('X-Pin', pin ?? '').expect(200)).body.server, 'primary');
			const forged = `${(pin ?? '').slice(0, -6)}AAAAAA`;
			// A forgery may cost primary reads, never older data: it pins too, but is not trusted to.
			const response = await request(listener).get('/read').set('X-Pin', forged).expect(200);
			t.true(['primary', lagging.name].includes(response.body.server as string));
			t.is((await request(listener).get('/read').set('X-Pin', 'garbage').expect(200)).body.server, lagging.name);
		},
	},
	{
		title: '200 interleaved concurrent requests, half pinned: no request shares another\'s pin',
		options: {sequelize: {replicas: [lagging], pool: {max: 20}}, secret},
		async run(t, {listener}) {
			const pin = cookieHeader(await request(listener).post('/notes').expect(200));
			const results = await Promise.all(Array.from({length: 200}, async (_, index) => {
				const pinned = index % 2 === 0;
				const call = request(listener).get('/read');
				const response = await (pinned ? call.set('Cookie', pin) : call).expect(200);
				return {pinned, server: response.body.server as string};
			}));
			t.deepEqual(results.filter(({pinned, server}) => pinned !== (server === 'primary')), []);
		},
	},
];

for (const framework of frameworks) {
	for (const scenario of scenarios) {
		test(`${framework.name}: ${scenario.title}`, async t => {
			const app = await framework.create(cluster, table, scenario.options);
			t.teardown(async () => app.close());
			await scenario.run(t, app);
		});
	}
}

test('fastify: a route marked as a write by its config pins the current request and the next', async t => {
	const fastify = frameworks.find(framework => framework.name === 'fastify');
	if (!fastify) {
		throw new Error('no fastify');
	}

	const app = await fastify.create(cluster, table, onLagging);
	t.teardown(async () => app.close());
	const agent = request.agent(app.listener);
	const liked = await agent.get('/notes/1/like-by-config').expect(200);
	t.is(liked.body.server, 'primary');
	t.truthy(pinCookie(liked));
	t.is((await agent.get('/read').expect(200)).body.server, 'primary');
});

test('each adapter says what is missing: Express without cookie-parser, Fastify without @fastify/cookie, signed: true without a secret', async t => {
	const sequelize = newSequelize(cluster);
	t.teardown(async () => sequelize.close());
	const db = multidb(sequelize, {monitorIntervalMs: 0});
	const bare = express();
	bare.set('env', 'test');
	bare.use(expressPinning({db}));
	bare.get('/', (_request, response) => response.send('ok'));
	const noParser = await request(bare).get('/').expect(500);
	t.regex(noParser.text, /mount cookie-parser/);
	const unsigned = express();
	unsigned.set('env', 'test');
	unsigned.use(cookieParser());
	unsigned.use(expressPinning({db, signed: true}));
	unsigned.get('/', (_request, response) => response.send('ok'));
	t.regex((await request(unsigned).get('/').expect(500)).text, /cookie-parser to have a secret/);

	const app = Fastify();
	t.teardown(async () => app.close());
	await t.throwsAsync(async () => app.register(fastifyPinning({db})), {message: /@fastify\/cookie to be registered before pinning\(\)/});
	const noSecret = Fastify();
	t.teardown(async () => noSecret.close());
	await noSecret.register(fastifyCookie);
	await noSecret.register(fastifyPinning({db, signed: true}));
	noSecret.get('/', () => 'ok');
	const response = await noSecret.inject({method: 'GET', url: '/'});
	t.is(response.statusCode, 500);
	t.regex(response.body, /@fastify\/cookie to have a secret/);
	t.throws(() => fastifyDbWrite(42 as never), {message: /Expected `handler` to be a function/});
	t.throws(() => expressDbWrite('x' as never), {message: /Expected `handler` to be a function/});
});

test('express: a handler that writes its head itself (res.writeHead) still gets the pin, by time and by WAL position', async t => {
	for (const consistency of ['time', 'lsn'] as const) {
		const sequelize = newSequelize(cluster, {replicas: [lagging]});
		t.teardown(async () => sequelize.close());
		const db = multidb(sequelize, {monitorIntervalMs: 0});
		const app = express();
		app.use(cookieParser(secret));
		app.use(expressPinning({db, consistency}));
		app.post('/raw', async (_request, response) => {
			await sequelize.query(`INSERT INTO ${table} (body) VALUES ('written, then a raw response')`);
			response.writeHead(201, {'Content-Type': 'text/plain'});
			response.write('created');
			response.end();
		});
		const created = await request(app).post('/raw').expect(201);
		t.is(created.text, 'created');
		const cookie = pinCookie(created) ?? '';
		t.regex(cookie, new RegExp(`^${cookieName}=`), consistency);
		t.is(/=s%3A1\./.test(cookie), consistency === 'time', cookie);
	}
});
