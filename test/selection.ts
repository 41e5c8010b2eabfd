// Replica selection beyond round robin, on real servers: weights, least outstanding
// requests, replica groups and request affinity. The servers say who answered
// (`inet_server_port()`).
import {setTimeout as delay} from 'node:timers/promises';
import test from 'ava';
import Koa from 'koa';
import {QueryTypes, type Sequelize} from 'sequelize';
import request from 'supertest';
import {multidb, pinning, useReplicas, withAffinity, type MultiDbOptions} from '../source/index.js';
import {withClient} from '../scripts/local-cluster/index.js';
import {eventually, ownCluster, routerOn} from './helpers/faults.js';
import {sharedCluster} from './helpers/shared-cluster.js';
import {answeringServer, countBy, newSequelize, serverNamer} from './helpers/sequelize.js';

const cluster = await sharedCluster();
const nameOf = (index: number) => `${cluster.replicas[index].host}:${cluster.replicas[index].port}`;

function routed(t: {teardown: (fn: () => Promise<void>) => void}, options: MultiDbOptions): Sequelize {
	const sequelize = newSequelize(cluster);
	t.teardown(async () => sequelize.close());
	multidb(sequelize, {shuffle: false, monitorIntervalMs: 0, ...options});
	return sequelize;
}

async function reads(sequelize: Sequelize, count: number): Promise<Record<string, number>> {
	const servers: string[] = [];
	for (let index = 0; index < count; index++) {
		servers.push(await answeringServer(sequelize, cluster));
	}

	return countBy(servers);
}

test('weights 2:1 split 3,000 reads 2:1 within 1 %', async t => {
	const sequelize = routed(t, {weights: {[nameOf(0)]: 2}});
	const counts = await reads(sequelize, 3000);
	t.log(`3,000 reads, replica1 weight 2, replica2 weight 1: ${JSON.stringify(counts)}`);
	t.true(Math.abs((counts.replica1 / 3000) - (2 / 3)) <= 0.01, JSON.stringify(counts));
	t.is(counts.replica1 + counts.replica2, 3000);
	t.is(multidb.of(sequelize).stats().byReason.weighted, 3000);
});

test('weights and groups must name configured replicas', t => {
	const sequelize = newSequelize(cluster);
	t.teardown(async () => sequelize.close());
	t.throws(() => multidb(sequelize, {weights: {'db.example:5432': 2}}), {instanceOf: TypeError, message: /^Unknown replica `db\.example:5432` in `weights`; the replicas are `127\.0\.0\.1:\d+`, `127\.0\.0\.1:\d+`$/});
	t.throws(() => multidb(sequelize, {groups: {api: ['nope:1']}}), {instanceOf: TypeError, message: /^Unknown replica `nope:1` in `groups\.api`/});
});

test('a replica group keeps its reads on its replicas; an unknown group is refused by name', async t => {
	const sequelize = routed(t, {groups: {api: [nameOf(0)], web: [nameOf(1)]}});
	t.deepEqual(await useReplicas('api', async () => reads(sequelize, 20)), {replica1: 20});
	t.deepEqual(await useReplicas('web', async () => reads(sequelize, 20)), {replica2: 20});
	t.deepEqual(await reads(sequelize, 4), {replica1: 2, replica2: 2});
	t.deepEqual(multidb.of(sequelize).stats().byGroup, {api: 20, web: 20});
	await t.throwsAsync(useReplicas('reports', async () => reads(sequelize, 1)), {instanceOf: TypeError, message: 'Unknown replica group `reports` in useReplicas(); this router\'s groups: `api`, `web`'});
	t.throws(() => useReplicas('', () => 1), {instanceOf: TypeError, message: 'Expected `group` to be a non-empty string naming a replica group, got "" (string)'});
});

test.serial('with its only replica stopped, a group\'s reads go to the primary, never to another group\'s replica', async t => {
	const faults = await ownCluster(t);
	const names = faults.endpoints.replicas.map(replica => `${replica.host}:${replica.port}`);
	const {sequelize} = routerOn(t, faults, {groups: {api: [names[0]], web: [names[1]]}, monitorIntervalMs: 100});
	await faults.cluster.replicas[0].stop('immediate');
	const servers = await useReplicas('api', async () => {
		const answered: string[] = [];
		for (let index = 0; index < 30; index++) {
			answered.push(await answeringServer(sequelize, faults.endpoints));
		}

		return answered;
	});
	t.deepEqual(countBy(servers), {primary: 30});
});

test.serial('least outstanding: reads shift away from a replica whose reads are slow, where round robin splits them evenly', async t => {
	const faults = await ownCluster(t);
	const slowPort = faults.endpoints.replicas[0].port;
	const name = serverNamer(faults.endpoints);
	// Every read sleeps 20 ms on replica1 and not at all on replica2: a slow server, for real.
	const slowOnReplica1 = `SELECT inet_server_port() AS port, CASE WHEN inet_server_port() = ${slowPort} THEN pg_sleep(0.02) END AS slept`;
	const shares: Record<string, Record<string, number>> = {};
	for (const balance of ['round-robin', 'least-outstanding'] as const) {
		const {sequelize} = routerOn(t, faults, {balance, monitorIntervalMs: 0});
		const servers: string[] = [];
		await Promise.all(Array.from({length: 8}, async () => {
			for (let index = 0; index < 40; index++) {
				const row = await sequelize.query<{port: number}>(slowOnReplica1, {type: QueryTypes.SELECT, plain: true});
				servers.push(name(row?.port ?? 0));
			}
		}));
		shares[balance] = countBy(servers);
	}

	t.log(`320 reads from 8 loops, replica1 20 ms per read: ${JSON.stringify(shares)}`);
	t.deepEqual(shares['round-robin'], {replica1: 160, replica2: 160});
	t.true(shares['least-outstanding'].replica2 >= 240, JSON.stringify(shares));
});

