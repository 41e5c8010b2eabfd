import test from 'ava';
import {DataTypes, QueryTypes, Sequelize, Transaction, type Options} from 'sequelize';
import {MultiDbError, multidb, usePrimaryDb} from '../source/index.js';
import {sharedCluster, type ClusterEndpoints} from './helpers/shared-cluster.js';
import {answeringServer, countBy, newSequelize, recordServers, uniqueName, type TestSequelizeOptions} from './helpers/sequelize.js';

const cluster = await sharedCluster();

function setup(t: {teardown: (fn: () => Promise<void>) => void}, options: TestSequelizeOptions = {}, endpoints: ClusterEndpoints = cluster): Sequelize {
	const sequelize = newSequelize(endpoints, options);
	t.teardown(async () => sequelize.close());
	return sequelize;
}

/** A read-only model over a system catalog: it exists on every server at once, lag or not. */
function defineCatalogModel(sequelize: Sequelize) {
	return sequelize.define('Database', {datname: {type: DataTypes.STRING, primaryKey: true}}, {tableName: 'pg_database', timestamps: false});
}

async function sequentialReads(sequelize: Sequelize, count: number): Promise<string[]> {
	const servers: string[] = [];
	for (let index = 0; index < count; index++) {
		servers.push(await answeringServer(sequelize, cluster));
	}

	return servers;
}

test('twenty sequential reads over two replicas land ten and ten', async t => {
	const sequelize = setup(t);
	multidb(sequelize);
	const servers = await sequentialReads(sequelize, 20);
	t.deepEqual(countBy(servers), {replica1: 10, replica2: 10});
});

test('Sequelize\'s own replication sends sequential reads to one replica (the baseline this router fixes)', async t => {
	const sequelize = setup(t);
	const servers = await sequentialReads(sequelize, 20);
	t.is(Object.keys(countBy(servers)).length, 1);
});

test('round-robin alternates replicas query by query in a fixed order', async t => {
	const sequelize = setup(t);
	multidb(sequelize, {shuffle: false});
	const servers = await sequentialReads(sequelize, 6);
	t.deepEqual(servers, ['replica1', 'replica2', 'replica1', 'replica2', 'replica1', 'replica2']);
});

test('model finders and counts go to the replicas', async t => {
	const sequelize = setup(t);
	multidb(sequelize);
	const Database = defineCatalogModel(sequelize);
	const log = recordServers(sequelize, cluster);
	await Database.findAll();
	await Database.findOne({where: {datname: cluster.primary.database}});
	await Database.count();
	await Database.findByPk(cluster.primary.database);
	await Database.findAndCountAll();
	t.true(log.length >= 5);
	t.true(log.every(entry => entry.server.startsWith('replica')), JSON.stringify(log));
	t.deepEqual(Object.keys(countBy(log.map(entry => entry.server))).sort(), ['replica1', 'replica2']);
});

test('every kind of write goes to the primary', async t => {
	const sequelize = setup(t);
	multidb(sequelize);
	const Post = sequelize.define('Post', {title: DataTypes.STRING, likes: {type: DataTypes.INTEGER, defaultValue: 0}}, {tableName: uniqueName('posts')});
	const log = recordServers(sequelize, cluster);
	await Post.sync();
	const post = await Post.create({title: 'a'});
	await Post.bulkCreate([{title: 'b'}, {title: 'c'}]);
	await Post.update({title: 'd'}, {where: {id: post.get('id') as number}});
	await Post.upsert({id: post.get('id'), title: 'e'});
	await post.increment('likes');
	await Post.destroy({where: {title: 'b'}});
	await sequelize.query(`CREATE INDEX ON "${Post.tableName}" (title)`);
	await sequelize.query(`INSERT INTO "${Post.tableName}" (title, "createdAt", "updatedAt") VALUES ('raw', now(), now())`);
	await Post.drop();
	const writes = log.filter(entry => !/^\s*SELECT/i.test(entry.sql));
	t.true(writes.length >= 10, JSON.stringify(log));
	t.deepEqual(countBy(log.map(entry => entry.server)), {primary: log.length});
});

