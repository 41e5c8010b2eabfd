// Faults injected for real: servers stopped, frozen, restarted, held back and promoted.
// Each test breaks a cluster of its own; they run one at a time to keep the machine calm.
import {setTimeout as delay} from 'node:timers/promises';
import test from 'ava';
import {QueryTypes} from 'sequelize';
import {multidb, usePrimaryDb} from '../source/index.js';
import {runInNewFlow} from '../source/context.js';
import {withClient} from '../scripts/local-cluster/index.js';
import {eventually, ownCluster, reads, routerOn, steadyReads} from './helpers/faults.js';
import {answeringServer, countBy, newSequelize} from './helpers/sequelize.js';

test.serial('a replica stopped (immediate) under a steady stream of reads: 0 failed reads', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db, events} = routerOn(t, faults, {cooldownMs: 60_000});
	const {load, stop} = steadyReads(sequelize, faults.endpoints, 4);
	await delay(700);
	await faults.cluster.replicas[0].stop('immediate');
	const before = load.attempted;
	await delay(1500);
	const result = await stop();
	t.log(`reads attempted ${result.attempted} (${result.attempted - before} after the stop), failed ${result.failed}, per server ${JSON.stringify(result.servers)}`);
	t.is(result.failed, 0, result.errors.join('\n'));
	t.true(result.attempted - before > 20);
	t.is(db.replicas[0].state, 'quarantined');
	t.true(events.includes(`down ${db.replicas[0].name}`));
	t.true((db.stats().failovers.connection ?? 0) >= 1);
	// After the stop, reads kept to the live replica.
	t.deepEqual(await reads(sequelize, faults, 4), ['replica2', 'replica2', 'replica2', 'replica2']);
});

test.serial('a stopped replica that restarts rejoins on a probe, with the monitor off and no read to prompt it', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db, events} = routerOn(t, faults, {monitorIntervalMs: 0});
	await faults.cluster.replicas[0].stop('immediate');
	t.deepEqual(countBy(await reads(sequelize, faults, 6)), {replica2: 6});
	t.is(db.replicas[0].state, 'quarantined');
	await faults.cluster.replicas[0].start();
	// Probes back off to 1 s at most (±20 % jitter).
	t.true(await eventually(() => db.replicas[0].state === 'healthy', 1500), JSON.stringify(db.replicas[0]));
	const after = await reads(sequelize, faults, 6);
	t.deepEqual(countBy(after), {replica1: 3, replica2: 3});
	t.is(db.replicas[0].state, 'healthy');
	t.deepEqual(events, [`down ${db.replicas[0].name}`, `up ${db.replicas[0].name}`]);
});

test.serial('a frozen replica does not hang reads, and rejoins once thawed', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db, events} = routerOn(t, faults, {connectTimeoutMs: 500, readTimeoutMs: 700, cooldownMs: 1000, monitorIntervalMs: 200});
	// Warm both pools, so the freeze also catches open connections mid-use.
	await reads(sequelize, faults, 4);
	const {stop} = steadyReads(sequelize, faults.endpoints, 4);
	await delay(300);
	faults.cluster.replicas[0].freeze();
	await delay(2500);
	const frozen = await stop();
	t.log(`frozen: reads attempted ${frozen.attempted}, failed ${frozen.failed}, slowest ${frozen.slowestMs} ms, per server ${JSON.stringify(frozen.servers)}`);
	t.is(frozen.failed, 0, frozen.errors.join('\n'));
	// No read waited much past one read timeout plus one connect timeout.
	t.true(frozen.slowestMs < 700 + 500 + 1000, `slowest read ${frozen.slowestMs} ms`);
	t.not(db.replicas[0].state, 'healthy');
	faults.cluster.replicas[0].thaw();
	t.true(await eventually(() => db.replicas[0].state === 'healthy', 10_000));
	t.deepEqual(countBy(await reads(sequelize, faults, 4)), {replica1: 2, replica2: 2});
	t.true(events.includes(`up ${db.replicas[0].name}`));
});

