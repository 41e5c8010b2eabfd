// The OpenTelemetry sides of bench/telemetry.ts: the SDK as an application would set it up
// (a meter provider exporting every second, a tracer provider, an AsyncLocalStorage context
// manager), in memory so that no network is measured; the router instrumented or not.
import {context} from '@opentelemetry/api';
import {AsyncLocalStorageContextManager} from '@opentelemetry/context-async-hooks';
import {InMemoryMetricExporter, AggregationTemporality, MeterProvider, PeriodicExportingMetricReader} from '@opentelemetry/sdk-metrics';
import {BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor} from '@opentelemetry/sdk-trace-base';
import type {MultiDb} from '../source/index.js';
import {instrument} from '../source/opentelemetry.js';

export function setUpSdk(db: MultiDb, instrumented: boolean): {meterProvider: MeterProvider; tracerProvider: BasicTracerProvider} {
	context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
	const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
	const reader = new PeriodicExportingMetricReader({exporter, exportIntervalMillis: 1000});
	// Exported batches are dropped at once: only their making is measured.
	setInterval(() => {
		exporter.reset();
	}, 5000).unref();
	const meterProvider = new MeterProvider({readers: [reader]});
	const tracerProvider = new BasicTracerProvider({spanProcessors: [new SimpleSpanProcessor(new InMemorySpanExporter())]});
	// Something must be exported each second, as in an application with other instruments.
	meterProvider.getMeter('application').createObservableGauge('application.heartbeat').addCallback(result => {
		result.observe(1);
	});
	if (instrumented) {
		instrument(db, {meterProvider, tracerProvider});
	}

	return {meterProvider, tracerProvider};
}
