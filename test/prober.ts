// Out of rotation by probe, not by clock (rule 10), on real servers: backends terminated,
// servers stopped, restarted and flapping, the primary down. Each test breaks a cluster of
// its own; they run one at a time to keep the machine calm.
import {setTimeout as delay} from 'node:timers/promises';
import test from 'ava';
import {QueryTypes} from 'sequelize';
import {multidb} from '../source/index.js';
import {withClient, type PostgresServer} from '../scripts/local-cluster/index.js';
import {eventually, ownCluster, reads, routerOn, steadyReads, type ReadLoad} from './helpers/faults.js';
import {answeringServer, countBy, newSequelize} from './helpers/sequelize.js';

function readsOn(load: ReadLoad, server: string): number {
	return Object.hasOwn(load.servers, server) ? load.servers[server] : 0;
}

/** Terminates every client backend of a server, as an operator or a pooler might. */
async function terminateBackends(server: PostgresServer): Promise<number> {
	const result = await withClient(server, async client => client.query('SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE backend_type = \'client backend\' AND pid <> pg_backend_pid()'));
	return Number(result.rows[0].n);
}

test.serial('backends of a replica terminated under steady reads: 0 failed reads, and the replica keeps serving', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db, events} = routerOn(t, faults, {cooldownMs: 30_000});
	const {load, stop} = steadyReads(sequelize, faults.endpoints, 4);
	await delay(500);
	let terminated = 0;
	for (let round = 0; round < 5; round++) {
		terminated += await terminateBackends(faults.cluster.replicas[0]);
		await delay(300);
	}

	const servedBefore = readsOn(load, 'replica1');
	// Back in rotation within one probe: it serves reads again right away.
	t.true(await eventually(() => readsOn(load, 'replica1') > servedBefore + 10, 2000), JSON.stringify(load.servers));
	const result = await stop();
	t.log(`terminated ${terminated} backends in 5 rounds; reads attempted ${result.attempted}, failed ${result.failed}, per server ${JSON.stringify(result.servers)}, failovers ${JSON.stringify(db.stats().failovers)}`);
	t.true(terminated >= 5);
	t.is(result.failed, 0, result.errors.join('\n'));
	t.is(db.replicas[0].state, 'healthy');
	// One connection's death is not the server's: it never left rotation.
	t.deepEqual(events, []);
});

test.serial('a replica whose backends were terminated serves every read once the primary is down', async t => {
	const faults = await ownCluster(t);
	// The reproduction: one replica, a long cooldown.
	const {sequelize, db} = routerOn(t, faults, {cooldownMs: 10_000}, {replicas: [faults.endpoints.replicas[0]]});
	const slow = sequelize.query<{port: number}>('SELECT inet_server_port() AS port, pg_sleep(0.5)', {type: QueryTypes.SELECT, plain: true});
	await delay(200);
	t.true(await terminateBackends(faults.cluster.replicas[0]) >= 1);
	// The read in flight is retried on the primary.
	t.is((await slow)?.port, faults.cluster.primary.port);
	t.true(await eventually(() => db.replicas[0].state === 'healthy', 2000), JSON.stringify(db.replicas[0]));
	await faults.cluster.primary.stop('immediate');
	const results = await Promise.allSettled(Array.from({length: 5}, async () => answeringServer(sequelize, faults.endpoints)));
	t.deepEqual(results.map(result => result.status === 'fulfilled' ? result.value : (result.reason as Error).message), ['replica1', 'replica1', 'replica1', 'replica1', 'replica1']);
});

test.serial('a replica stopped for 5 s under load is back in rotation within about a second of answering', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db, events} = routerOn(t, faults, {cooldownMs: 30_000});
	const {load, stop} = steadyReads(sequelize, faults.endpoints, 4);
	await delay(500);
	await faults.cluster.replicas[0].stop('immediate');
	await delay(5000);
	t.is(db.replicas[0].state, 'quarantined');
	const servedBefore = readsOn(load, 'replica1');
	await faults.cluster.replicas[0].start();
	const answering = performance.now();
	t.true(await eventually(() => readsOn(load, 'replica1') > servedBefore, 5000, 5));
	const rejoinMs = performance.now() - answering;
	const result = await stop();
	t.log(`rejoined ${Math.round(rejoinMs)} ms after the server answered; reads attempted ${result.attempted}, failed ${result.failed}, per server ${JSON.stringify(result.servers)}`);
	t.is(result.failed, 0, result.errors.join('\n'));
	// Probes back off to 1 s at most (±20 % jitter), whatever the outage's length.
	t.true(rejoinMs < 1500, `rejoined after ${Math.round(rejoinMs)} ms`);
	t.deepEqual(events, [`down ${db.replicas[0].name}`, `up ${db.replicas[0].name}`]);
});

