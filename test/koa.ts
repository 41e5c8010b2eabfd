import {setTimeout as delay} from 'node:timers/promises';
import test from 'ava';
import Koa from 'koa';
import KoaRouterLegacy from 'koa-router';
import KoaRouter from '@koa/router';
import request from 'supertest';
import {dbWrite, isPinned, multidb, pinning, unpin} from '../source/index.js';
import {sharedCluster} from './helpers/shared-cluster.js';
import {createNotesTable, createTestApp, type TestAppOptions} from './helpers/app.js';
import {answeringServer, newSequelize} from './helpers/sequelize.js';

const cluster = await sharedCluster();
const table = await createNotesTable(cluster);
const lagging = cluster.replicas[1];
const cookieName = 'multidb_pin_writes';

function setup(t: {teardown: (fn: () => Promise<void>) => void}, options: TestAppOptions = {}) {
	const testApp = createTestApp(cluster, table, options);
	t.teardown(async () => testApp.sequelize.close());
	return {...testApp, callback: testApp.app.callback()};
}

function setCookies(response: request.Response): string[] {
	const header = response.headers['set-cookie'] as string[] | string | undefined;
	return header === undefined ? [] : [header].flat();
}

function pinCookie(response: request.Response): string | undefined {
	return setCookies(response).find(cookie => cookie.startsWith(`${cookieName}=`));
}

function isReplica(server: unknown): boolean {
	return typeof server === 'string' && server.startsWith('replica');
}

test('a read after a POST goes to the primary and sees the new row, even with a lagging replica', async t => {
	// Only the lagging replica serves reads, so an unpinned read would surely be stale.
	const {callback} = setup(t, {sequelize: {replicas: [lagging]}});
	const agent = request.agent(callback);
	const created = await agent.post('/notes').expect(200);
	t.is(created.body.server, 'primary');
	await delay(500); // The redirect to the new post's page.
	const page = await agent.get(`/notes/${created.body.id as number}`).expect(200);
	t.deepEqual(page.body, {found: true, server: 'primary'});
});

test('without the pin cookie the same read is stale on the lagging replica (what pinning prevents)', async t => {
	const {callback} = setup(t, {sequelize: {replicas: [lagging]}});
	const created = await request(callback).post('/notes').expect(200);
	const page = await request(callback).get(`/notes/${created.body.id as number}`).expect(200);
	t.deepEqual(page.body, {found: false, server: 'replica2'});
});

test('read methods are unpinned and write methods pinned, in the request itself', async t => {
	const {callback} = setup(t);
	for (const method of ['get', 'options'] as const) {
		const response = await request(callback)[method]('/any').expect(200);
		t.true(isReplica(response.headers['x-server']), method);
		t.is(pinCookie(response), undefined, method);
	}

	const head = await request(callback).head('/any').expect(200);
	t.true(isReplica(head.headers['x-server']));
	for (const method of ['post', 'put', 'patch', 'delete'] as const) {
		const response = await request(callback)[method]('/any').expect(200);
		t.is(response.headers['x-server'], 'primary', method);
		t.truthy(pinCookie(response), method);
	}
});

test('the pin cookie has the documented defaults', async t => {
	const {callback} = setup(t);
	const cookie = pinCookie(await request(callback).post('/notes').expect(200)) ?? '';
	t.regex(cookie, /^multidb_pin_writes=1\.\d+; path=\/; expires=[^;]+; samesite=lax; httponly$/);
	const expires = Date.parse(/expires=([^;]+)/.exec(cookie)?.[1] ?? '');
	t.true(Math.abs(expires - (Date.now() + 15_000)) < 2000);
});

test('the pin cookie is Secure on HTTPS requests', async t => {
	const {app, callback} = setup(t);
	app.proxy = true;
	const response = await request(callback).post('/notes').set('X-Forwarded-Proto', 'https').expect(200);
	t.regex(pinCookie(response) ?? '', /; secure; /);
});

test('cookie name, path, lifetime and attributes are configurable', async t => {
	const {callback} = setup(t, {pinning: {cookie: 'stick', path: '/app', seconds: 60, sameSite: 'strict', httpOnly: false, secure: false}});
	const response = await request(callback).post('/notes').expect(200);
	const cookie = setCookies(response).find(value => value.startsWith('stick=')) ?? '';
	t.regex(cookie, /^stick=1\.\d+; path=\/app; expires=[^;]+; samesite=strict$/);
});

