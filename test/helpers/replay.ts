// Waiting for replicas to replay the primary's WAL, for tests that need data everywhere.
import {setTimeout as delay} from 'node:timers/promises';
import pg from 'pg';
import type {ClusterEndpoints, ServerEndpoint} from './shared-cluster.js';

async function queryOne<Row>(server: ServerEndpoint, sql: string, values: unknown[] = []): Promise<Row> {
	const client = new pg.Client({host: server.host, port: server.port, user: server.username, password: server.password, database: server.database});
	await client.connect();
	try {
		const {rows} = await client.query(sql, values);
		return rows[0] as Row;
	} finally {
		await client.end();
	}
}

/** Runs SQL on the primary, then waits until every replica has replayed it. */
export async function runEverywhere(cluster: ClusterEndpoints, sql: string, timeoutMs = 30_000): Promise<void> {
	await queryOne(cluster.primary, sql);
	await waitForReplay(cluster, timeoutMs);
}

/** Waits until every replica has replayed all the primary has written so far. */
export async function waitForReplay(cluster: ClusterEndpoints, timeoutMs = 30_000): Promise<void> {
	const {lsn} = await queryOne<{lsn: string}>(cluster.primary, 'SELECT pg_current_wal_lsn()::text AS lsn');
	const deadline = Date.now() + timeoutMs;
	for (const replica of cluster.replicas) {
		for (;;) {
			const {caughtUp} = await queryOne<{caughtUp: boolean}>(replica, 'SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS "caughtUp"', [lsn]);
			if (caughtUp) {
				break;
			}

			if (Date.now() > deadline) {
				throw new Error(`${replica.name} did not replay ${lsn} within ${timeoutMs} ms`);
			}

			await delay(50);
		}
	}
}
