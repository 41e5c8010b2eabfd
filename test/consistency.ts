// Read-your-writes by WAL position, on real servers: replica1 replays at once, replica2
// 1.5 s late. A read that must see a write goes to a replica that has replayed it.
import {setTimeout as delay} from 'node:timers/promises';
import test from 'ava';
import {QueryTypes, type Sequelize} from 'sequelize';
import request from 'supertest';
import {MultiDbError, multidb, withConsistency, type MultiDb, type MultiDbOptions} from '../source/index.js';
import {parseLsn} from '../source/lsn.js';
import {sharedCluster, type ClusterEndpoints} from './helpers/shared-cluster.js';
import {createNotesTable, createTestApp} from './helpers/app.js';
import {eventually, ownCluster} from './helpers/faults.js';
import {newSequelize, serverNamer} from './helpers/sequelize.js';
import {runEverywhere} from './helpers/replay.js';

const cluster = await sharedCluster();
const table = await createNotesTable(cluster);

function setup(t: {teardown: (fn: () => Promise<void>) => void}, options: MultiDbOptions = {}, endpoints: ClusterEndpoints = cluster) {
	const sequelize = newSequelize(endpoints);
	t.teardown(async () => sequelize.close());
	return {sequelize, db: multidb(sequelize, options)};
}

/** Writes a note on the primary and returns its id. */
async function writeNote(sequelize: Sequelize, tableName = table): Promise<number> {
	const row = await sequelize.query<{id: number}>(`INSERT INTO ${tableName} (body) VALUES ('x') RETURNING id`, {type: QueryTypes.SELECT, plain: true, useMaster: true});
	return row?.id ?? 0;
}

/** Reads whether the note is visible, in one query that also says which server ran it. */
async function check(sequelize: Sequelize, endpoints: ClusterEndpoints, id: number, tableName = table): Promise<{found: boolean; server: string}> {
	const row = await sequelize.query<{port: number; found: boolean}>(`SELECT inet_server_port() AS port, EXISTS (SELECT 1 FROM ${tableName} WHERE id = :id) AS found`, {type: QueryTypes.SELECT, plain: true, replacements: {id}});
	return {found: row?.found === true, server: serverNamer(endpoints)(row?.port ?? 0)};
}

test('write then read at once, 100 times, honouring the token: 0 stale reads, served by the fast replica', async t => {
	const {sequelize, db} = setup(t);
	const servers: string[] = [];
	let stale = 0;
	for (let round = 0; round < 100; round++) {
		const id = await writeNote(sequelize);
		const token = await db.consistencyToken();
		const {found, server} = await withConsistency(token, async () => check(sequelize, cluster, id));
		servers.push(server);
		if (!found) {
			stale++;
		}
	}

	const counts = Object.fromEntries(['primary', 'replica1', 'replica2'].map(name => [name, servers.filter(server => server === name).length]));
	t.log(`100 reads right after their write: ${JSON.stringify(counts)}, stale ${stale}`);
	if (counts.primary > 0) {
		t.log(`replicas: ${JSON.stringify(db.replicas)}; stats: ${JSON.stringify(db.stats())}`);
	}
	t.is(stale, 0);
	t.is(counts.replica2, 0);
	// On a quiet machine all 100 go to replica1; under load (other test files start and crash
	// clusters meanwhile) replica1 may trail a write by more than the catch-up waits, and then
	// the primary serves (safely). The share is a performance figure, measured in
	// `npm run bench -- read-after-write`; here, only that the replica serves most of them.
	t.true(counts.replica1 >= 50, JSON.stringify(counts));
	t.is(db.stats().byReason['caught-up'], counts.replica1);
});

