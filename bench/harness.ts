// What every benchmark shares: the local cluster, Sequelize instances configured alike for
// the router and for Sequelize's own replication, timing, and summaries (median and spread,
// never a single run).
import os from 'node:os';
import {QueryTypes, type Options, type Sequelize} from 'sequelize';
import {endpointsOf, LocalCluster, newSequelize, type ClusterEndpoints, type ClusterOptions, type ServerEndpoint} from '../scripts/local-cluster/index.js';

export interface BenchCluster {
	readonly local: LocalCluster;
	readonly endpoints: ClusterEndpoints;
	/** Server names by port: primary, replica1, replica2. */
	readonly names: ReadonlyMap<number, string>;
	connect(options?: Options): Sequelize;
	/** Like `connect`, with only these replicas in `replication.read`. */
	connectTo(replicas: readonly ServerEndpoint[], options?: Options): Sequelize;
	stop(): Promise<void>;
}

export async function startBenchCluster(options?: ClusterOptions): Promise<BenchCluster> {
	const local = await LocalCluster.start(options);
	const endpoints = endpointsOf(local);
	const connectTo = (replicas: readonly ServerEndpoint[], overrides: Options = {}) => newSequelize(endpoints, {pool: {max: 10}, ...overrides, replicas});
	return {
		local,
		endpoints,
		names: new Map([endpoints.primary, ...endpoints.replicas].map(server => [server.port, server.name])),
		connect: (overrides = {}) => connectTo(endpoints.replicas, overrides),
		connectTo,
		stop: async () => local.stop(),
	};
}

/** Asks the server that answers a typed read for its port. */
export async function whoAnswers(sequelize: Sequelize): Promise<number> {
	const row = await sequelize.query<{port: number}>('SELECT inet_server_port() AS port', {type: QueryTypes.SELECT, plain: true});
	return row?.port ?? 0;
}

export function median(values: readonly number[]): number {
	const sorted = [...values].sort((a, b) => a - b);
	const middle = Math.floor(sorted.length / 2);
	return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export function percentile(values: readonly number[], fraction: number): number {
	const sorted = [...values].sort((a, b) => a - b);
	return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
}

/** `median (min–max)` of several runs. */
export function spread(values: readonly number[], digits = 0): string {
	const format = (value: number) => value.toFixed(digits);
	return `${format(median(values))} (${format(Math.min(...values))}–${format(Math.max(...values))})`;
}

export function markdownTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
	const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
	return [line(header), line(header.map(() => '---')), ...rows.map(row => line(row))].join('\n');
}

export function machine(): string {
	return `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}`;
}

/**
 * Runs `concurrency` loops of `operation` for `durationMs` and returns every latency (ms).
 * The loops start together and stop together; the count of latencies is the throughput.
 */
export async function runFor(durationMs: number, concurrency: number, operation: () => Promise<unknown>): Promise<number[]> {
	const latencies: number[] = [];
	const deadline = performance.now() + durationMs;
	await Promise.all(Array.from({length: concurrency}, async () => {
		while (performance.now() < deadline) {
			const started = performance.now();
			await operation();
			latencies.push(performance.now() - started);
		}
	}));
	return latencies;
}