test('sync runs entirely on the primary, its catalog reads included', async t => {
	const sequelize = setup(t);
	multidb(sequelize);
	const log = recordServers(sequelize, cluster);
	const Mood = sequelize.define('Mood', {feeling: DataTypes.ENUM('happy', 'sad')}, {tableName: uniqueName('moods')});
	await sequelize.sync();
	await Mood.sync({alter: true});
	await Mood.drop({}); // (Sequelize 6 needs an options object to drop a table with an ENUM.)
	// The enum lists Sequelize reads during sync are typed SELECTs: on the primary too.
	t.true(log.some(entry => /pg_enum|typname/i.test(entry.sql)), JSON.stringify(log.map(entry => entry.sql)));
	t.deepEqual(countBy(log.map(entry => entry.server)), {primary: log.length});
});

test('a raw query without a type goes to the primary, even a SELECT', async t => {
	const sequelize = setup(t);
	multidb(sequelize);
	const [rows] = await sequelize.query('SELECT pg_is_in_recovery() AS "inRecovery"');
	t.deepEqual(rows, [{inRecovery: false}]);
});

test('SELECT ... FOR UPDATE and FOR SHARE go to the primary', async t => {
	const sequelize = setup(t);
	const db = multidb(sequelize);
	const Post = sequelize.define('Post', {title: DataTypes.STRING}, {tableName: uniqueName('posts')});
	await Post.sync();
	const before = db.stats().queries;
	const log = recordServers(sequelize, cluster);
	await Post.findAll({lock: true});
	await Post.findAll({lock: Transaction.LOCK.SHARE});
	await sequelize.query(`SELECT * FROM "${Post.tableName}" FOR NO KEY UPDATE`, {type: QueryTypes.SELECT});
	await sequelize.query(`SELECT * FROM "${Post.tableName}" FOR KEY SHARE SKIP LOCKED`, {type: QueryTypes.SELECT});
	t.deepEqual(log.map(entry => entry.server), ['primary', 'primary', 'primary', 'primary']);
	t.is(db.stats().queries - before, 4);
	t.is(db.stats().byReason['locking-read'], 4);
});

test('every query of a transaction goes to the primary, reads included', async t => {
	const sequelize = setup(t);
	multidb(sequelize);
	const log = recordServers(sequelize, cluster);
	const Database = defineCatalogModel(sequelize);
	await sequelize.transaction(async transaction => {
		await Database.findAll({transaction});
		await sequelize.query('SELECT 1', {type: QueryTypes.SELECT, transaction});
	});
	t.true(log.length >= 4); // BEGIN, two reads, COMMIT
	t.deepEqual(countBy(log.map(entry => entry.server)), {primary: log.length});
});

test('a readOnly transaction runs on a replica', async t => {
	const sequelize = setup(t);
	multidb(sequelize);
	const log = recordServers(sequelize, cluster);
	await sequelize.transaction({readOnly: true}, async transaction => {
		await sequelize.query('SELECT 1', {type: QueryTypes.SELECT, transaction});
	});
	const servers = new Set(log.map(entry => entry.server));
	t.is(servers.size, 1);
	t.true([...servers][0].startsWith('replica'));
});

test('beforeConnect and afterConnect hooks fire for replica connections', async t => {
	const sequelize = setup(t);
	const before: number[] = [];
	const after: number[] = [];
	sequelize.addHook('beforeConnect', config => {
		before.push(Number(config.port));
	});
	sequelize.addHook('afterConnect', (_connection, config) => {
		after.push(Number((config as {port?: unknown}).port));
	});
	multidb(sequelize);
	await sequentialReads(sequelize, 2);
	const replicaPorts = cluster.replicas.map(replica => replica.port).sort();
	t.deepEqual([...new Set(before)].filter(port => port !== cluster.primary.port).sort(), replicaPorts);
	t.deepEqual([...new Set(after)].filter(port => port !== cluster.primary.port).sort(), replicaPorts);
});