test('with both replicas lagging, reads go to the primary until one catches up, then back to the replicas', async t => {
	const faults = await ownCluster(t, {applyDelaysMs: [1500, 1500]});
	const notes = 'lagging_notes';
	await runEverywhere(faults.endpoints, `CREATE TABLE ${notes} (id serial PRIMARY KEY, body text)`);
	const {sequelize, db} = setup(t, {monitorIntervalMs: 100}, faults.endpoints);
	const id = await writeNote(sequelize, notes);
	const token = await db.consistencyToken();
	const first = await withConsistency(token, async () => check(sequelize, faults.endpoints, id, notes));
	t.deepEqual(first, {found: true, server: 'primary'});
	t.is(db.stats().byReason['not-caught-up'], 1);
	let later = first;
	t.true(await eventually(async () => {
		later = await withConsistency(token, async () => check(sequelize, faults.endpoints, id, notes));
		return later.server !== 'primary';
	}, 6000, 100));
	t.true(later.found);
	t.true(later.server.startsWith('replica'));
	t.true((db.stats().byReason['caught-up'] ?? 0) >= 1);
});

test('a token outside its cluster or past its expiry is ignored', async t => {
	const {sequelize, db} = setup(t, {shuffle: false});
	const token = await db.consistencyToken({ttlMs: 50});
	const [version, systemId, ...rest] = token.split('.');
	const foreign = [version, `${systemId}9`, ...rest].join('.');
	const servers = await withConsistency(foreign, async () => [await check(sequelize, cluster, 0), await check(sequelize, cluster, 0)]);
	t.deepEqual(servers.map(result => result.server), ['replica1', 'replica2']);
	await delay(100);
	const expired = await withConsistency(token, async () => [await check(sequelize, cluster, 0), await check(sequelize, cluster, 0)]);
	t.deepEqual(expired.map(result => result.server), ['replica1', 'replica2']);
});

test('malformed and oversized tokens are refused by withConsistency with a code', t => {
	const tokens: unknown[] = ['garbage', 'mdb1.x', '', `mdb1.1.0.${'9'.repeat(300)}`, 42];
	for (const token of tokens) {
		const error = t.throws(() => {
			withConsistency(token as string, () => undefined);
		});
		t.true(error instanceof MultiDbError && error.code === 'MULTIDB_BAD_TOKEN', typeof token === 'string' ? token.slice(0, 20) : typeof token);
	}
});

test('with keys, tokens are signed; an unsigned or forged one sends reads to the primary', async t => {
	const {sequelize, db} = setup(t, {keys: ['new key', 'old key']});
	// A fresh write, so the token names a position the lagging replica has not replayed.
	await writeNote(sequelize);
	const token = await db.consistencyToken();
	t.regex(token, /^mdb1\.\d+\.[\dA-F]+\.\d+\.[\w-]{27}$/);
	const unsigned = token.slice(0, token.lastIndexOf('.'));
	const forged = `${unsigned}.${'A'.repeat(27)}`;
	for (const bad of [unsigned, forged]) {
		const result = await withConsistency(bad, async () => check(sequelize, cluster, 0));
		t.is(result.server, 'primary');
	}

	t.is(db.stats().byReason.pinned, 2);
	const good = await withConsistency(token, async () => check(sequelize, cluster, 0));
	t.not(good.server, 'replica2');
	// A token signed with the old key still verifies: judged by position, not pinned.
	const {db: oldDb} = setup(t, {keys: ['old key']});
	const oldToken = await oldDb.consistencyToken();
	await withConsistency(oldToken, async () => check(sequelize, cluster, 0));
	const reasons = db.stats().byReason;
	t.is(reasons.pinned, 2);
	t.is((reasons['caught-up'] ?? 0) + (reasons['not-caught-up'] ?? 0), 2);
});

function lsnApp(t: {teardown: (fn: () => Promise<void>) => void}, pinning: Record<string, unknown> = {}, keys?: string[]) {
	const testApp = createTestApp(cluster, table, {pinning: {consistency: 'lsn', header: 'X-Consistency-Token', ...pinning}, keys});
	t.teardown(async () => testApp.sequelize.close());
	return {...testApp, callback: testApp.app.callback()};
}

