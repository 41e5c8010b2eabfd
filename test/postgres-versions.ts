// The PostgreSQL version the suite runs on, and the cluster tool's choice of versions.
// CI runs the suite on PostgreSQL 14 and 18 (MULTIDB_PG_MAJOR): the first test proves the
// servers are the version asked for, so a green run on "14" is a run on 14.
import test from 'ava';
import pg from 'pg';
import {LocalCluster} from '../scripts/local-cluster/index.js';
import {sharedCluster} from './helpers/shared-cluster.js';

test('every server of the cluster runs the PostgreSQL major version asked for', async t => {
	const cluster = await sharedCluster();
	const majors = await Promise.all([cluster.primary, ...cluster.replicas].map(async server => {
		const client = new pg.Client({host: server.host, port: server.port, user: server.username, password: server.password, database: server.database});
		await client.connect();
		try {
			const {rows} = await client.query<{version: string}>('SELECT current_setting(\'server_version_num\') AS version');
			return Math.floor(Number(rows[0].version) / 10_000);
		} finally {
			await client.end();
		}
	}));
	t.log(`PostgreSQL ${majors.join(', ')}`);
	t.is(new Set(majors).size, 1);
	t.true(majors[0] >= 14 && majors[0] <= 18, `PostgreSQL ${majors[0]} is not a supported version`);
	// Where the project started the cluster (not a cluster of your own, not PG_BIN's), it is
	// the major MULTIDB_PG_MAJOR asked for.
	const started = process.env.MULTIDB_TEST_POSTGRES;
	const asked = process.env.MULTIDB_PG_MAJOR;
	if (started && asked && !process.env.PG_BIN) {
		t.is(majors[0], Number(asked), started);
	}
});

test('the cluster tool refuses a PostgreSQL major it does not support, naming the supported ones', async t => {
	await t.throwsAsync(LocalCluster.start({postgresMajor: 12}), {instanceOf: TypeError, message: 'Expected `postgresMajor` to be a supported PostgreSQL major version (14, 15, 16, 17, 18), got 12'});
});