test('beforePoolAcquire and afterPoolAcquire hooks fire for routed reads, which still go to the replicas', async t => {
	const sequelize = setup(t);
	const seen: string[] = [];
	sequelize.addHook('beforePoolAcquire', options => {
		seen.push(`before ${String((options as {type?: string} | undefined)?.type)}`);
	});
	sequelize.addHook('afterPoolAcquire', (connection, options) => {
		seen.push(`after ${String((options as {type?: string} | undefined)?.type)} ${(connection as {queryType?: string}).queryType ?? ''}`);
	});
	multidb(sequelize);
	// The very first read also waits for Sequelize's server-version probe.
	const servers = await sequentialReads(sequelize, 2);
	t.true(servers.every(server => server.startsWith('replica')), servers.join());
	t.deepEqual(seen.slice(-4), ['before SELECT', 'after SELECT read', 'before SELECT', 'after SELECT read']);
});

test('pool options apply to each replica: max 1 means one connection per replica', async t => {
	const sequelize = setup(t, {pool: {max: 1}});
	multidb(sequelize);
	const rows = await Promise.all(Array.from({length: 12}, async () => sequelize.query<{pid: number; port: number}>('SELECT pg_backend_pid() AS pid, inet_server_port() AS port', {type: QueryTypes.SELECT, plain: true})));
	const pidsByPort = new Map<number, Set<number>>();
	for (const row of rows) {
		if (row) {
			pidsByPort.set(row.port, (pidsByPort.get(row.port) ?? new Set()).add(row.pid));
		}
	}

	t.deepEqual([...pidsByPort.keys()].sort(), cluster.replicas.map(replica => replica.port).sort());
	t.true([...pidsByPort.values()].every(pids => pids.size === 1));
});

test('two Sequelize instances have independent routers', async t => {
	const first = setup(t);
	const second = setup(t);
	const firstDb = multidb(first, {shuffle: false});
	const secondDb = multidb(second, {shuffle: false});
	t.is(await answeringServer(first, cluster), 'replica1');
	// The second instance's cursor did not move with the first's.
	t.is(await answeringServer(second, cluster), 'replica1');
	t.is(await answeringServer(first, cluster), 'replica2');
	t.is(firstDb.stats().queries, 2);
	t.is(secondDb.stats().queries, 1);
});

test('stats count queries per target and per reason', async t => {
	const sequelize = setup(t);
	const db = multidb(sequelize, {shuffle: false});
	await sequentialReads(sequelize, 4);
	await sequelize.query('SELECT 1 FOR UPDATE', {type: QueryTypes.SELECT});
	await sequelize.query('CREATE TEMPORARY TABLE scratch (x int)');
	const stats = db.stats();
	t.is(stats.queries, 6);
	t.deepEqual(stats.byTarget, {primary: 2, [db.replicas[0].name]: 2, [db.replicas[1].name]: 2});
	t.deepEqual(stats.byReason, {'round-robin': 4, 'locking-read': 1, write: 1});
});

test('replicas are named host:port and listed without passwords', t => {
	const sequelize = setup(t);
	const db = multidb(sequelize, {shuffle: false});
	t.deepEqual(db.replicas.map(replica => replica.name), cluster.replicas.map(replica => `${replica.host}:${replica.port}`));
	t.false(JSON.stringify(db.replicas).includes('password'));
});

test('getReplica returns replicas in round-robin order, and its query runs on exactly that replica', async t => {
	const sequelize = setup(t);
	const db = multidb(sequelize, {shuffle: false});
	const first = db.getReplica();
	const second = db.getReplica();
	const third = db.getReplica();
	t.deepEqual([first.name, second.name, third.name], [db.replicas[0].name, db.replicas[1].name, db.replicas[0].name]);
	t.deepEqual(
		{host: first.host, port: first.port, database: first.database, username: first.username},
		{host: cluster.replicas[0].host, port: cluster.replicas[0].port, database: cluster.replicas[0].database, username: cluster.replicas[0].username},
	);
	t.false('password' in first);
	for (const replica of [first, second, first, second]) {
		const rows = await replica.query<{port: number}>('SELECT inet_server_port() AS port');
		t.deepEqual(rows, [{port: replica.port}]);
	}
});