test('with app.keys the pin cookie is signed, and an unsigned or badly signed one is ignored', async t => {
	const {callback} = setup(t, {keys: ['a secret']});
	const response = await request(callback).post('/notes').expect(200);
	const cookies = setCookies(response);
	t.truthy(cookies.find(cookie => cookie.startsWith(`${cookieName}=`)));
	t.truthy(cookies.find(cookie => cookie.startsWith(`${cookieName}.sig=`)));
	const pair = (name: string) => cookies.find(cookie => cookie.startsWith(`${name}=`))?.split(';')[0] ?? '';
	const signed = await request(callback).get('/read').set('Cookie', `${pair(cookieName)}; ${pair(`${cookieName}.sig`)}`).expect(200);
	t.is(signed.body.server, 'primary');
	const unsigned = await request(callback).get('/read').set('Cookie', pair(cookieName)).expect(200);
	t.true(isReplica(unsigned.body.server));
	const forged = await request(callback).get('/read').set('Cookie', `${cookieName}=1.${Date.now() + 5000}; ${cookieName}.sig=AAAAAAAAAAAAAAAAAAAAAAAAAAA`).expect(200);
	t.true(isReplica(forged.body.server));
});

test('a garbage, oversized or far-future cookie is ignored, never an error', async t => {
	const {callback} = setup(t);
	const values = [
		'y',
		'1.',
		'1.abc',
		'%%%',
		`1.${Date.now() + 5000}${'0'.repeat(5000)}`,
		`1.${Date.now() + (365 * 24 * 3600 * 1000)}`,
		`1.${Date.now() - 1000}`,
		`2.${Date.now() + 5000}`,
	];
	for (const value of values) {
		const response = await request(callback).get('/read').set('Cookie', `${cookieName}=${value}`).expect(200);
		t.true(isReplica(response.body.server), value.slice(0, 40));
		t.is(pinCookie(response), undefined);
	}
});

test('a valid cookie pins a read-only request without extending the pin', async t => {
	const {callback} = setup(t);
	const response = await request(callback).get('/read').set('Cookie', `${cookieName}=1.${Date.now() + 5000}`).expect(200);
	t.is(response.body.server, 'primary');
	t.is(pinCookie(response), undefined);
});

test('after the pin expires, reads go back to the replicas', async t => {
	// 1 s: long enough for the first GET to come well inside it on a loaded machine (0.3 s
	// was not), short enough to wait out.
	const {callback} = setup(t, {pinning: {seconds: 1}});
	// Sent by hand: the cookie's `expires` has whole-second resolution, so a client might
	// drop a short-lived cookie at once. The server-side expiry inside the value is what is tested.
	const cookie = pinCookie(await request(callback).post('/notes').expect(200))?.split(';')[0] ?? '';
	t.is((await request(callback).get('/read').set('Cookie', cookie).expect(200)).body.server, 'primary');
	await delay(1100);
	t.true(isReplica((await request(callback).get('/read').set('Cookie', cookie).expect(200)).body.server));
});

test('ctx.state.dbWrite pins the next request, not the current one', async t => {
	const {callback} = setup(t);
	const agent = request.agent(callback);
	const flagged = await agent.get('/flagged').expect(200);
	t.true(isReplica(flagged.body.server));
	t.truthy(pinCookie(flagged));
	t.is((await agent.get('/read').expect(200)).body.server, 'primary');
});

test('a route wrapped in dbWrite pins the current request and the next', async t => {
	const {callback} = setup(t);
	const agent = request.agent(callback);
	const liked = await agent.get('/notes/1/like').expect(200);
	t.is(liked.body.server, 'primary');
	t.truthy(pinCookie(liked));
	t.is((await agent.get('/read').expect(200)).body.server, 'primary');
});

test('a GET that writes without saying so is detected: its later reads and the next request use the primary', async t => {
	const {callback} = setup(t);
	const agent = request.agent(callback);
	const response = await agent.get('/sneaky-write').expect(200);
	t.true(isReplica(response.body.before));
	t.is(response.body.after, 'primary');
	t.truthy(pinCookie(response));
	t.is((await agent.get('/read').expect(200)).body.server, 'primary');
});

