// The forum's operator pages: `/metrics`, the router's OpenTelemetry metrics in
// Prometheus's text format (through OpenTelemetry's Prometheus exporter, no server of its
// own), and `/status`, each server's role, state, lag, last error and reads per second,
// with a live chart of the last minutes (`/status.json` feeds it, polled every second).
// Framework-free: each framework's binding (forum-bindings.ts) routes to these.
import type {IncomingMessage, ServerResponse} from 'node:http';
import {PrometheusExporter} from '@opentelemetry/exporter-prometheus';
import {MeterProvider} from '@opentelemetry/sdk-metrics';
import type {MultiDb} from '../source/index.js';
import {instrument} from '../source/opentelemetry.js';
import {statusPage} from './status-page.js';

/** One second of the history: per server, queries answered and lag. */
export interface StatusSample {
	readonly at: number;
	/** Queries per second answered by each server, by display name. */
	readonly rates: Readonly<Record<string, number>>;
	/** Each standby's lag in ms, by display name. */
	readonly lagMs: Readonly<Record<string, number>>;
}

export interface ServerRow {
	readonly name: string;
	readonly address: string;
	readonly role: string;
	readonly state: string;
	readonly lagMs: number | undefined;
	readonly lastError: string | undefined;
	readonly perSecond: number;
}

/** Five minutes of one-second samples. */
const historyLength = 300;

export interface OperatorPages {
	/** `GET /metrics`: writes the response itself (Prometheus's text format). */
	metrics(request: IncomingMessage, response: ServerResponse): void;
	/** `GET /status.json`. */
	statusJson(): {servers: ServerRow[]; history: readonly StatusSample[]};
	/** `GET /status`: the page's HTML. */
	statusHtml(): string;
	stop(): Promise<void>;
}

export function operatorPages(db: MultiDb, names: ReadonlyMap<number, string>): OperatorPages {
	const exporter = new PrometheusExporter({preventServerStart: true});
	const meterProvider = new MeterProvider({readers: [exporter]});
	const instrumentation = instrument(db, {meterProvider});
	const nameOf = (port: number) => names.get(port) ?? `:${port}`;
	const history: StatusSample[] = [];
	let last = {at: Date.now(), byTarget: db.stats().byTarget};
	// The router counts queries by target: `primary` (whichever server takes the writes) and
	// each other server by `host:port`.
	const sample = () => {
		const now = {at: Date.now(), byTarget: db.stats().byTarget};
		const seconds = Math.max(0.001, (now.at - last.at) / 1000);
		const primary = db.nodes.find(node => node.takesWrites);
		const rates: Record<string, number> = {};
		for (const [target, count] of Object.entries(now.byTarget)) {
			const node = target === 'primary' ? primary : db.nodes.find(each => each.name === target);
			if (node) {
				const name = nameOf(node.port);
				rates[name] = (rates[name] ?? 0) + ((count - (last.byTarget[target] ?? 0)) / seconds);
			}
		}

		// A server out of rotation has no current lag: its last measurement is not drawn on.
		const lagMs = Object.fromEntries(db.nodes.filter(node => node.role === 'standby' && node.lagMs !== undefined && node.state !== 'quarantined').map(node => [nameOf(node.port), node.lagMs ?? 0]));
		history.push({at: now.at, rates, lagMs});
		if (history.length > historyLength) {
			history.shift();
		}

		last = now;
	};

	const timer = setInterval(sample, 1000);
	timer.unref();
	const rows = (): ServerRow[] => db.nodes.map(node => ({
		name: nameOf(node.port),
		address: node.name,
		role: node.takesWrites ? 'primary' : (node.role === 'standby' ? 'replica' : 'primary (not taking writes)'),
		state: node.takesWrites ? 'writes' : node.state,
		lagMs: node.state === 'quarantined' ? undefined : node.lagMs,
		lastError: node.state === 'healthy' || node.takesWrites ? undefined : node.lastError,
		perSecond: Math.round(history.at(-1)?.rates[nameOf(node.port)] ?? 0),
	}));

	return {
		metrics(request, response) {
			exporter.getMetricsRequestHandler(request, response);
		},
		statusJson: () => ({servers: rows(), history}),
		statusHtml: () => statusPage(rows()),
		async stop() {
			clearInterval(timer);
			instrumentation.stop();
			await meterProvider.shutdown();
		},
	};
}