test('a replica from getReplica is used even where reads are pinned', async t => {
	const sequelize = setup(t);
	const db = multidb(sequelize);
	const replica = db.getReplica();
	const rows = await usePrimaryDb(async () => replica.query<{port: number}>('SELECT inet_server_port() AS port'));
	t.deepEqual(rows, [{port: replica.port}]);
	t.is(db.stats().byReason['chosen-replica'], 1);
});

test('a replica query refuses a transaction and a non-string SQL', async t => {
	const sequelize = setup(t);
	const db = multidb(sequelize);
	const replica = db.getReplica();
	await t.throwsAsync(replica.query(42 as unknown as string), {instanceOf: TypeError, message: 'Expected `sql` to be a string, got 42 (number)'});
	await sequelize.transaction(async transaction => {
		await t.throwsAsync(replica.query('SELECT 1', {transaction} as never), {instanceOf: TypeError, message: /cannot run in a transaction/});
	});
});

for (const [label, replicas] of [['no replication config', false], ['an empty replication.read', []]] as const) {
	// Serial: a process warning reaches every listener, so two of these at once would see both.
	test.serial(`with ${label}, multidb warns once and sends reads to the primary`, async t => {
		const warnings: Error[] = [];
		const onWarning = (warning: Error) => {
			if ((warning as {code?: string}).code === 'MULTIDB_NO_REPLICAS') {
				warnings.push(warning);
			}
		};

		process.on('warning', onWarning);
		t.teardown(() => process.off('warning', onWarning));
		const sequelize = setup(t, {replicas});
		const db = multidb(sequelize);
		const servers = await sequentialReads(sequelize, 3);
		await new Promise(resolve => {
			setImmediate(resolve);
		});
		t.deepEqual(servers, ['primary', 'primary', 'primary']);
		t.is(warnings.length, 1);
		t.is(warnings[0].name, 'SequelizeMultiDbWarning');
		t.deepEqual(db.replicas, []);
		t.deepEqual(db.stats().byReason, {'no-replicas': 3});
		t.throws(() => db.getReplica(), {instanceOf: MultiDbError, code: 'MULTIDB_NO_REPLICAS'} as never);
	});
}

test('multidb refuses a Sequelize instance it is already installed on', t => {
	const sequelize = setup(t);
	multidb(sequelize);
	t.throws(() => multidb(sequelize), {instanceOf: TypeError, message: /already installed/});
});

test('multidb refuses what is neither a Sequelize instance nor options', t => {
	t.throws(() => multidb(42 as unknown as Sequelize), {instanceOf: TypeError, message: 'Expected `sequelize` to be a Sequelize instance, got 42 (number)'});
	t.throws(() => multidb(undefined as unknown as Sequelize), {instanceOf: TypeError, message: 'Expected `sequelize` to be a Sequelize instance, got undefined'});
	t.throws(() => multidb({} as unknown as Sequelize, {}), {instanceOf: TypeError, message: 'Expected `sequelize` to be a Sequelize instance, got an object'});
	t.throws(() => multidb({cooldown: 5} as never), {instanceOf: TypeError, message: /^Unknown option `cooldown` in `options`/});
});

test('an instance copied from a routed one defines models and syncs, with no router until multidb() is called on it', async t => {
	const routed = setup(t);
	const db = multidb(routed);
	const {primary} = cluster;
	const copy = new Sequelize(primary.database, primary.username, primary.password, {...(routed as unknown as {options: Options}).options});
	t.teardown(async () => copy.close());
	// Before the fix, define() on the copy threw "Cannot read properties of undefined
	// (reading 'apply')" from a hook entry copied out of routed.options.
	const Thing = copy.define('Thing', {name: DataTypes.STRING}, {tableName: uniqueName('things')});
	await Thing.sync();
	await Thing.drop();
	t.throws(() => multidb.of(copy), {instanceOf: TypeError, message: /^Expected `sequelize` to be an instance with a router, got one without/});
	const copyDb = multidb(copy);
	t.is(multidb.of(copy), copyDb);
	t.is(multidb.of(routed), db);
	t.not(copyDb, db);
	t.true((await answeringServer(copy, cluster)).startsWith('replica'));
	t.is(copyDb.stats().queries, 1);
	t.is(db.stats().queries, 0);
});