test('with pinWriteMethods off, a POST that only reads is not pinned, and one that writes still is', async t => {
	const {callback} = setup(t, {pinning: {pinWriteMethods: false}});
	const search = await request(callback).post('/search').expect(200);
	t.true(isReplica(search.body.server));
	t.is(pinCookie(search), undefined);
	const created = await request(callback).post('/notes').expect(200);
	t.truthy(pinCookie(created));
});

test('a handler that throws after its write committed still sets the cookie', async t => {
	const {callback} = setup(t);
	const failed = await request(callback).post('/fails-after-write').expect(500);
	t.truthy(pinCookie(failed));
	const conflict = await request(callback).get('/fails-after-flag').expect(409);
	t.truthy(pinCookie(conflict));
});

test('200 interleaved concurrent requests, half pinned: each read lands where its own request says', async t => {
	const {callback} = setup(t, {sequelize: {pool: {max: 20}}});
	const valid = `${cookieName}=1.${Date.now() + 10_000}`;
	const results = await Promise.all(Array.from({length: 200}, async (_, index) => {
		const pinned = index % 2 === 0;
		const call = request(callback).get('/read');
		const response = await (pinned ? call.set('Cookie', valid) : call).expect(200);
		return {pinned, server: response.body.server as string};
	}));
	const leaks = results.filter(({pinned, server}) => pinned !== (server === 'primary'));
	t.is(leaks.length, 0);
});

test('works with koa-router, the legacy name of @koa/router', async t => {
	const sequelize = newSequelize(cluster);
	t.teardown(async () => sequelize.close());
	const db = multidb(sequelize);
	const app = new Koa();
	const router = new KoaRouterLegacy();
	router.get('/read', async ctx => {
		ctx.body = {server: await answeringServer(sequelize, cluster)};
	});
	router.get('/like', dbWrite(async ctx => {
		ctx.body = {server: await answeringServer(sequelize, cluster)};
	}));
	app.use(pinning({db}));
	app.use(router.routes());
	const agent = request.agent(app.callback());
	t.true(isReplica((await agent.get('/read').expect(200)).body.server));
	t.is((await agent.get('/like').expect(200)).body.server, 'primary');
	t.is((await agent.get('/read').expect(200)).body.server, 'primary');
});

test('works with several routers, and with two databases pinned by their own cookies', async t => {
	const first = newSequelize(cluster);
	const second = newSequelize(cluster);
	t.teardown(async () => first.close());
	t.teardown(async () => second.close());
	const firstDb = multidb(first);
	const secondDb = multidb(second);
	const app = new Koa();
	app.use(pinning({db: firstDb, cookie: 'pin_first'}));
	app.use(pinning({db: secondDb, cookie: 'pin_second'}));
	const reads = new KoaRouter({prefix: '/reads'});
	reads.get('/', async ctx => {
		ctx.body = {first: await answeringServer(first, cluster), second: await answeringServer(second, cluster)};
	});
	const writes = new KoaRouter({prefix: '/writes'});
	writes.get('/second', async ctx => {
		await second.query('CREATE TEMPORARY TABLE scratch (x int)');
		ctx.body = {};
	});
	app.use(reads.routes());
	app.use(writes.routes());
	const agent = request.agent(app.callback());
	const unpinned = await agent.get('/reads').expect(200);
	t.true(isReplica(unpinned.body.first) && isReplica(unpinned.body.second));
	const wrote = await agent.get('/writes/second').expect(200);
	t.deepEqual(setCookies(wrote).map(cookie => cookie.split('=')[0]), ['pin_second']);
	const after = await agent.get('/reads').expect(200);
	t.true(isReplica(after.body.first));
	t.is(after.body.second, 'primary');
});

test('signed: true without app.keys is a clear error', async t => {
	const {app, callback} = setup(t, {pinning: {signed: true}});
	const errors: Error[] = [];
	app.on('error', (error: Error) => errors.push(error));
	await request(callback).get('/read').expect(500);
	t.is(errors[0]?.message, 'Expected `app.keys` to be set, as pinning() was given `signed: true`');
});

