// The OpenTelemetry instrumentation, through the real SDK (in-memory exporters) on the real
// cluster: reads split over the replicas in the counters, a lagging replica's lag gauge, a
// stopped replica as failovers and a state change, routing in traces.
import {setTimeout as delay} from 'node:timers/promises';
import test from 'ava';
import {QueryTypes} from 'sequelize';
import {multidb} from '../source/index.js';
import {instrument} from '../source/opentelemetry.js';
import {eventually, ownCluster, routerOn, steadyReads} from './helpers/faults.js';
import {newSequelize, uniqueName} from './helpers/sequelize.js';
import {sharedCluster, type ServerEndpoint} from './helpers/shared-cluster.js';
import {inMemoryTelemetry, pointsOf, total} from './helpers/telemetry.js';

const cluster = await sharedCluster();
const at = (server: ServerEndpoint) => ({'server.address': server.host, 'server.port': server.port});
const selectOne = {type: QueryTypes.SELECT, plain: true} as const;

test('reads split over the replicas show in multidb.queries, by server and reason, with pool and state gauges', async t => {
	const telemetry = inMemoryTelemetry(t);
	const sequelize = newSequelize(cluster);
	t.teardown(async () => sequelize.close());
	const db = multidb(sequelize, {shuffle: false, monitorIntervalMs: 0});
	const instrumentation = instrument(db, {meterProvider: telemetry.meterProvider, tracerProvider: telemetry.tracerProvider});
	t.teardown(() => {
		instrumentation.stop();
	});

	for (let index = 0; index < 20; index++) {
		await sequelize.query('SELECT 1 AS one', selectOne);
	}

	// An untyped raw query may write: it runs on the primary.
	await sequelize.query('SELECT 1 AS one');
	const metrics = await telemetry.collect();
	for (const replica of cluster.replicas) {
		t.is(total(metrics, 'multidb.queries', {...at(replica), 'multidb.reason': 'round-robin', 'db.system.name': 'postgresql'}), 10, replica.name);
		t.is(total(metrics, 'multidb.server.state', {...at(replica), 'multidb.server.state': 'healthy'}), 1);
		t.is(total(metrics, 'multidb.server.state', at(replica)), 1, 'one state at a time');
		const pool = {'db.client.connection.pool.name': `sequelize-multidb:${replica.host}:${replica.port}:read`};
		t.is(pointsOf(metrics, 'db.client.connection.wait_time', pool)[0]?.count, 10);
		t.true(total(metrics, 'db.client.connection.wait_time', pool) > 0);
		t.is(total(metrics, 'db.client.connection.count', {...pool, 'db.client.connection.state': 'idle'}), 1);
		t.is(total(metrics, 'multidb.reads.in_flight', at(replica)), 0);
	}

	t.is(total(metrics, 'multidb.queries', {...at(cluster.primary), 'multidb.target': 'primary', 'multidb.reason': 'write'}), 1);
	t.is(total(metrics, 'multidb.server.state', {...at(cluster.primary), 'multidb.server.state': 'primary'}), 1);
	t.is(pointsOf(metrics, 'db.client.connection.count', {'db.client.connection.pool.name': 'sequelize-multidb:write'}).length, 2);
	t.deepEqual(metrics.get('multidb.failovers') ?? [], []);
	// The numbers agree with the router's own.
	t.is(total(metrics, 'multidb.queries'), db.stats().queries);

	// Stopped, it counts nothing more.
	instrumentation.stop();
	await sequelize.query('SELECT 1 AS one', selectOne);
	const after = await telemetry.collect();
	t.is(total(after, 'multidb.queries'), 21);
});

test('with a span active, each routed query is a multidb.route event on it; with traces: \'spans\', each query is a span of its own', async t => {
	const telemetry = inMemoryTelemetry(t);
	const sequelize = newSequelize(cluster);
	t.teardown(async () => sequelize.close());
	const db = multidb(sequelize, {shuffle: false, monitorIntervalMs: 0});
	let instrumentation = instrument(db, {meterProvider: telemetry.meterProvider, tracerProvider: telemetry.tracerProvider});
	const tracer = telemetry.tracerProvider.getTracer('test');
	await tracer.startActiveSpan('GET /posts', async span => {
		await sequelize.query('SELECT 1 AS one', selectOne);
		await sequelize.query('SELECT 1 AS one', selectOne);
		await sequelize.query('SELECT 1 AS one');
		span.end();
	});
	const [request] = telemetry.spans();
	t.deepEqual(request.events.map(event => [event.name, event.attributes?.['multidb.target'], event.attributes?.['multidb.reason']]), [
		['multidb.route', `${cluster.replicas[0].host}:${cluster.replicas[0].port}`, 'round-robin'],
		['multidb.route', `${cluster.replicas[1].host}:${cluster.replicas[1].port}`, 'round-robin'],
		['multidb.route', 'primary', 'write'],
	]);
	t.like(request.events[2].attributes, at(cluster.primary));

	instrumentation.stop();
	instrumentation = instrument(db, {meterProvider: telemetry.meterProvider, tracerProvider: telemetry.tracerProvider, traces: 'spans'});
	t.teardown(() => {
		instrumentation.stop();
	});
	await tracer.startActiveSpan('job', async span => {
		await sequelize.query('SELECT 1 AS one', selectOne);
		span.end();
	});
	const query = telemetry.spans().find(span => span.name === 'multidb.query');
	const job = telemetry.spans().find(span => span.name === 'job');
	t.truthy(query);
	t.is(query?.parentSpanContext?.spanId, job?.spanContext().spanId);
	t.like(query?.attributes, {'db.system.name': 'postgresql', 'multidb.reason': 'round-robin', ...at(cluster.replicas[0])});
	t.deepEqual(job?.events, []);

	// `getReplica().query()` does not go through `sequelize.query`: an event on the caller's
	// span, whose own attributes are left alone.
	await tracer.startActiveSpan('report', async span => {
		await db.getReplica().query('SELECT 1 AS one');
		span.end();
	});
	const report = telemetry.spans().find(span => span.name === 'report');
	t.deepEqual(report?.events.map(event => [event.name, event.attributes?.['multidb.reason']]), [['multidb.route', 'chosen-replica']]);
	t.is(report?.attributes['multidb.reason'], undefined);
});