test.serial('with every replica down, reads go to the primary, or fail cleanly without fallback', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db, events} = routerOn(t, faults, {monitorIntervalMs: 0});
	const strict = newSequelize(faults.endpoints);
	t.teardown(async () => strict.close());
	multidb(strict, {fallbackToPrimary: false, monitorIntervalMs: 0});
	await Promise.all(faults.cluster.replicas.map(async replica => replica.stop('immediate')));
	t.deepEqual(await reads(sequelize, faults, 4), ['primary', 'primary', 'primary', 'primary']);
	t.is(db.stats().byReason.fallback, 4);
	// One event per episode, not one per read.
	t.deepEqual(events.filter(event => event === 'fallback'), ['fallback']);
	const error = await t.throwsAsync(answeringServer(strict, faults.endpoints));
	t.is((error as {code?: string}).code, 'MULTIDB_NO_REPLICA_AVAILABLE');
	for (const replica of faults.cluster.replicas) {
		t.true(error.message.includes(`${replica.host}:${replica.port}: connect ECONNREFUSED`), error.message);
	}
});

test.serial('with the primary down, reads keep going to the replicas and writes fail with the driver\'s error', async t => {
	const faults = await ownCluster(t);
	const {sequelize} = routerOn(t, faults, {monitorIntervalMs: 100});
	await reads(sequelize, faults, 2);
	await faults.cluster.primary.stop('immediate');
	t.deepEqual(countBy(await reads(sequelize, faults, 6)), {replica1: 3, replica2: 3});
	const error = await t.throwsAsync(sequelize.query('CREATE TABLE nope (x int)'));
	t.regex(error.name, /^Sequelize/);
});

test.serial('a write that reached a replica runs once on the primary and pins like a write', async t => {
	const faults = await ownCluster(t);
	await withClient(faults.cluster.primary, async client => client.query('CREATE TABLE audit (id serial PRIMARY KEY, note text)'));
	await faults.cluster.waitForStreaming();
	await delay(300);
	const {sequelize, db} = routerOn(t, faults);
	const {inserted, after} = await runInNewFlow(async () => {
		const rows = await sequelize.query<{id: number}>('WITH added AS (INSERT INTO audit (note) VALUES (\'cte\') RETURNING id) SELECT id FROM added', {type: QueryTypes.SELECT});
		return {inserted: rows, after: await answeringServer(sequelize, faults.endpoints)};
	});
	t.is(inserted.length, 1);
	const count = await withClient(faults.cluster.primary, async client => client.query<{count: string}>('SELECT count(*) FROM audit'));
	t.is(Number(count.rows[0].count), 1);
	t.is(db.stats().byReason['misrouted-write'], 1);
	t.is(db.stats().failovers['read-only'], 1);
	// The flow wrote, so its next read goes to the primary.
	t.is(after, 'primary');
});

test.serial('writes during a replica failure are never duplicated, and a transaction is never retried', async t => {
	const faults = await ownCluster(t);
	await withClient(faults.cluster.primary, async client => client.query('CREATE TABLE ledger (id serial PRIMARY KEY, n int)'));
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs: 0});
	const {stop} = steadyReads(sequelize, faults.endpoints, 2);
	let written = 0;
	const writer = (async () => {
		for (let n = 0; n < 60; n++) {
			await sequelize.query('INSERT INTO ledger (n) VALUES (:n)', {replacements: {n}});
			written++;
			await delay(20);
		}
	})();
	await delay(300);
	await faults.cluster.replicas[0].stop('immediate');
	await writer;
	const result = await stop();
	const rows = await withClient(faults.cluster.primary, async client => client.query<{count: string; distinct: string}>('SELECT count(*), count(DISTINCT n) AS distinct FROM ledger'));
	t.deepEqual(rows.rows[0], {count: String(written), distinct: String(written)});
	t.is(written, 60);
	t.is(result.failed, 0);

	// A replica that dies inside a read-only transaction: the driver's error reaches the
	// caller unchanged, and nothing is retried (the transaction's state died with it).
	const failoversBefore = db.stats().failovers.connection ?? 0;
	const error = await t.throwsAsync(sequelize.transaction({readOnly: true}, async transaction => {
		const row = await sequelize.query<{port: number}>('SELECT inet_server_port() AS port', {type: QueryTypes.SELECT, plain: true, transaction});
		const server = faults.cluster.servers.find(candidate => candidate.port === row?.port);
		t.is(server?.name, 'replica2');
		await server?.stop('immediate');
		await sequelize.query('SELECT 1', {type: QueryTypes.SELECT, transaction});
	}));
	t.regex(error.message, /terminat|ECONNRESET|shut|not queryable/i);
	t.is(db.stats().failovers.connection ?? 0, failoversBefore);
});

