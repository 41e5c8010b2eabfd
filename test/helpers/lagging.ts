// Set-ups for tests of reads that must not be stale: a routed Sequelize whose only replica
// replays 1.5 s late, so a read that misses the primary right after a write surely misses it.
import pg from 'pg';
import type {Sequelize} from 'sequelize';
import {multidb, type MultiDb} from '../../source/index.js';
import {eventually} from './faults.js';
import {waitForReplay} from './replay.js';
import type {ClusterEndpoints} from './shared-cluster.js';
import {newSequelize, type TestSequelizeOptions} from './sequelize.js';

export function laggingSequelize(t: {teardown: (fn: () => Promise<void>) => void}, cluster: ClusterEndpoints, options: TestSequelizeOptions = {}): {sequelize: Sequelize; db: MultiDb} {
	const sequelize = newSequelize(cluster, {replicas: [cluster.replicas[1]], ...options});
	t.teardown(async () => sequelize.close());
	// Monitor off: it would take the lagging replica out of rotation only past 30 s anyway.
	return {sequelize, db: multidb(sequelize, {monitorIntervalMs: 0})};
}

/** Creates the models' tables on the primary and waits until every replica has them. */
export async function syncEverywhere(cluster: ClusterEndpoints, ...models: Array<{sync(): Promise<unknown>}>): Promise<void> {
	for (const model of models) {
		await model.sync();
	}

	await waitForReplay(cluster);
}

/**
 * Runs `racer` while another session holds an uncommitted INSERT of `values` into `table`,
 * and commits that INSERT once `racer` waits on its lock: `racer`'s own INSERT of the same
 * key then fails with a unique violation, and the row it reads next exists only on the
 * primary (what `findOrCreate` meets when two callers race).
 */
export async function whileAnotherSessionInserts<T>(cluster: ClusterEndpoints, table: string, values: Record<string, unknown>, racer: () => Promise<T>): Promise<T> {
	const {primary} = cluster;
	const client = new pg.Client({host: primary.host, port: primary.port, user: primary.username, password: primary.password, database: primary.database});
	await client.connect();
	try {
		const columns = Object.keys(values);
		await client.query('BEGIN');
		await client.query(`INSERT INTO "${table}" (${columns.map(column => `"${column}"`).join(', ')}) VALUES (${columns.map((_, index) => `$${index + 1}`).join(', ')})`, Object.values(values));
		const racing = racer();
		racing.catch(() => undefined);
		// pg_locks is read live (pg_stat_activity would be cached for this transaction).
		const blocked = await eventually(async () => Number((await client.query('SELECT count(*) AS n FROM pg_locks WHERE NOT granted')).rows[0].n) > 0, 10_000, 10);
		if (!blocked) {
			throw new Error('the racing INSERT never waited for the uncommitted one');
		}

		await client.query('COMMIT');
		return await racing;
	} finally {
		await client.end();
	}
}
