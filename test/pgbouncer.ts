// The router behind a real PgBouncer in transaction-pooling mode, one in front of each
// server. PgBouncer keeps accepting client connections while the server behind it is dead or
// frozen: the router learns of it from PgBouncer's own errors (SQLSTATE 08P01, "server login
// has been failing", "server conn crashed?", "query_wait_timeout") or from its read timeout,
// and must treat each as the replica's failure: quarantine it, retry the read elsewhere.
import {setTimeout as delay} from 'node:timers/promises';
import test from 'ava';
import {QueryTypes} from 'sequelize';
import {withConsistency} from '../source/index.js';
import {classifyFailure} from '../source/failure.js';
import {findPgBouncer, withClient} from '../scripts/local-cluster/index.js';
import {eventually, ownCluster, routerOn, steadyReads, type FaultCluster} from './helpers/faults.js';
import {answeringServer, countBy} from './helpers/sequelize.js';
import type {ClusterEndpoints} from './helpers/shared-cluster.js';

const available = findPgBouncer() !== undefined;
const pgbouncerTest = available ? test.serial : test.serial.skip;
if (!available) {
	console.log('# PgBouncer tests skipped: no pgbouncer binary (`apt-get install pgbouncer`, or set PGBOUNCER)');
}

async function bouncedCluster(t: Parameters<typeof ownCluster>[0]): Promise<FaultCluster & {named: ClusterEndpoints}> {
	const faults = await ownCluster(t, {applyDelaysMs: [0, 0], pgbouncer: true});
	// The servers' own ports, to name the server a read reached (inet_server_port()).
	const {cluster, endpoints} = faults;
	const named = {
		primary: {...endpoints.primary, port: cluster.primary.port},
		replicas: endpoints.replicas.map((replica, index) => ({...replica, port: cluster.replicas[index].port})),
	};
	return {...faults, named};
}

pgbouncerTest('routing, the lag monitor and LSN reads work through PgBouncer', async t => {
	const faults = await bouncedCluster(t);
	const {cluster, endpoints, named} = faults;
	t.not(endpoints.replicas[0].port, cluster.replicas[0].port, 'the router talks to PgBouncer, not to the server');
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs: 200, maxLagMs: 1000, maxLagBytes: 0});
	const servers = [];
	for (let index = 0; index < 6; index++) {
		servers.push(await answeringServer(sequelize, named));
	}

	t.deepEqual(countBy(servers), {replica1: 3, replica2: 3});

	// Replay paused on replica1 while the primary writes: the monitor sees its lag through
	// PgBouncer and takes it out of rotation.
	await withClient(cluster.replicas[0], async client => client.query('SELECT pg_wal_replay_pause()'));
	t.teardown(async () => withClient(cluster.replicas[0], async client => client.query('SELECT pg_wal_replay_resume()')).catch(() => undefined));
	await sequelize.query('CREATE TABLE bounced (id int)');
	const writer = setInterval(() => {
		void sequelize.query('INSERT INTO bounced VALUES (1)').catch(() => undefined);
	}, 50);
	t.teardown(() => { clearInterval(writer); });
	t.true(await eventually(() => db.replicas[0].state === 'lagging', 5000), JSON.stringify(db.replicas[0]));
	t.true((db.replicas[0].lagMs ?? 0) >= 1000);

	// A token's read goes where the write is visible: replica2 (caught up), never replica1.
	await sequelize.query('INSERT INTO bounced VALUES (2)');
	const token = await db.consistencyToken();
	const seen = await withConsistency(token, async () => sequelize.query<{port: number; twos: number}>('SELECT inet_server_port() AS port, count(*) FILTER (WHERE id = 2)::int AS twos FROM bounced', {type: QueryTypes.SELECT, plain: true}));
	t.is(seen?.twos, 1);
	t.not(seen?.port, cluster.replicas[0].port);
});

pgbouncerTest('a server stopped behind its PgBouncer: "server login has been failing" quarantines it, 0 failed reads', async t => {
	const faults = await bouncedCluster(t);
	// A probe's question waits in PgBouncer's queue until a server login fails: the probe's
	// limit (connectTimeoutMs) decides how soon the replica is quarantined rather than suspect.
	const {sequelize, db, events} = routerOn(t, faults, {cooldownMs: 60_000, connectTimeoutMs: 1000});
	const {load, stop} = steadyReads(sequelize, faults.named, 4);
	await delay(500);
	await faults.cluster.replicas[0].stop('immediate');
	const before = load.attempted;
	await delay(2000);
	t.true(await eventually(() => db.replicas[0].state === 'quarantined', 3000), JSON.stringify(db.replicas[0]));
	const result = await stop();
	t.log(`reads ${result.attempted} (${result.attempted - before} after the stop), failed ${result.failed}, per server ${JSON.stringify(result.servers)}; replica1's last error: ${db.replicas[0].lastError}`);
	t.is(result.failed, 0, result.errors.join('\n'));
	t.true(result.attempted - before > 20);
	t.true(events.includes(`down ${db.replicas[0].name}`));
	// PgBouncer's words for a dead server, each a connection failure of the replica.
	t.regex(db.replicas[0].lastError ?? '', /server login has been failing|server conn crashed|pgbouncer cannot connect to server|query_wait_timeout/);
	t.true((db.stats().failovers.connection ?? 0) >= 1, JSON.stringify(db.stats().failovers));

	// Back up: PgBouncer logs in again (server_login_retry = 0.2 s), and the probe returns it.
	await faults.cluster.replicas[0].start();
	t.true(await eventually(() => db.replicas[0].state === 'healthy', 8000), JSON.stringify(db.replicas[0]));
});