test('a lagging replica\'s lag gauges rise while the primary is written to', async t => {
	const telemetry = inMemoryTelemetry(t);
	const lagging = cluster.replicas[1];
	const sequelize = newSequelize(cluster, {replicas: [lagging]});
	t.teardown(async () => sequelize.close());
	const db = multidb(sequelize, {monitorIntervalMs: 100});
	const instrumentation = instrument(db, {meterProvider: telemetry.meterProvider});
	t.teardown(() => {
		instrumentation.stop();
	});
	const table = uniqueName('otel_lag');
	await sequelize.query(`CREATE TABLE ${table} (id serial PRIMARY KEY, at timestamptz DEFAULT now())`);
	t.teardown(async () => {
		await newSequelize(cluster).query(`DROP TABLE IF EXISTS ${table}`).catch(() => undefined);
	});

	const writes = {on: true};
	const writer = (async () => {
		while (writes.on) {
			await sequelize.query(`INSERT INTO ${table} DEFAULT VALUES`);
			await delay(20);
		}
	})();
	let seconds = 0;
	let bytes = 0;
	const rose = await eventually(async () => {
		const metrics = await telemetry.collect();
		seconds = total(metrics, 'multidb.replica.lag.time', at(lagging));
		bytes = total(metrics, 'multidb.replica.lag.size', at(lagging));
		return seconds >= 0.5 && bytes > 0;
	}, 15_000, 200);
	writes.on = false;
	await writer;
	t.true(rose, `lag ${seconds} s, ${bytes} bytes`);
	// The replica replays 1.5 s late: its lag is about that, not more.
	t.true(seconds < 10, `lag ${seconds} s`);
});

test('a stopped replica shows as failovers, a quarantined state and a replicaDown event, and its reads move to the other', async t => {
	const faults = await ownCluster(t);
	const telemetry = inMemoryTelemetry(t);
	const {sequelize, db} = routerOn(t, faults, {readTimeoutMs: 2000, connectTimeoutMs: 1000});
	const instrumentation = instrument(db, {meterProvider: telemetry.meterProvider, tracerProvider: telemetry.tracerProvider, traces: 'spans'});
	t.teardown(() => {
		instrumentation.stop();
	});
	const [stopped, survivor] = faults.endpoints.replicas;
	const load = steadyReads(sequelize, faults.endpoints);
	await delay(300);
	const before = await telemetry.collect();
	await faults.cluster.replicas[0].stop('immediate');
	t.true(await eventually(() => db.replicas.find(replica => replica.port === stopped.port)?.state === 'quarantined', 10_000));
	await delay(300);
	const reads = await load.stop();
	const metrics = await telemetry.collect();

	t.true(total(metrics, 'multidb.failovers', at(stopped)) >= 1, JSON.stringify(metrics.get('multidb.failovers')));
	t.is(total(metrics, 'multidb.failovers', at(survivor)), 0);
	t.is(total(metrics, 'multidb.server.state', {...at(stopped), 'multidb.server.state': 'quarantined'}), 1);
	t.is(total(metrics, 'multidb.server.state', {...at(stopped), 'multidb.server.state': 'healthy'}), 0);
	t.is(total(metrics, 'multidb.health.events', {...at(stopped), 'multidb.event': 'replicaDown'}), 1);
	// Its reads moved: the survivor answered more reads since the stop than before it.
	const survivorReads = (points: typeof metrics) => total(points, 'multidb.queries', at(survivor));
	t.true(survivorReads(metrics) > survivorReads(before));
	t.is(reads.failed, 0, reads.errors.join('\n'));

	// The read that failed over has the failover as an event on its span.
	const failedOver = telemetry.spans().find(span => span.events.some(event => event.name === 'multidb.failover'));
	t.truthy(failedOver);
	const failover = failedOver?.events.find(event => event.name === 'multidb.failover')?.attributes;
	t.like(failover, at(stopped));
	t.true(['connection', 'timeout'].includes(String(failover?.['multidb.failure.kind'])));
	t.like(failedOver?.attributes, at(survivor));
});