test('LSN pinning: a read after a POST goes to a replica that has replayed the write, not to the primary', async t => {
	const {callback, db} = lsnApp(t);
	const agent = request.agent(callback);
	const fast = `${cluster.replicas[0].host}:${cluster.replicas[0].port}`;
	const servers: string[] = [];
	for (let round = 0; round < 10; round++) {
		const created = await agent.post('/notes').expect(200);
		// Once the fast replica has replayed past the write (asked of it now, not by timing:
		// how soon after a write a replica serves it is the read-after-write bench's figure),
		// the pinned read goes there; replica2, 1.5 s behind, has not.
		const {lsn} = await db.primaryPosition();
		t.true(await eventually(async () => {
			await db.refreshReplicas();
			const replayed = parseLsn(db.replicas.find(replica => replica.name === fast)?.replayLsn);
			return replayed !== undefined && replayed >= lsn;
		}, 10_000, 10));
		const page = await agent.get(`/notes/${created.body.id as number}/check`).expect(200);
		t.true(page.body.found);
		servers.push(page.body.server as string);
	}

	t.log(`reads after a write: ${servers.join(' ')}`);
	t.deepEqual(servers, Array.from({length: 10}, () => 'replica1'));
	t.is(db.stats().byReason['caught-up'], 10);
});

test('LSN pinning: the token round-trips through a header, for clients without cookies', async t => {
	const {callback} = lsnApp(t, {}, ['app secret']);
	const created = await request(callback).post('/notes').expect(200);
	const token = created.headers['x-consistency-token'];
	t.regex(token, /^mdb1\..+~[\w-]{27}$/);
	const page = await request(callback).get(`/notes/${created.body.id as number}/check`).set('X-Consistency-Token', token).expect(200);
	t.true(page.body.found);
	t.not(page.body.server, 'replica2');
	// A header whose signature does not match: the primary, never a replica that may be behind.
	const forged = `${token.slice(0, token.indexOf('~'))}~${'B'.repeat(27)}`;
	const forgedPage = await request(callback).get(`/notes/${created.body.id as number}/check`).set('X-Consistency-Token', forged).expect(200);
	t.is(forgedPage.body.server, 'primary');
	// Garbage is no pin at all.
	const garbage = await request(callback).get('/read').set('X-Consistency-Token', 'nonsense').expect(200);
	t.true((garbage.body.server as string).startsWith('replica'));
});

test('LSN pinning: once every replica has caught up, the pin cookie is dropped', async t => {
	const {callback, db} = lsnApp(t);
	const agent = request.agent(callback);
	await agent.post('/notes').expect(200);
	await delay(1700);
	await db.refreshReplicas();
	const response = await agent.get('/read').expect(200);
	const cookies = [response.headers['set-cookie'] as string[] | string | undefined ?? []].flat();
	t.true(cookies.some(cookie => cookie.startsWith('multidb_pin_writes=;') && cookie.includes('expires=Thu, 01 Jan 1970')), JSON.stringify(cookies));
});

test('consistencyToken validates its ttl and needs a reachable primary', async t => {
	const {db} = setup(t);
	await t.throwsAsync(db.consistencyToken({ttlMs: -1}), {instanceOf: TypeError, message: 'Expected `ttlMs` to be a finite number > 0, got -1 (number)'});
	t.regex(await db.systemIdentifier(), /^\d+$/);
});

test('stats tell reads on caught-up replicas from reads on the primary for want of one', async t => {
	const {sequelize, db}: {sequelize: Sequelize; db: MultiDb} = setup(t);
	const token = await db.consistencyToken();
	await withConsistency(token, async () => check(sequelize, cluster, 0));
	const reasons = db.stats().byReason;
	t.is((reasons['caught-up'] ?? 0) + (reasons['not-caught-up'] ?? 0), 1);
});

test('a router that has not learned the cluster\'s identity yet honours a token from another one (a job in another process)', async t => {
	t.timeout(20_000);
	const writer = setup(t);
	const id = await writeNote(writer.sequelize);
	const token = await writer.db.consistencyToken();
	// A fresh router, as in a job runner: its first query is a read under the token.
	const {sequelize: reader, db} = setup(t);
	const {found} = await withConsistency(token, async () => check(reader, cluster, id));
	t.true(found);
	// The token was judged (caught-up replica, or the primary while none had replayed it),
	// not given up on as unjudgeable ('pinned').
	const {byReason, queries} = db.stats();
	t.is((byReason['caught-up'] ?? 0) + (byReason['not-caught-up'] ?? 0), 1, JSON.stringify(byReason));
	// Two queries in all: the cluster's identity, asked once, and the read.
	t.is(queries, 2, JSON.stringify(byReason));
});
