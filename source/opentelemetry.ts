// `sequelize-multidb/opentelemetry`: a router's routing, failovers, server states, lag and
// pools as OpenTelemetry metrics, and its routing decisions in traces. Only this entry
// point imports `@opentelemetry/api` (an optional peer dependency): an application that
// never calls `instrument` never loads it, and its router does no telemetry work at all.
import {context, metrics, SpanKind, SpanStatusCode, trace, type Attributes, type MeterProvider, type Span, type TracerProvider} from '@opentelemetry/api';
import type {MultiDbEvents} from './events.js';
import {observeKey, type MultiDb} from './multidb.js';
import type {ObservedPool} from './observer.js';
import type {ReplicaInfo} from './replica.js';
import type {RouteReason} from './stats.js';
import {RouterMetrics} from './telemetry-metrics.js';
import {checkBoolean, checkOneOf, checkOptionsObject, describe, invalid, isMultiDb} from './validate.js';

export interface InstrumentOptions {
	/**
	 * Where the metrics go.
	 * @default the global meter provider (`metrics.getMeterProvider()`)
	 */
	readonly meterProvider?: MeterProvider;
	/**
	 * Makes the `multidb.query` spans of `traces: 'spans'`.
	 * @default the global tracer provider (`trace.getTracerProvider()`)
	 */
	readonly tracerProvider?: TracerProvider;
	/**
	 * How routing shows in traces. `events`: every routed query, failover and fallback as an
	 * event on the span active where the query was made (none where no span is active);
	 * `failovers`: only the failovers and fallbacks; `spans`: a `multidb.query` client span
	 * per query, with where it ran and why as attributes and its failovers as events; `off`.
	 * @default 'events'
	 */
	readonly traces?: 'events' | 'failovers' | 'spans' | 'off';
	/**
	 * Record `db.client.connection.wait_time`, the wait of every acquisition of a connection.
	 * It is the instrumentation's largest cost per query (OpenTelemetry's SDK hashes a
	 * histogram's attributes on every record): turn it off to save it where pool waits are
	 * not a question (`db.client.connection.pending_requests` still shows a queue).
	 * @default true
	 */
	readonly connectionWaitTime?: boolean;
}

/** What `instrument` returns. */
export interface Instrumentation {
	/** Stops recording: the router's pools and query are unwrapped, and its gauges stop reporting. */
	stop(): void;
}

const scopeName = 'sequelize-multidb';
/** Reasons that mean "no replica could take this read", recorded as `multidb.fallback` too. */
const fallbackReasons = new Set<RouteReason>(['fallback', 'last-resort']);
const eventNames: ReadonlyArray<keyof MultiDbEvents> = ['replicaDown', 'replicaUp', 'replicaLagging', 'replicaCaughtUp', 'fallbackToPrimary', 'primaryChanged', 'splitBrain'];

/**
 * Reports the router's work through OpenTelemetry until `stop()`: metrics to
 * `meterProvider`, routing decisions to traces (see `traces`). One instrumentation per
 * router at a time.
 */
