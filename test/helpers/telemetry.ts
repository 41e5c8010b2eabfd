// OpenTelemetry's own SDK, in memory: a meter provider whose metrics are exported to an
// in-memory exporter on demand, and a tracer provider whose spans end up in an in-memory
// span exporter. Nothing is mocked: the router's instruments go through the real SDK.
import {context, type Attributes} from '@opentelemetry/api';
import {AsyncLocalStorageContextManager} from '@opentelemetry/context-async-hooks';
import {AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint, type Histogram} from '@opentelemetry/sdk-metrics';
import {BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan} from '@opentelemetry/sdk-trace-base';

// Spans follow async work (the active span of a request reaches its queries) only with a
// context manager, as in any instrumented application.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

export interface Point {
	readonly attributes: Attributes;
	readonly value: number;
	/** Histograms only: how many values were recorded. */
	readonly count?: number;
}

export interface InMemoryTelemetry {
	readonly meterProvider: MeterProvider;
	readonly tracerProvider: BasicTracerProvider;
	/** Collects now and returns each metric's points (a histogram's value is its sum), by name. */
	collect(): Promise<Map<string, Point[]>>;
	/** The spans ended so far. */
	spans(): ReadableSpan[];
}

export function inMemoryTelemetry(t: {teardown: (fn: () => Promise<void>) => void}): InMemoryTelemetry {
	const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
	// The interval is long: metrics are exported when a test asks (`forceFlush`).
	const reader = new PeriodicExportingMetricReader({exporter, exportIntervalMillis: 3_600_000});
	const meterProvider = new MeterProvider({readers: [reader]});
	const spanExporter = new InMemorySpanExporter();
	const tracerProvider = new BasicTracerProvider({spanProcessors: [new SimpleSpanProcessor(spanExporter)]});
	t.teardown(async () => {
		await meterProvider.shutdown();
		await tracerProvider.shutdown();
	});
	return {
		meterProvider,
		tracerProvider,
		async collect() {
			exporter.reset();
			await reader.forceFlush();
			const byName = new Map<string, Point[]>();
			for (const resource of exporter.getMetrics()) {
				for (const scope of resource.scopeMetrics) {
					for (const metric of scope.metrics) {
						byName.set(metric.descriptor.name, (metric.dataPoints as Array<DataPoint<number | Histogram>>).map(point => typeof point.value === 'number'
							? {attributes: point.attributes, value: point.value}
							: {attributes: point.attributes, value: point.value.sum ?? 0, count: point.value.count}));
					}
				}
			}

			return byName;
		},
		spans: () => spanExporter.getFinishedSpans(),
	};
}

/** The points of `metric` whose attributes include all of `match`. */
export function pointsOf(metrics: Map<string, Point[]>, metric: string, match: Attributes = {}): Point[] {
	return (metrics.get(metric) ?? []).filter(point => Object.entries(match).every(([key, value]) => point.attributes[key] === value));
}

/** The sum of the values of `metric`'s points that match. */
export function total(metrics: Map<string, Point[]>, metric: string, match: Attributes = {}): number {
	return pointsOf(metrics, metric, match).reduce((sum, point) => sum + point.value, 0);
}
