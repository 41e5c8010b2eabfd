// Writes follow a promoted primary, on real servers: the primary is crashed
// (`pg_ctl stop -m immediate`), a replica promoted (`pg_ctl promote`), and the servers
// themselves say where each query ran (`inet_server_port()`, `pg_is_in_recovery()`).
import {setTimeout as delay} from 'node:timers/promises';
import test from 'ava';
import {QueryTypes, type Sequelize} from 'sequelize';
import {multidb, withConsistency, type MultiDb} from '../source/index.js';
import {followOtherPrimary, rebuildAsStandby, withClient, type PostgresServer} from '../scripts/local-cluster/index.js';
import {eventually, ownCluster, routerOn, type FaultCluster} from './helpers/faults.js';
import {newSequelize, serverNamer} from './helpers/sequelize.js';

const monitorIntervalMs = 250;

interface Answer {
	readonly server: string;
	readonly inRecovery: boolean;
}

/** Where a typed read ran, as the server says. */
async function readOn(sequelize: Sequelize, faults: FaultCluster): Promise<Answer> {
	const row = await sequelize.query<{port: number; inRecovery: boolean}>('SELECT inet_server_port() AS port, pg_is_in_recovery() AS "inRecovery"', {type: QueryTypes.SELECT, plain: true});
	if (!row) {
		throw new Error('no row');
	}

	return {server: serverNamer(faults.endpoints)(row.port), inRecovery: row.inRecovery};
}

/** Inserts one row (its id unique) and says where the insert ran. */
async function writeOn(sequelize: Sequelize, faults: FaultCluster, id: string): Promise<Answer> {
	const [rows] = await sequelize.query(`INSERT INTO entries (id) VALUES ('${id}') RETURNING inet_server_port() AS port, pg_is_in_recovery() AS "inRecovery"`);
	const [row] = rows as Array<{port: number; inRecovery: boolean}>;
	return {server: serverNamer(faults.endpoints)(row.port), inRecovery: row.inRecovery};
}

async function clusterWithTable(t: Parameters<typeof ownCluster>[0]): Promise<FaultCluster> {
	const faults = await ownCluster(t);
	await withClient(faults.cluster.primary, async client => client.query('CREATE TABLE entries (id text PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())'));
	// On every replica before any fault: a table lost in the failover would fail every write after it.
	await faults.cluster.waitForReplay();
	return faults;
}

/** Crashes the primary and promotes replica1; resolves when the promotion is done (epoch ms). */
async function failOver(faults: FaultCluster): Promise<number> {
	await faults.cluster.primary.stop('immediate');
	await faults.cluster.replicas[0].promote();
	return Date.now();
}

/** Tries a write every 20 ms until one succeeds; resolves where it ran and when. */
async function firstWrite(sequelize: Sequelize, faults: FaultCluster, timeoutMs = 15_000): Promise<Answer & {at: number; failed: number}> {
	const deadline = Date.now() + timeoutMs;
	let failed = 0;
	for (let attempt = 0; ; attempt++) {
		try {
			return {...await writeOn(sequelize, faults, `first-${attempt}`), at: Date.now(), failed};
		} catch (error) {
			failed++;
			if (Date.now() > deadline) {
				throw error;
			}

			await delay(20);
		}
	}
}

function recordPrimaryEvents(db: MultiDb): string[] {
	const events: string[] = [];
	db.on('primaryChanged', ({from, to, timeline}) => events.push(`primaryChanged ${from} -> ${to} timeline ${timeline}`));
	db.on('splitBrain', ({node, reason}) => events.push(`splitBrain ${node} ${reason}`));
	return events;
}

function nameOf(db: MultiDb, server: PostgresServer): string {
	const node = db.nodes.find(candidate => candidate.port === server.port);
	if (!node) {
		throw new Error(`no node on port ${server.port}`);
	}

	return node.name;
}