for (const withDb of [true, false]) {
	const form = withDb ? 'pinning({db})' : 'pinning()';
	test(`under ${form}, isPinned() says where reads go, and unpin() sends the rest of the request to the replicas until it writes`, async t => {
		const sequelize = newSequelize(cluster);
		t.teardown(async () => sequelize.close());
		const db = multidb(sequelize);
		const app = new Koa();
		app.use(pinning(withDb ? {db} : {}));
		const router = new KoaRouter();
		router.all('/probe', async ctx => {
			const before = {any: isPinned(), db: isPinned(db), server: await answeringServer(sequelize, cluster)};
			unpin(ctx.query.db === '1' ? db : undefined);
			const unpinned = {any: isPinned(), db: isPinned(db), server: await answeringServer(sequelize, cluster)};
			await sequelize.query('CREATE TEMPORARY TABLE IF NOT EXISTS scratch (x int)');
			const afterWrite = {any: isPinned(), db: isPinned(db), server: await answeringServer(sequelize, cluster)};
			ctx.body = {before, unpinned, afterWrite};
		});
		app.use(router.routes());
		const callback = app.callback();
		const pinnedRead = {any: true, db: true, server: 'primary'};
		for (const [label, call] of [
			['a POST', () => request(callback).post('/probe')],
			['a POST, unpin(db)', () => request(callback).post('/probe?db=1')],
			['a pin cookie', () => request(callback).get('/probe').set('Cookie', `${cookieName}=1.${Date.now() + 10_000}`)],
		] as const) {
			const {body} = await call().expect(200);
			t.deepEqual(body.before, pinnedRead, `${label}: before unpin`);
			if (!label.includes('unpin(db)')) {
				// After unpin(db), isPinned() without db still answers for every other router
				// of this process (other tests' routers, under a flow-wide pin).
				t.false(body.unpinned.any, `${label}: after unpin`);
			}

			t.false(body.unpinned.db, `${label}: after unpin`);
			t.true(isReplica(body.unpinned.server), `${label}: after unpin`);
			t.deepEqual(body.afterWrite, pinnedRead, `${label}: after a write`);
		}

		const {body} = await request(callback).get('/probe').expect(200);
		t.false(body.before.any);
		t.false(body.before.db);
		t.true(isReplica(body.before.server));
	});
}

test('isPinned(db) and unpin(db) reject what is not a router handle', t => {
	t.throws(() => isPinned({}), {instanceOf: TypeError, message: 'Expected `db` to be the handle returned by multidb(), got an object'});
	t.throws(() => {
		unpin('db' as never);
	}, {instanceOf: TypeError, message: 'Expected `db` to be the handle returned by multidb(), got "db" (string)'});
});

test('dbWrite without pinning() still sends the handler\'s reads to the primary, and warns once that the next request cannot be pinned', async t => {
	const sequelize = newSequelize(cluster);
	t.teardown(async () => sequelize.close());
	multidb(sequelize);
	const warnings: Array<{code?: string}> = [];
	const onWarning = (warning: Error & {code?: string}) => {
		if (warning.code === 'MULTIDB_DBWRITE_WITHOUT_PINNING') {
			warnings.push(warning);
		}
	};

	process.on('warning', onWarning);
	t.teardown(() => process.off('warning', onWarning));
	const app = new Koa();
	const router = new KoaRouter();
	router.get('/like', dbWrite(async ctx => {
		ctx.body = {first: await answeringServer(sequelize, cluster), second: await answeringServer(sequelize, cluster)};
	}));
	router.get('/read', async ctx => {
		ctx.body = {server: await answeringServer(sequelize, cluster)};
	});
	app.use(router.routes());
	const agent = request.agent(app.callback());
	for (let round = 0; round < 2; round++) {
		const liked = await agent.get('/like').expect(200);
		t.deepEqual(liked.body, {first: 'primary', second: 'primary'});
		t.is(pinCookie(liked), undefined);
		t.true(isReplica((await agent.get('/read').expect(200)).body.server));
	}

	await delay(10); // Warnings are emitted on the next tick.
	t.is(warnings.length, 1);
});