pgbouncerTest('a server crashing mid-query behind PgBouncer ("server conn crashed?"): the read is retried elsewhere', async t => {
	const faults = await bouncedCluster(t);
	const {sequelize, db} = routerOn(t, faults, {cooldownMs: 60_000});
	// Reads that take 400 ms, so the crash lands in the middle of some.
	const slowReads = Array.from({length: 6}, async () => sequelize.query<{port: number}>('SELECT pg_sleep(0.4), inet_server_port() AS port', {type: QueryTypes.SELECT, plain: true}));
	await delay(150);
	await faults.cluster.replicas[0].stop('immediate');
	const results = await Promise.allSettled(slowReads);
	t.deepEqual(results.filter(result => result.status === 'rejected').map(result => String((result).reason)), []);
	t.true(results.every(result => result.status === 'fulfilled' && result.value?.port !== faults.cluster.replicas[0].port));
	t.true((db.stats().failovers.connection ?? 0) >= 1, JSON.stringify(db.stats().failovers));
	t.regex(db.replicas[0].lastError ?? '', /server conn crashed|server login has been failing|pgbouncer cannot connect/);
});

pgbouncerTest('backends killed behind PgBouncer (pg_terminate_backend): reads in flight are retried, the replica stays in rotation', async t => {
	const faults = await bouncedCluster(t);
	const {sequelize, db} = routerOn(t, faults, {cooldownMs: 60_000});
	const slowReads = Array.from({length: 6}, async () => sequelize.query<{port: number}>('SELECT pg_sleep(0.4), inet_server_port() AS port', {type: QueryTypes.SELECT, plain: true}));
	await delay(150);
	const {rows} = await withClient(faults.cluster.replicas[0], async client => client.query<{killed: boolean}>('SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE backend_type = \'client backend\' AND pid <> pg_backend_pid() AND query LIKE \'%pg_sleep(0.4)%\''));
	t.true(rows.length > 0, 'some reads were running on replica1');
	const results = await Promise.allSettled(slowReads);
	t.deepEqual(results.filter(result => result.status === 'rejected').map(result => String((result).reason)), []);
	t.true((db.stats().failovers.connection ?? 0) >= 1, JSON.stringify(db.stats().failovers));
	// The server is up: the probe that follows the failure finds it answering.
	t.true(await eventually(() => db.replicas[0].state === 'healthy', 5000), JSON.stringify(db.replicas[0]));
});

pgbouncerTest('a server frozen behind PgBouncer: reads time out and go elsewhere, 0 failed reads', async t => {
	const faults = await bouncedCluster(t);
	const {sequelize, db} = routerOn(t, faults, {connectTimeoutMs: 500, readTimeoutMs: 800, cooldownMs: 60_000, monitorIntervalMs: 200});
	// A monitor round that gave up on the frozen server must not queue a second question
	// behind the first on its connection (node-postgres warns; pg 9 will throw).
	const warnings: string[] = [];
	const onWarning = (warning: Error) => warnings.push(warning.message);
	process.on('warning', onWarning);
	t.teardown(() => process.off('warning', onWarning));
	const {stop} = steadyReads(sequelize, faults.named, 4);
	await delay(300);
	faults.cluster.replicas[0].freeze();
	t.teardown(() => {
		faults.cluster.replicas[0].thaw();
	});
	await delay(2500);
	const result = await stop();
	t.log(`frozen behind PgBouncer: reads ${result.attempted}, failed ${result.failed}, slowest ${result.slowestMs} ms, per server ${JSON.stringify(result.servers)}; last error ${db.replicas[0].lastError}`);
	t.is(result.failed, 0, result.errors.join('\n'));
	// Sequelize's set-up query on a new connection waits in PgBouncer's queue: the connect
	// timeout bounds it, so no read waits past a read timeout plus a connect timeout (and slack).
	t.true(result.slowestMs < 800 + 500 + 1000, `slowest read ${result.slowestMs} ms`);
	t.not(db.replicas[0].state, 'healthy');
	t.true(result.servers.replica2 > 20);
	t.deepEqual(warnings.filter(warning => warning.includes('already executing a query')), []);
});

test('PgBouncer\'s own errors are connection failures of the server behind it', t => {
	// As node-postgres reports them (SQLSTATE 08P01, protocol_violation, for all of them).
	for (const message of ['server login has been failing, try again later (server_login_retry)', 'server conn crashed?', 'query_wait_timeout', 'pgbouncer cannot connect to server', 'no more connections allowed (max_client_conn)']) {
		t.is(classifyFailure(Object.assign(new Error(message), {code: '08P01', severity: 'FATAL'})), 'connection', message);
	}
});