test.serial('after the primary crashes and replica1 is promoted, writes go to replica1 within two monitor intervals, and reads stay on standbys', async t => {
	const faults = await clusterWithTable(t);
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs});
	const events = recordPrimaryEvents(db);
	t.like(await writeOn(sequelize, faults, 'before'), {server: 'primary', inRecovery: false});
	const promotedAt = await failOver(faults);
	const first = await firstWrite(sequelize, faults);
	t.like(first, {server: 'replica1', inRecovery: false});
	const switchMs = first.at - promotedAt;
	t.log(`first write on replica1 ${switchMs} ms after the promotion completed (monitor every ${monitorIntervalMs} ms ±20 %); ${first.failed} writes failed before it`);
	// Two intervals at most (with their jitter), plus a round's own time on a busy machine.
	t.true(switchMs <= (2 * 1.2 * monitorIntervalMs) + 500, `${switchMs} ms`);
	const [primary, replica1] = [faults.cluster.primary, faults.cluster.replicas[0]].map(server => nameOf(db, server));
	t.deepEqual(events, [`primaryChanged ${primary} -> ${replica1} timeline 2`]);
	t.like(db.nodes.find(node => node.name === replica1), {takesWrites: true, role: 'primary', state: 'primary', timeline: 2, configuredAs: 'replica'});
	t.like(db.nodes.find(node => node.name === primary), {takesWrites: false, state: 'quarantined', configuredAs: 'primary'});
	t.false(db.replicas.some(replica => replica.name === replica1));

	// replica2 follows the new primary, as a failover manager would make it; reads go to
	// standbys only, and once it is on the new timeline, to it.
	await followOtherPrimary(faults.cluster.replicas[1], faults.cluster.replicas[0]);
	t.true(await eventually(() => db.replicas.find(replica => replica.port === faults.cluster.replicas[1].port)?.state === 'healthy', 15_000), JSON.stringify(db.replicas));
	for (let index = 0; index < 6; index++) {
		t.deepEqual(await readOn(sequelize, faults), {server: 'replica2', inRecovery: true});
	}

	// Every acknowledged write is on the new primary, once.
	const {rows} = await withClient(faults.cluster.replicas[0], async client => client.query<{id: string}>('SELECT id FROM entries ORDER BY at'));
	t.deepEqual(rows.map(row => row.id), ['before', `first-${first.failed}`]);
});

test.serial('through a promotion under load: no read fails, no write is doubled, and writes fail only inside the switch window', async t => {
	const faults = await clusterWithTable(t);
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs});
	const writes: Array<{id: string; ok: boolean; at: number; server?: string}> = [];
	const reads = {ok: 0, failed: 0, errors: [] as string[], servers: {} as Record<string, number>};
	const load = {running: true};
	const writer = (async () => {
		for (let n = 0; load.running; n++) {
			const id = `load-${n}`;
			try {
				const {server} = await writeOn(sequelize, faults, id);
				writes.push({id, ok: true, at: Date.now(), server});
			} catch {
				writes.push({id, ok: false, at: Date.now()});
			}

			await delay(10);
		}
	})();
	const readers = Array.from({length: 3}, async () => {
		while (load.running) {
			try {
				const {server} = await readOn(sequelize, faults);
				reads.ok++;
				reads.servers[server] = (reads.servers[server] ?? 0) + 1;
			} catch (error) {
				reads.failed++;
				reads.errors.push((error as Error).message);
			}

			await delay(5);
		}
	});
	await delay(1000);
	const crashedAt = Date.now();
	const promotedAt = await failOver(faults);
	await delay(2500);
	load.running = false;
	await Promise.all([writer, ...readers]);

	const failed = writes.filter(write => !write.ok);
	// The first write on the new primary (writes in flight at the crash may still have been acknowledged by the old one).
	const firstAfter = writes.find(write => write.server === 'replica1');
	if (!firstAfter) {
		t.fail('no write succeeded on the new primary');
		return;
	}

	t.log(`reads ${reads.ok} ok, ${reads.failed} failed, per server ${JSON.stringify(reads.servers)}; writes ${writes.length - failed.length} ok, ${failed.length} failed; promotion took ${promotedAt - crashedAt} ms; first write ${firstAfter.at - promotedAt} ms after it`);
	t.is(reads.failed, 0, reads.errors.slice(0, 3).join('; '));
	// Every failed write falls between the crash and the first write on the new primary.
	t.true(failed.every(write => write.at >= crashedAt && write.at <= firstAfter.at), JSON.stringify(failed.map(write => write.at - crashedAt)));
	const {rows} = await withClient(faults.cluster.replicas[0], async client => client.query<{id: string}>('SELECT id FROM entries WHERE id LIKE \'load-%\''));
	const stored = new Set(rows.map(row => row.id));
	t.is(stored.size, rows.length);
	// Acknowledged after the switch: all there. Failed: never retried, so at most once (and
	// present only where the old primary committed it before its crash and replicated it).
	t.true(writes.filter(write => write.ok && write.at > firstAfter.at).every(write => stored.has(write.id)));
	t.log(`acknowledged writes missing on the new primary (lost with the crash, asynchronous replication): ${writes.filter(write => write.ok && !stored.has(write.id)).length}; failed writes present: ${failed.filter(write => stored.has(write.id)).length}`);
	t.is(db.nodes.find(node => node.takesWrites)?.port, faults.cluster.replicas[0].port);
});