test('the afterInit hook form gives each instance created afterwards its own router, copies included', async t => {
	const hook = multidb({shuffle: false, cooldownMs: 1234});
	Sequelize.addHook('afterInit', hook);
	let first: Sequelize;
	let second: Sequelize;
	let copy: Sequelize;
	try {
		first = setup(t);
		second = setup(t);
		const {primary} = cluster;
		copy = new Sequelize(primary.database, primary.username, primary.password, {...(first as unknown as {options: Options}).options});
		t.teardown(async () => copy.close());
	} finally {
		Sequelize.removeHook('afterInit', hook as never);
	}

	const [firstDb, secondDb] = [multidb.of(first), multidb.of(second)];
	t.not(firstDb, secondDb);
	t.not(multidb.of(copy), firstDb);
	copy.define('Thing', {name: DataTypes.STRING});
	t.is(firstDb.options.cooldownMs, 1234);
	t.deepEqual(firstDb.replicas.map(replica => replica.port), cluster.replicas.map(replica => replica.port));
	await answeringServer(first, cluster);
	t.deepEqual([firstDb.stats().queries, secondDb.stats().queries], [1, 0]);
	t.throws(() => multidb(first), {instanceOf: TypeError, message: /already installed.*multidb\.of\(sequelize\)/});
	// Created after the hook was removed: no router.
	const later = setup(t);
	t.throws(() => multidb.of(later), {instanceOf: TypeError});
});

test('the afterInit hook validates its options when it is made, and leaves an instance of another dialect alone with a warning', async t => {
	t.throws(() => multidb({cooldownMs: -1}), {instanceOf: TypeError, message: 'Expected `cooldownMs` to be a finite number >= 0, got -1 (number)'});
	const hook = multidb();
	const warnings: Array<{code?: string; message: string}> = [];
	const onWarning = (warning: Error & {code?: string}) => {
		if (warning.code === 'MULTIDB_NOT_INSTALLED') {
			warnings.push(warning);
		}
	};

	process.on('warning', onWarning);
	t.teardown(() => process.off('warning', onWarning));
	Sequelize.addHook('afterInit', hook);
	try {
		// `dialectModule` stands in for the mysql2 driver, which is never loaded.
		const mysql = new Sequelize('db', 'user', 'password', {dialect: 'mysql', dialectModule: {}, logging: false});
		t.throws(() => multidb.of(mysql), {instanceOf: TypeError});
	} finally {
		Sequelize.removeHook('afterInit', hook as never);
	}

	await new Promise(resolve => setImmediate(resolve));
	t.is(warnings.length, 1);
	t.regex(warnings[0]?.message ?? '', /`postgres` dialect/);
});

test('multidb refuses a dialect other than postgres', t => {
	// `dialectModule` stands in for the mysql2 driver, which is never loaded: no connection is made.
	const sequelize = new Sequelize('db', 'user', 'password', {dialect: 'mysql', dialectModule: {}, logging: false});
	t.throws(() => multidb(sequelize), {instanceOf: TypeError, message: 'Expected `sequelize` to use the `postgres` dialect, got "mysql" (string)'});
});

test('getReplica after close is an error with a code', async t => {
	const sequelize = newSequelize(cluster);
	const db = multidb(sequelize);
	await sequelize.close();
	t.throws(() => db.getReplica(), {instanceOf: MultiDbError, code: 'MULTIDB_CLOSED'} as never);
});

test('a connection that fails while Sequelize is still setting it up does not end the process', async t => {
	const sequelize = setup(t);
	multidb(sequelize);
	const manager = (sequelize as unknown as {connectionManager: {_connect(config: object): Promise<{emit(event: string, error: Error): boolean; end(): Promise<void>}>; config: {replication: {read: object[]}}}}).connectionManager;
	// A real connection, as Sequelize's `connect` returns it, before any pool holds or tags it.
	const connection = await manager._connect(manager.config.replication.read[0]);
	t.teardown(async () => connection.end());
	// Sequelize's own `error` listener hands it to the replication dispatcher, which threw
	// "Cannot read properties of undefined (reading 'destroy')" from the listener.
	t.notThrows(() => connection.emit('error', new Error('the server went away during SET')));
});