test.serial('affinity: a flow whose replica stops mid-flow reads from the primary, never from a replica behind what it saw', async t => {
	// replica2 replays 3 s late: long enough for the whole flow to run inside its lag.
	const faults = await ownCluster(t, {applyDelaysMs: [0, 3000]});
	await withClient(faults.cluster.primary, async client => client.query('CREATE TABLE notes (id serial PRIMARY KEY, body text)'));
	await faults.cluster.waitForReplay();
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs: 100});
	const name = serverNamer(faults.endpoints);
	const latest = async () => {
		const row = await sequelize.query<{port: number; count: string}>('SELECT inet_server_port() AS port, count(*) AS count FROM notes', {type: QueryTypes.SELECT, plain: true});
		return {server: name(row?.port ?? 0), notes: Number(row?.count)};
	};

	const seen = await withAffinity(async () => {
		const first = await latest();
		// A write the fast replica1 has within milliseconds and replica2 only after 3 s.
		await withClient(faults.cluster.primary, async client => client.query('INSERT INTO notes (body) VALUES (\'new\')'));
		let second = await latest();
		for (let tries = 0; second.notes === 0 && tries < 50; tries++) {
			await delay(20);
			second = await latest();
		}

		await faults.cluster.replicas[0].stop('immediate');
		const afterStop = [await latest(), await latest(), await latest()];
		return {first, second, afterStop};
	});
	t.log(JSON.stringify(seen));
	t.deepEqual(seen.first, {server: 'replica1', notes: 0});
	t.deepEqual(seen.second, {server: 'replica1', notes: 1});
	// replica2 is 3 s behind: reading it would lose the note the flow already saw.
	t.deepEqual(seen.afterStop, [{server: 'primary', notes: 1}, {server: 'primary', notes: 1}, {server: 'primary', notes: 1}]);
	// The first read after the loss says why; the flow is then pinned to the primary.
	t.like(db.stats().byReason, {'affinity-lost': 1, pinned: 2});
	// The same moment without affinity: round robin reads the lagging replica, and the note is gone.
	t.deepEqual(await latest(), {server: 'replica2', notes: 0});
});

test('affinity: each request under pinning() reads from one replica, and requests take turns', async t => {
	const sequelize = routed(t, {affinity: true});
	const app = new Koa();
	app.use(pinning());
	app.use(async context => {
		const servers: string[] = [];
		for (let index = 0; index < 6; index++) {
			servers.push(await answeringServer(sequelize, cluster));
		}

		context.body = servers;
	});
	const server = app.callback();
	const perRequest: string[][] = [];
	for (let index = 0; index < 4; index++) {
		perRequest.push((await request(server).get('/')).body as string[]);
	}

	t.deepEqual(perRequest.map(servers => countBy(servers)), [{replica1: 6}, {replica2: 6}, {replica1: 6}, {replica2: 6}]);
	t.is(multidb.of(sequelize).stats().byReason.affinity, 24);
	t.deepEqual(await reads(sequelize, 4), {replica1: 2, replica2: 2});
});

test.serial('affinity: a replica known to have replayed everything the flow saw takes over from one that stopped', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs: 100});
	const servers = await withAffinity(async () => {
		const answered = [await answeringServer(sequelize, faults.endpoints)];
		// Monitor rounds after that read: the primary's position and the replicas' replay
		// positions, read now, bound what the flow saw. Until replica2 is seen as far as
		// replica1 (a background WAL record can put it a few bytes behind for a moment), it is
		// not known to have everything, and the primary would rightly take over.
		t.true(await eventually(async () => {
			await db.refreshReplicas();
			const [first, second] = faults.endpoints.replicas.map(endpoint => db.replicas.find(replica => replica.port === endpoint.port)?.replayLsn);
			return first !== undefined && first === second;
		}, 5000, 50));
		await faults.cluster.replicas[0].stop('immediate');
		for (let index = 0; index < 3; index++) {
			answered.push(await answeringServer(sequelize, faults.endpoints));
		}

		return answered;
	});
	t.deepEqual(servers, ['replica1', 'replica2', 'replica2', 'replica2']);
	// Four reads answered with affinity, plus any attempt that met replica1's dead pooled
	// connection before failing over (a failed query is counted where it ran); a connect that
	// failed is a failover but no query.
	const stats = db.stats();
	const affinityReads = stats.byReason.affinity ?? 0;
	t.true(affinityReads >= 4 && affinityReads <= 4 + (stats.failovers.connection ?? 0), JSON.stringify(stats));
	t.is(db.stats().byReason['affinity-lost'], undefined);
});