test.serial('the old primary, rebuilt as a standby of the new one, rejoins the read rotation', async t => {
	const faults = await clusterWithTable(t);
	const {sequelize, db, events} = routerOn(t, faults, {monitorIntervalMs});
	await failOver(faults);
	await firstWrite(sequelize, faults);
	const [oldPrimary, newPrimary, replica2] = [faults.cluster.primary, ...faults.cluster.replicas];
	await followOtherPrimary(replica2, newPrimary);
	await rebuildAsStandby(oldPrimary, newPrimary);
	const oldName = nameOf(db, oldPrimary);
	t.true(await eventually(() => db.replicas.find(replica => replica.name === oldName)?.state === 'healthy', 20_000), JSON.stringify(db.replicas));
	t.like(db.nodes.find(node => node.name === oldName), {role: 'standby', takesWrites: false, timeline: 2});
	t.true(events.includes(`caught-up ${oldName}`), events.join(', '));
	const servers = new Set<string>();
	for (let index = 0; index < 8; index++) {
		const answer = await readOn(sequelize, faults);
		t.true(answer.inRecovery);
		servers.add(answer.server);
	}

	t.deepEqual([...servers].sort(), ['primary', 'replica2']);
	t.is(db.stats().byTarget[oldName], 4);
	// Writes stay on the new primary.
	t.like(await writeOn(sequelize, faults, 'after-rejoin'), {server: 'replica1', inRecovery: false});
});

test.serial('the old primary, rebuilt as a standby, is the only server up before a monitor round has seen it: reads ask every node its role once, then use it', async t => {
	const faults = await clusterWithTable(t);
	// The monitor runs at start, then only when asked: the router learns nothing by itself meanwhile.
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs: 60_000});
	await failOver(faults);
	await db.refreshReplicas();
	await firstWrite(sequelize, faults);
	const [oldPrimary, newPrimary, replica2] = [faults.cluster.primary, ...faults.cluster.replicas];
	await followOtherPrimary(replica2, newPrimary);
	await rebuildAsStandby(oldPrimary, newPrimary);
	// The router last saw the old primary as a primary (unless one of the probes that follow
	// its stop has met it since): it gets no reads while the others answer. Then they go down.
	t.like(db.nodes.find(node => node.port === oldPrimary.port), {takesWrites: false});
	await Promise.all([newPrimary.stop('immediate'), replica2.stop('immediate')]);
	const answer = await readOn(sequelize, faults);
	t.deepEqual(answer, {server: 'primary', inRecovery: true});
	t.is(db.stats().byReason['last-resort'], 1);
});

test.serial('a replica the probes hold out of rotation (flapping) that is promoted still takes the writes within a monitor round', async t => {
	const faults = await clusterWithTable(t);
	const {sequelize, db, events} = routerOn(t, faults, {monitorIntervalMs, cooldownMs: 60_000});
	const replica1 = faults.cluster.replicas[0];
	const name = nameOf(db, replica1);
	// Down, back, and down again within cooldownMs: flapping, so once it runs again the probes
	// keep it out for at least 5 s.
	for (const round of [1, 2]) {
		await replica1.stop('immediate');
		t.true(await eventually(async () => {
			await readOn(sequelize, faults).catch(() => undefined);
			return db.replicas.find(replica => replica.name === name)?.state === 'quarantined';
		}, 5000), `round ${round}: ${JSON.stringify(db.replicas)}`);
		await replica1.start();
		if (round === 1) {
			t.true(await eventually(() => db.replicas.find(replica => replica.name === name)?.state === 'healthy', 5000));
		}
	}

	t.like(db.replicas.find(replica => replica.name === name), {state: 'quarantined', flapping: true});
	const promotedAt = await failOver(faults);
	const first = await firstWrite(sequelize, faults);
	t.like(first, {server: 'replica1', inRecovery: false});
	t.log(`first write ${first.at - promotedAt} ms after the promotion; events: ${events.join(', ')}`);
	// Within a few monitor rounds, not after the flapping replica's 5 s of probes.
	t.true(first.at - promotedAt < 8 * monitorIntervalMs, `${first.at - promotedAt} ms`);
});

test.serial('the old primary restarted as a primary (not demoted) gets neither writes nor reads, and is reported', async t => {
	const faults = await clusterWithTable(t);
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs});
	const events = recordPrimaryEvents(db);
	const warnings: string[] = [];
	const onWarning = (warning: Error & {code?: string}) => warnings.push(warning.code ?? '');
	process.on('warning', onWarning);
	t.teardown(() => process.off('warning', onWarning));
	await failOver(faults);
	await firstWrite(sequelize, faults);
	const oldPrimary = faults.cluster.primary;
	await oldPrimary.start();
	const oldName = nameOf(db, oldPrimary);
	t.true(await eventually(() => events.includes(`splitBrain ${oldName} older-timeline`), 15_000), events.join(', '));
	t.true(warnings.includes('MULTIDB_SPLIT_BRAIN'));
	t.like(db.replicas.find(replica => replica.name === oldName), {state: 'promoted', timeline: 1});
	for (let index = 0; index < 20; index++) {
		t.not((await readOn(sequelize, faults)).server, 'primary');
		t.is((await writeOn(sequelize, faults, `split-${index}`)).server, 'replica1');
	}

	const {rows} = await withClient(oldPrimary, async client => client.query<{count: string}>('SELECT count(*) FROM entries WHERE id LIKE \'split-%\''));
	t.is(Number(rows[0].count), 0);
});

