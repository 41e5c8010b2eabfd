// Helpers for tests that break servers: each such test gets a cluster of its own.
import {setTimeout as delay} from 'node:timers/promises';
import type {Sequelize} from 'sequelize';
import {multidb, type MultiDbOptions} from '../../source/index.js';
import {LocalCluster, type ClusterOptions} from '../../scripts/local-cluster/index.js';
import {endpointsOf, type ClusterEndpoints} from './shared-cluster.js';
import {answeringServer, newSequelize, type TestSequelizeOptions} from './sequelize.js';

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

/**
 * A router on a fault cluster, in a fixed replica order, recording its health events as
 * `down replica`, `up replica`, `lagging replica`, `caught-up replica` and `fallback`.
 */
export function routerOn(t: {teardown: (fn: () => Promise<void>) => void}, {endpoints}: FaultCluster, options: MultiDbOptions = {}, sequelizeOptions: TestSequelizeOptions = {}) {
	const sequelize = newSequelize(endpoints, sequelizeOptions);
	t.teardown(async () => sequelize.close());
	const db = multidb(sequelize, {shuffle: false, ...options});
	const events: string[] = [];
	db.on('replicaDown', ({replica}) => events.push(`down ${replica}`));
	db.on('replicaUp', ({replica}) => events.push(`up ${replica}`));
	db.on('replicaLagging', ({replica}) => events.push(`lagging ${replica}`));
	db.on('replicaCaughtUp', ({replica}) => events.push(`caught-up ${replica}`));
	db.on('fallbackToPrimary', () => events.push('fallback'));
	return {sequelize, db, events};
}

/** `count` sequential reads, each answered by the server it names. */
export async function reads(sequelize: Sequelize, {endpoints}: FaultCluster, count: number): Promise<string[]> {
	const servers: string[] = [];
	for (let index = 0; index < count; index++) {
		servers.push(await answeringServer(sequelize, endpoints));
	}

	return servers;
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