export function instrument(db: MultiDb, options?: InstrumentOptions): Instrumentation {
	if (!isMultiDb(db)) {
		throw new TypeError(`Expected \`db\` to be the router \`multidb()\` returned, got ${describe(db)}`);
	}

	const given = checkOptionsObject('options', options, ['meterProvider', 'tracerProvider', 'traces', 'connectionWaitTime']);
	const meterProvider = checkProvider('meterProvider', given.meterProvider, 'getMeter') as MeterProvider | undefined ?? metrics.getMeterProvider();
	const tracerProvider = checkProvider('tracerProvider', given.tracerProvider, 'getTracer') as TracerProvider | undefined ?? trace.getTracerProvider();
	const traces = given.traces ?? 'events';
	checkOneOf('traces', traces, ['events', 'failovers', 'spans', 'off']);
	const connectionWaitTime = checkBoolean('connectionWaitTime', given.connectionWaitTime ?? true);

	// The metrics need the observed pools, so they are made right after attaching (in the
	// same turn: no query is counted in between).
	const sink: {recorder?: RouterMetrics} = {};
	const observed = db[observeKey]({
		routed(target, reason) {
			const {recorder} = sink;
			if (recorder) {
				const attributes = recorder.routeAttributes(target, reason);
				recorder.routed(attributes);
				if (traces !== 'off') {
					traceRoute(attributes, reason);
				}
			}
		},
		failedOver(kind, from) {
			const {recorder} = sink;
			if (recorder) {
				const attributes = recorder.failoverAttributes(kind, from);
				recorder.failedOver(attributes);
				if (traces !== 'off') {
					activeSpan()?.addEvent('multidb.failover', attributes);
				}
			}
		},
		...(connectionWaitTime ? {waited(pool: ObservedPool, seconds: number) {
			sink.recorder?.waited(pool, seconds);
		}} : {}),
	});

	const servers = new Map(observed.pools.filter(pool => pool.use === 'read').map(pool => [pool.server().name, pool.server()]));
	const configured = configuredServer(db);
	const resolve = (target: string): ReplicaInfo | undefined => target === 'primary' ? observed.primary() ?? configured : servers.get(target);
	const recorder = new RouterMetrics(meterProvider.getMeter(scopeName), db, observed, resolve);
	sink.recorder = recorder;

	// Each health event counted, with the server it names.
	const listeners = eventNames.map(name => {
		const listener = (event: Record<string, unknown>) => {
			const named = event.replica ?? event.node ?? event.to;
			recorder.event(name, typeof named === 'string' ? servers.get(named) : undefined);
		};

		db.on(name, listener);
		return () => db.off(name, listener);
	});

	/** The `multidb.query` spans (`traces: 'spans'`): only those get a query's attributes. */
	const querySpansMade = new WeakSet<Span>();
	const unwrapQuery = traces === 'spans' ? querySpans(db, tracerProvider, querySpansMade) : undefined;
	return {
		stop() {
			observed.detach();
			recorder.stop();
			unwrapQuery?.();
			for (const remove of listeners) {
				remove();
			}
		},
	};

	function traceRoute(attributes: Attributes, reason: RouteReason): void {
		const span = activeSpan();
		if (!span) {
			return;
		}

		if (querySpansMade.has(span)) {
			// The query's own span: the last attempt's target and reason win.
			span.setAttributes(attributes);
		} else if (traces !== 'failovers') {
			// Also in 'spans' mode, for a query that did not go through `sequelize.query`
			// (`getReplica().query()`): an event, never attributes on someone else's span.
			span.addEvent('multidb.route', attributes);
		}

		if (fallbackReasons.has(reason)) {
			span.addEvent('multidb.fallback', attributes);
		}
	}
}

function activeSpan(): Span | undefined {
	const span = trace.getActiveSpan();
	return span?.isRecording() ? span : undefined;
}

/** Gives every query of the instance a `multidb.query` span; returns what removes it. */
function querySpans(db: MultiDb, provider: TracerProvider, made: WeakSet<Span>): () => void {
	const tracer = provider.getTracer(scopeName);
	const {sequelize} = db;
	// The router's query, an own property of the instance since `multidb()`.
	const routed = Object.getOwnPropertyDescriptor(sequelize, 'query');
	const query = routed?.value as (...arguments_: unknown[]) => Promise<unknown>;
	const traced = function (this: unknown, ...arguments_: unknown[]): Promise<unknown> {
		const span = tracer.startSpan('multidb.query', {kind: SpanKind.CLIENT, attributes: {'db.system.name': 'postgresql'}});
		made.add(span);
		const running = context.with(trace.setSpan(context.active(), span), () => query.apply(this, arguments_));
		return running.then(result => {
			span.end();
			return result;
		}, (error: unknown) => {
			span.setStatus({code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error)});
			span.setAttribute('error.type', error instanceof Error ? error.name : 'unknown');
			span.end();
			throw error;
		});
	};

	Object.defineProperty(sequelize, 'query', {value: traced, writable: true, configurable: true});
	return () => {
		if (Object.getOwnPropertyDescriptor(sequelize, 'query')?.value === traced && routed) {
			Object.defineProperty(sequelize, 'query', routed);
		}
	};
}

/** Where Sequelize's queries go when no replica is configured (the pools are then not observed). */
function configuredServer(db: MultiDb): ReplicaInfo {
	const config = db.sequelize.config as {host?: string; port?: number | string; database?: string; username?: string};
	const host = config.host ?? 'localhost';
	const port = Number(config.port ?? 5432);
	return {name: `${host}:${port}`, host, port, database: config.database, username: config.username};
}

function checkProvider(name: string, value: unknown, method: string): unknown {
	if (value === undefined) {
		return undefined;
	}

	if (typeof value !== 'object' || value === null || typeof (value as Record<string, unknown>)[method] !== 'function') {
		throw invalid(name, `an OpenTelemetry ${name === 'meterProvider' ? 'MeterProvider' : 'TracerProvider'} (with \`${method}()\`)`, value);
	}

	return value;
}