test.serial('with the primary down at start-up, reads are served from the first query and writes fail with the driver\'s error until it is back', async t => {
	const faults = await clusterWithTable(t);
	await faults.cluster.primary.stop('immediate');
	const sequelize = newSequelize(faults.endpoints);
	t.teardown(async () => sequelize.close());
	multidb(sequelize, {shuffle: false, monitorIntervalMs});
	// The very first query: Sequelize's version probe would need the primary.
	t.deepEqual(await readOn(sequelize, faults), {server: 'replica1', inRecovery: true});
	t.deepEqual(await readOn(sequelize, faults), {server: 'replica2', inRecovery: true});
	const error = await t.throwsAsync(writeOn(sequelize, faults, 'while-down'));
	t.is(error.name, 'SequelizeConnectionRefusedError');
	await faults.cluster.primary.start();
	const first = await firstWrite(sequelize, faults);
	t.like(first, {server: 'primary', inRecovery: false});
});

test.serial('followPrimary: false keeps writes on the configured primary, and the promoted replica gets no reads', async t => {
	const faults = await clusterWithTable(t);
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs, followPrimary: false});
	const events = recordPrimaryEvents(db);
	await failOver(faults);
	const replica1 = nameOf(db, faults.cluster.replicas[0]);
	t.true(await eventually(() => events.includes(`splitBrain ${replica1} not-followed`), 10_000), events.join(', '));
	await t.throwsAsync(writeOn(sequelize, faults, 'not-followed'), {name: 'SequelizeConnectionRefusedError'});
	for (let index = 0; index < 4; index++) {
		t.not((await readOn(sequelize, faults)).server, 'replica1');
	}
});

test.serial('a consistency token naming a write lost in the failover sends its reads to the new primary until it expires', async t => {
	const faults = await clusterWithTable(t);
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs});
	const [replica1, replica2] = faults.cluster.replicas;
	// replica1 stops receiving WAL: the next write reaches the primary and replica2 only.
	await withClient(replica1, async client => {
		await client.query('ALTER SYSTEM SET primary_conninfo = \'\'');
		await client.query('SELECT pg_reload_conf()');
	});
	await eventually(async () => (await withClient(replica1, async client => client.query('SELECT count(*) AS n FROM pg_stat_wal_receiver'))).rows[0].n === '0');
	await writeOn(sequelize, faults, 'lost');
	const token = await db.consistencyToken({ttlMs: 4000});
	await failOver(faults);
	await firstWrite(sequelize, faults);
	// replica2 holds the lost write and can never follow the new timeline: it must not count as caught up.
	await followOtherPrimary(replica2, replica1);
	await delay(3 * monitorIntervalMs);
	t.like(db.replicas.find(replica => replica.port === replica2.port), {state: 'lagging', timeline: 1});
	const read = async () => withConsistency(token, async () => sequelize.query<{port: number; found: boolean}>('SELECT inet_server_port() AS port, EXISTS (SELECT 1 FROM entries WHERE id = \'lost\') AS found', {type: QueryTypes.SELECT, plain: true}));
	const before = db.stats().byReason['not-caught-up'] ?? 0;
	const answer = await read();
	t.is(answer?.port, replica1.port);
	t.false(answer?.found);
	t.is(db.stats().byReason['not-caught-up'], before + 1);
	// Past its expiry, the token is ignored: reads go where any read goes.
	await delay(4000);
	const later = await read();
	t.not(later?.port, replica2.port);
});

test.serial('with the primary down from start-up, a replica promoted later takes the writes', async t => {
	const faults = await clusterWithTable(t);
	await faults.cluster.primary.stop('immediate');
	const sequelize = newSequelize(faults.endpoints);
	t.teardown(async () => sequelize.close());
	const db = multidb(sequelize, {shuffle: false, monitorIntervalMs});
	const events = recordPrimaryEvents(db);
	t.deepEqual(await readOn(sequelize, faults), {server: 'replica1', inRecovery: true});
	await t.throwsAsync(writeOn(sequelize, faults, 'while-down'), {name: 'SequelizeConnectionRefusedError'});
	await faults.cluster.replicas[0].promote();
	const first = await firstWrite(sequelize, faults);
	t.like(first, {server: 'replica1', inRecovery: false});
	t.deepEqual(events, [`primaryChanged ${nameOf(db, faults.cluster.primary)} -> ${nameOf(db, faults.cluster.replicas[0])} timeline 2`]);
});