test.serial('a replica held back past maxLag is skipped until it catches up', async t => {
	const faults = await ownCluster(t);
	await withClient(faults.cluster.primary, async client => client.query('CREATE TABLE ticks (at timestamptz DEFAULT now())'));
	const {sequelize, db, events} = routerOn(t, faults, {maxLagMs: 300, maxLagBytes: 0, monitorIntervalMs: 100});
	await withClient(faults.cluster.replicas[0], async client => client.query('SELECT pg_wal_replay_pause()'));
	const writer = new AbortController();
	const writing = (async () => {
		while (!writer.signal.aborted) {
			await withClient(faults.cluster.primary, async client => client.query('INSERT INTO ticks DEFAULT VALUES'));
			await delay(50);
		}
	})();
	t.teardown(async () => {
		writer.abort();
		await writing;
	});
	t.true(await eventually(() => db.replicas[0].state === 'lagging', 10_000), JSON.stringify(db.replicas[0]));
	t.true((db.replicas[0].lagMs ?? 0) > 300);
	t.deepEqual(countBy(await reads(sequelize, faults, 6)), {replica2: 6});
	await withClient(faults.cluster.replicas[0], async client => client.query('SELECT pg_wal_replay_resume()'));
	t.true(await eventually(() => db.replicas[0].state === 'healthy', 10_000), JSON.stringify(db.replicas[0]));
	t.deepEqual(countBy(await reads(sequelize, faults, 6)), {replica1: 3, replica2: 3});
	t.deepEqual(events, [`lagging ${db.replicas[0].name}`, `caught-up ${db.replicas[0].name}`]);
});

test.serial('an idle primary does not make a healthy replica look late', async t => {
	const faults = await ownCluster(t, {applyDelaysMs: [0, 1500]});
	const {db} = routerOn(t, faults, {maxLagMs: 100, maxLagBytes: 0, monitorIntervalMs: 100});
	await delay(2500);
	t.deepEqual(db.replicas.map(replica => [replica.state, replica.lagMs]), [['healthy', 0], ['healthy', 0]]);
});

test.serial('a promoted replica is no longer read from', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db, events} = routerOn(t, faults, {monitorIntervalMs: 100});
	await faults.cluster.replicas[0].promote();
	t.true(await eventually(() => db.replicas[0].state === 'promoted', 10_000));
	t.true(events.includes(`lagging ${db.replicas[0].name}`));
	const servers = await Promise.all(Array.from({length: 4}, async () => sequelize.query<{port: number}>('SELECT inet_server_port() AS port', {type: QueryTypes.SELECT, plain: true})));
	t.deepEqual(servers.map(row => row?.port), Array.from({length: 4}, () => faults.cluster.replicas[1].port));
});

