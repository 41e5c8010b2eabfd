// The router's OpenTelemetry instruments: counters of routed queries, failovers and health
// events; gauges of each server's state, lag and reads in flight, and of each pool's
// connections, read when the SDK collects (nothing is sampled in between); a histogram of
// the wait for a connection. The README's "Metrics" table lists them all.
//
// Queries and failovers are counted here, per attribute set, and reported as observable
// counters at collection: the SDK's synchronous `add` hashes its attributes on every call,
// which on a fast read costs more than the router's whole routing decision.
import {ValueType, type Attributes, type BatchObservableCallback, type Counter, type Histogram, type Meter} from '@opentelemetry/api';
import type {FailureKind} from './failure.js';
import type {MultiDb, NodeStatus} from './multidb.js';
import type {ObservedPool, ObservedRouter} from './observer.js';
import type {ReplicaInfo} from './replica.js';
import type {RouteReason} from './stats.js';
import {AttributeCache, serverAttributes} from './telemetry-attributes.js';

/** Every state a server can be in (`db.nodes[].state`): each is reported, 1 for the current one. */
const states: ReadonlyArray<NodeStatus['state']> = ['healthy', 'suspect', 'quarantined', 'lagging', 'promoted', 'primary'];

/** OpenTelemetry's recommended buckets for `db.client.connection.wait_time`, in seconds. */
const waitBuckets = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10];

export class RouterMetrics {
	/** Counts by attribute set (each a cached, frozen object: identity is the key). */
	readonly #queries = new Map<Attributes, number>();
	readonly #failovers = new Map<Attributes, number>();
	readonly #events: Counter;
	readonly #wait: Histogram;
	readonly #routeAttributes: AttributeCache;
	readonly #failoverAttributes: AttributeCache;
	readonly #meter: Meter;
	readonly #collect: BatchObservableCallback;
	readonly #observables;

	constructor(meter: Meter, db: MultiDb, observed: ObservedRouter, resolve: (target: string) => ReplicaInfo | undefined) {
		this.#meter = meter;
		const queries = meter.createObservableCounter('multidb.queries', {description: 'Queries the router sent, by where they ran (`multidb.target`) and why (`multidb.reason`)', unit: '{query}', valueType: ValueType.INT});
		const failovers = meter.createObservableCounter('multidb.failovers', {description: 'Reads retried elsewhere after a failure of their server, by kind of failure and the server left', unit: '{failover}', valueType: ValueType.INT});
		this.#events = meter.createCounter('multidb.health.events', {description: 'Health and topology events of the router (`replicaDown`, `primaryChanged`, ...), by event', unit: '{event}', valueType: ValueType.INT});
		this.#wait = meter.createHistogram('db.client.connection.wait_time', {description: 'The time it took to obtain a connection from a pool (a new connection\'s connect included)', unit: 's', advice: {explicitBucketBoundaries: waitBuckets}});
		this.#routeAttributes = new AttributeCache(resolve, reason => ({'multidb.reason': reason}));
		this.#failoverAttributes = new AttributeCache(resolve, kind => ({'multidb.failure.kind': kind}));
		const state = meter.createObservableGauge('multidb.server.state', {description: 'Each server\'s state: 1 for the state it is in, 0 for the others (`multidb.server.state`)', unit: '{state}', valueType: ValueType.INT});
		const lagTime = meter.createObservableGauge('multidb.replica.lag.time', {description: 'How far each standby\'s replay is behind the primary, in time, as the monitor last measured it', unit: 's', valueType: ValueType.DOUBLE});
		const lagSize = meter.createObservableGauge('multidb.replica.lag.size', {description: 'How far each standby\'s replay is behind the primary\'s WAL, in bytes, as the monitor last measured it', unit: 'By', valueType: ValueType.INT});
		const inFlight = meter.createObservableGauge('multidb.reads.in_flight', {description: 'Reads of this process running on each server that does not take the writes', unit: '{read}', valueType: ValueType.INT});
		const connections = meter.createObservableUpDownCounter('db.client.connection.count', {description: 'Connections of each pool, by state (`used` or `idle`)', unit: '{connection}', valueType: ValueType.INT});
		const pending = meter.createObservableUpDownCounter('db.client.connection.pending_requests', {description: 'Acquisitions waiting for a connection, per pool', unit: '{request}', valueType: ValueType.INT});
		this.#observables = [queries, failovers, state, lagTime, lagSize, inFlight, connections, pending];
		// The pool metrics carry the pool's name only, as the semantic conventions have it: the
		// SDK hashes a histogram's attributes on every record, about 0.5 µs per attribute.
		const poolAttributes = new Map(observed.pools.map(pool => [pool, Object.freeze({'db.client.connection.pool.name': pool.name})]));
		const attributesOf = (pool: ObservedPool): Attributes => poolAttributes.get(pool) ?? {'db.client.connection.pool.name': pool.name};
		const readPoolOf = new Map(observed.pools.filter(pool => pool.use === 'read').map(pool => [pool.server().name, pool]));

		this.#collect = result => {
			for (const [attributes, count] of this.#queries) {
				result.observe(queries, count, attributes);
			}

			for (const [attributes, count] of this.#failovers) {
				result.observe(failovers, count, attributes);
			}

			for (const node of db.nodes) {
				const server = serverAttributes(node);
				for (const each of states) {
					result.observe(state, each === node.state ? 1 : 0, {...server, 'multidb.server.state': each});
				}

				if (node.role === 'standby' && node.lagMs !== undefined) {
					result.observe(lagTime, node.lagMs / 1000, server);
				}

				if (node.role === 'standby' && node.lagBytes !== undefined) {
					result.observe(lagSize, node.lagBytes, server);
				}

				const pool = readPoolOf.get(node.name);
				if (pool && !node.takesWrites) {
					result.observe(inFlight, pool.counts().used, server);
				}
			}

			for (const pool of observed.pools) {
				const attributes = attributesOf(pool);
				const counts = pool.counts();
				result.observe(connections, counts.used, {...attributes, 'db.client.connection.state': 'used'});
				result.observe(connections, counts.idle, {...attributes, 'db.client.connection.state': 'idle'});
				result.observe(pending, counts.pending, attributes);
			}
		};

		meter.addBatchObservableCallback(this.#collect, this.#observables);
		this.waited = (pool, seconds) => {
			this.#wait.record(seconds, attributesOf(pool));
		};
	}

	readonly waited: (pool: ObservedPool, seconds: number) => void;

	routeAttributes(target: string, reason: RouteReason): Attributes {
		return this.#routeAttributes.get(target, reason);
	}

	failoverAttributes(kind: FailureKind, from: string): Attributes {
		return this.#failoverAttributes.get(from, kind);
	}

	routed(attributes: Attributes): void {
		this.#queries.set(attributes, (this.#queries.get(attributes) ?? 0) + 1);
	}

	failedOver(attributes: Attributes): void {
		this.#failovers.set(attributes, (this.#failovers.get(attributes) ?? 0) + 1);
	}

	event(name: string, server: ReplicaInfo | undefined): void {
		this.#events.add(1, {...(server ? serverAttributes(server) : {}), 'multidb.event': name});
	}

	stop(): void {
		this.#meter.removeBatchObservableCallback(this.#collect, this.#observables);
	}
}