test('after a promotion, writes count against the new primary\'s address, and the change is counted and shown as its state', async t => {
	const faults = await ownCluster(t);
	const telemetry = inMemoryTelemetry(t);
	const {sequelize, db} = routerOn(t, faults, {monitorIntervalMs: 250});
	const instrumentation = instrument(db, {meterProvider: telemetry.meterProvider});
	t.teardown(() => {
		instrumentation.stop();
	});
	const [oldPrimary, promoted] = [faults.endpoints.primary, faults.endpoints.replicas[0]];
	await sequelize.query('CREATE TABLE entries (id serial PRIMARY KEY)');
	await faults.cluster.waitForReplay();
	await faults.cluster.primary.stop('immediate');
	await faults.cluster.replicas[0].promote();
	t.true(await eventually(async () => sequelize.query('INSERT INTO entries DEFAULT VALUES').then(() => true, () => false), 15_000, 50));

	const metrics = await telemetry.collect();
	const writes = {'multidb.target': 'primary', 'multidb.reason': 'write'};
	// The CREATE TABLE (and inserts that failed while it was down) on the old primary, the
	// INSERT that succeeded on the new one: two series of `primary`.
	t.true(total(metrics, 'multidb.queries', {...writes, ...at(oldPrimary)}) >= 1);
	// At least the one that succeeded (an attempt at the very switch may have failed there, and
	// a failed query is counted where it ran).
	t.true(total(metrics, 'multidb.queries', {...writes, ...at(promoted)}) >= 1);
	// The change is counted with the new primary's address (and with no other).
	const changes = pointsOf(metrics, 'multidb.health.events', {'multidb.event': 'primaryChanged'});
	t.true(changes.length > 0 && changes.every(point => point.attributes['server.port'] === promoted.port), JSON.stringify(changes));
	t.is(total(metrics, 'multidb.server.state', {'multidb.server.state': 'primary', ...at(promoted)}), 1);
	t.is(total(metrics, 'multidb.server.state', {'multidb.server.state': 'quarantined', ...at(oldPrimary)}), 1);
	// The write pool follows the primary: its connection now goes to the promoted server.
	t.true(total(metrics, 'db.client.connection.count', {'db.client.connection.pool.name': 'sequelize-multidb:write'}) >= 1);
});

test('instrument rejects bad arguments with errors that name them, and one router takes one instrumentation at a time', t => {
	const sequelize = newSequelize(cluster);
	t.teardown(async () => sequelize.close());
	const db = multidb(sequelize, {monitorIntervalMs: 0});
	t.throws(() => instrument({} as never), {message: /Expected `db` to be the router `multidb\(\)` returned, got an object/});
	t.throws(() => instrument(db, {meterProvider: {} as never}), {message: /`meterProvider`.*MeterProvider/});
	t.throws(() => instrument(db, {tracerProvider: 42 as never}), {message: /`tracerProvider`.*TracerProvider/});
	t.throws(() => instrument(db, {traces: 'all' as never}), {message: /`traces`/});
	t.throws(() => instrument(db, {meter: 1} as never), {message: /Unknown option `meter`/});
	t.throws(() => instrument(db, {connectionWaitTime: 'yes' as never}), {message: /Expected `connectionWaitTime` to be a boolean/});
	const first = instrument(db);
	t.throws(() => instrument(db), {message: /already instrumented/});
	first.stop();
	instrument(db).stop();
});

test('with connectionWaitTime: false, the pools are not wrapped and no wait is recorded', async t => {
	const telemetry = inMemoryTelemetry(t);
	const sequelize = newSequelize(cluster);
	t.teardown(async () => sequelize.close());
	const db = multidb(sequelize, {monitorIntervalMs: 0});
	const instrumentation = instrument(db, {meterProvider: telemetry.meterProvider, connectionWaitTime: false});
	t.teardown(() => {
		instrumentation.stop();
	});
	await sequelize.query('SELECT 1 AS one', selectOne);
	const metrics = await telemetry.collect();
	t.is(total(metrics, 'multidb.queries'), 1);
	t.deepEqual(pointsOf(metrics, 'db.client.connection.wait_time'), []);
	t.true(pointsOf(metrics, 'db.client.connection.count').length > 0);
});

test('without replicas, queries are counted against the configured server', async t => {
	const telemetry = inMemoryTelemetry(t);
	const sequelize = newSequelize(cluster, {replicas: false});
	t.teardown(async () => sequelize.close());
	const db = multidb(sequelize);
	const instrumentation = instrument(db, {meterProvider: telemetry.meterProvider});
	t.teardown(() => {
		instrumentation.stop();
	});
	await sequelize.query('SELECT 1 AS one', selectOne);
	const metrics = await telemetry.collect();
	t.is(total(metrics, 'multidb.queries', {...at(cluster.primary), 'multidb.reason': 'no-replicas'}), 1);
});