test.serial('a replica that flaps (stopped and started every second) is held out instead of bouncing reads', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db, events} = routerOn(t, faults, {cooldownMs: 10_000, monitorIntervalMs: 0});
	const {load, stop} = steadyReads(sequelize, faults.endpoints, 4);
	await delay(300);
	const flapping = faults.cluster.replicas[0];
	const servedAt: number[] = [];
	const started = Date.now();
	for (let cycle = 0; cycle < 6; cycle++) {
		await flapping.stop('immediate');
		await delay(500);
		servedAt.push(readsOn(load, 'replica1'));
		await flapping.start();
		await delay(500);
	}

	const result = await stop();
	const downs = events.filter(event => event.startsWith('down')).length;
	t.log(`${Math.round((Date.now() - started) / 1000)} s of flapping: replicaDown ${downs}, replicaUp ${events.filter(event => event.startsWith('up')).length}, reads attempted ${result.attempted}, failed ${result.failed}, per server ${JSON.stringify(result.servers)}, failovers ${JSON.stringify(db.stats().failovers)}, replica1 reads at each stop ${JSON.stringify(servedAt)}`);
	t.is(result.failed, 0, result.errors.join('\n'));
	// Down, back once, down again: then flapping, it must answer every probe for 5 s in a
	// row, which a server up for half a second at a time never does.
	t.true(downs <= 2, events.join(', '));
	t.true(events.filter(event => event.startsWith('up')).length <= 1, events.join(', '));
	t.is(db.replicas[0].state, 'quarantined');
	t.true(db.replicas[0].flapping);
	// Reads hit the dying server only in the episodes it was in rotation, not on every cycle.
	t.true((db.stats().failovers.connection ?? 0) <= 4 * 2 * 2, JSON.stringify(db.stats().failovers));
});

test.serial('with the primary down and the only replica lagging past maxLag, reads are served by that replica as a last resort', async t => {
	const faults = await ownCluster(t);
	await withClient(faults.cluster.primary, async client => client.query('CREATE TABLE ticks (at timestamptz DEFAULT now())'));
	const {sequelize, db} = routerOn(t, faults, {maxLagMs: 300, maxLagBytes: 0, monitorIntervalMs: 100}, {replicas: [faults.endpoints.replicas[0]]});
	const strict = newSequelize(faults.endpoints, {replicas: [faults.endpoints.replicas[0]]});
	t.teardown(async () => strict.close());
	const strictDb = multidb(strict, {maxLagMs: 300, maxLagBytes: 0, monitorIntervalMs: 100, fallbackToPrimary: false});
	await withClient(faults.cluster.replicas[0], async client => client.query('SELECT pg_wal_replay_pause()'));
	const writer = new AbortController();
	const writing = (async () => {
		while (!writer.signal.aborted) {
			await withClient(faults.cluster.primary, async client => client.query('INSERT INTO ticks DEFAULT VALUES'));
			await delay(50);
		}
	})();
	t.true(await eventually(() => db.replicas[0].state === 'lagging' && strictDb.replicas[0].state === 'lagging', 10_000), JSON.stringify(db.replicas));
	writer.abort();
	await writing;
	// fallbackToPrimary off: the lagging replica answers instead of an error.
	t.deepEqual(await reads(strict, faults, 3), ['replica1', 'replica1', 'replica1']);
	t.is(strictDb.stats().byReason['last-resort'], 3);
	// The primary down: the lagging replica answers instead of an error.
	await faults.cluster.primary.stop('immediate');
	t.deepEqual(countBy(await reads(sequelize, faults, 5)), {replica1: 5});
	t.is(db.stats().byReason['last-resort'], 5);
});

test.serial('with the primary down, a read while the only replica is out of rotation tries it instead of failing', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs: 0}, {replicas: [faults.endpoints.replicas[0]]});
	await reads(sequelize, faults, 2);
	await faults.cluster.replicas[0].stop('immediate');
	t.true(await eventually(async () => {
		await answeringServer(sequelize, faults.endpoints);
		return db.replicas[0].state === 'quarantined';
	}, 5000));
	await faults.cluster.primary.stop('immediate');
	await faults.cluster.replicas[0].start();
	// Whether the next probe brought it back first or not, the read does not fail.
	t.is(await answeringServer(sequelize, faults.endpoints), 'replica1');
});