test.serial('a read canceled by a hot-standby conflict is retried on another replica', async t => {
	const faults = await ownCluster(t);
	const [conflicted] = faults.cluster.replicas;
	await withClient(faults.cluster.primary, async client => client.query('CREATE TABLE churn AS SELECT generate_series(1, 10000) AS n'));
	await faults.cluster.waitForStreaming();
	// Cancel conflicting queries at once instead of delaying replay for them.
	await withClient(conflicted, async client => {
		await client.query('ALTER SYSTEM SET max_standby_streaming_delay = 0');
		await client.query('SELECT pg_reload_conf()');
	});
	await delay(500);
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs: 0});
	const read = sequelize.query<{port: number}>('SELECT inet_server_port() AS port, count(*) AS rows, pg_sleep(2) FROM churn', {type: QueryTypes.SELECT, plain: true});
	await delay(500);
	// Removing rows the replica's running query may still see: replaying that cleanup
	// conflicts with the query, which PostgreSQL cancels with SQLSTATE 40001.
	await withClient(faults.cluster.primary, async client => {
		await client.query('DELETE FROM churn');
		await client.query('VACUUM churn');
	});
	const row = await read;
	t.is(row?.port, faults.cluster.replicas[1].port);
	t.is(db.stats().failovers.conflict, 1);
	t.is(db.replicas[0].state, 'healthy');
});

test.serial('with the monitor on, a restarted replica rejoins on a probe, without a read to prompt it', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db, events} = routerOn(t, faults, {monitorIntervalMs: 100});
	await reads(sequelize, faults, 4);
	await faults.cluster.replicas[0].stop('immediate');
	t.true(await eventually(() => db.replicas[0].state === 'quarantined', 5000));
	await faults.cluster.replicas[0].start();
	// Within one probe back-off (1 s at most): the monitor's dead connection must not hold it out.
	t.true(await eventually(() => db.replicas[0].state === 'healthy' && db.replicas[0].failures === 0, 1800), JSON.stringify(db.replicas[0]));
	t.deepEqual(countBy(await reads(sequelize, faults, 4)), {replica1: 2, replica2: 2});
	t.deepEqual(events, [`down ${db.replicas[0].name}`, `up ${db.replicas[0].name}`]);
});

/** Kills, on `server`, the backends running a query that contains `marker`, once one does. */
async function killWhenRunning(server: Parameters<typeof withClient>[0], marker: string): Promise<number> {
	const deadline = Date.now() + 5000;
	while (Date.now() < deadline) {
		const {rows} = await withClient(server, async client => client.query<{killed: boolean}>(`SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE query LIKE '%${marker}%' AND pid <> pg_backend_pid()`));
		if (rows.length > 0) {
			return rows.length;
		}

		await delay(20);
	}

	throw new Error(`no query with ${marker} ran on ${server.port}`);
}

test.serial('a read that needs the primary and loses its connection there is tried once more on a fresh one', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db} = routerOn(t, faults);
	const read = usePrimaryDb(async () => sequelize.query<{port: number}>('SELECT pg_sleep(0.4), inet_server_port() AS port /* primary-read */', {type: QueryTypes.SELECT, plain: true}));
	t.is(await killWhenRunning(faults.cluster.primary, 'primary-read */'), 1);
	t.is((await read)?.port, faults.cluster.primary.port);
	t.is(db.stats().failovers.connection, 1);
});

test.serial('with the primary and one replica down, a read whose backend is killed on the last replica is tried there again, once a probe finds it up', async t => {
	const faults = await ownCluster(t);
	const {sequelize, db} = routerOn(t, faults, {cooldownMs: 60_000});
	await faults.cluster.primary.stop('immediate');
	await faults.cluster.replicas[1].stop('immediate');
	t.deepEqual(await reads(sequelize, faults, 3), ['replica1', 'replica1', 'replica1']);
	const read = sequelize.query<{port: number}>('SELECT pg_sleep(0.4), inet_server_port() AS port /* last-replica */', {type: QueryTypes.SELECT, plain: true});
	t.is(await killWhenRunning(faults.cluster.replicas[0], 'last-replica */'), 1);
	t.is((await read)?.port, faults.cluster.replicas[0].port);
	t.is(db.stats().byReason['last-resort'], 1);
});
