// Helpers for tests that break servers: each such test gets a cluster of its own.
import {setTimeout as delay} from 'node:timers/promises';
import type {Sequelize} from 'sequelize';
import {LocalCluster, type ClusterOptions} from './cluster.js';
import {endpointsOf, type ClusterEndpoints} from './shared-cluster.js';
import {answeringServer} from './sequelize.js';

export interface FaultCluster {
	readonly cluster: LocalCluster;
	readonly endpoints: ClusterEndpoints;
}

/** A private cluster, stopped at the end of the test. Replicas replay at once by default. */
export async function ownCluster(t: {teardown: (fn: () => Promise<void>) => void}, options: ClusterOptions = {applyDelaysMs: [0, 0]}): Promise<FaultCluster> {
	const cluster = await LocalCluster.start(options);
	t.teardown(async () => cluster.stop());
	return {cluster, endpoints: endpointsOf(cluster)};
}

export interface ReadLoad {
	attempted: number;
	failed: number;
	readonly errors: string[];
	readonly servers: Record<string, number>;
	/** The slowest read, in ms. */
	slowestMs: number;
}

/**
 * Runs `concurrency` workers that each read in a loop until `stop()` is called; every read
 * asks the server who it is. Returns the load's counters (filled in as it runs) and stop().
 */
export function steadyReads(sequelize: Sequelize, endpoints: ClusterEndpoints, concurrency = 4): {load: ReadLoad; stop: () => Promise<ReadLoad>} {
	const load: ReadLoad = {attempted: 0, failed: 0, errors: [], servers: {}, slowestMs: 0};
	let running = true;
	const worker = async () => {
		while (running) {
			load.attempted++;
			const started = Date.now();
			try {
				const server = await answeringServer(sequelize, endpoints);
				load.servers[server] = (load.servers[server] ?? 0) + 1;
			} catch (error) {
				load.failed++;
				load.errors.push((error as Error).message);
			}

			load.slowestMs = Math.max(load.slowestMs, Date.now() - started);
			await delay(5);
		}
	};

	const workers = Array.from({length: concurrency}, worker);
	return {
		load,
		async stop() {
			running = false;
			await Promise.all(workers);
			return load;
		},
	};
}

/** Polls `check` until it is true or `timeoutMs` passes; resolves whether it became true. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, intervalMs = 50): Promise<boolean> {
	const deadline = Date.now() + timeoutMs;
	while (Date.now() < deadline) {
		if (await check()) {
			return true;
		}

		await delay(intervalMs);
	}

	return check();
}
