// Rebuilds a server as a standby of another, as an operator does after a failover to bring
// the old primary back: a base backup with PostgreSQL's low-level backup API (the embedded
// binaries have no pg_basebackup), taken while the new primary keeps running.
//
//   1. `pg_backup_start()` on the source, in a session kept open until the end;
//   2. a file copy of its data dir, leaving out what a backup must not carry (the pid file,
//      WAL segments, replication slots, temp files);
//   3. `pg_backup_stop()`, whose label file goes into the copy as `backup_label`;
//   4. `standby.signal` and a `primary_conninfo` pointing at the source; the standby
//      streams the WAL it needs from there (the test cluster keeps 1 GB of it).
import {cp, mkdir, rm, writeFile, appendFile} from 'node:fs/promises';
import path from 'node:path';
import {withClient, type PostgresServer} from './cluster.js';

/** Data dir entries a base backup leaves out (PostgreSQL's docs, "Making a Base Backup Using the Low Level API"). */
const notCopied = new Set(['postmaster.pid', 'postmaster.opts', 'backup_label', 'tablespace_map', 'standby.signal', 'recovery.signal']);
const emptiedDirectories = new Set(['pg_wal', 'pg_replslot', 'pg_dynshmem', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_stat_tmp', 'pg_subtrans']);

export interface RebuildOptions {
	/** Replay delay of the rebuilt standby. */
	readonly applyDelayMs?: number;
}

/**
 * Replaces `server`'s data dir with a base backup of `source` and starts it as a standby of
 * `source`. `server` must be stopped; resolves once it is streaming.
 */
export async function rebuildAsStandby(server: PostgresServer, source: PostgresServer, options: RebuildOptions = {}): Promise<void> {
	if (server.running) {
		throw new Error(`Stop ${server.name} before rebuilding it`);
	}

	await withClient(source, async client => {
		const {rows: [{version}]} = await client.query<{version: number}>('SELECT current_setting(\'server_version_num\')::int AS version');
		// PostgreSQL 15 renamed the functions and dropped the exclusive mode.
		const [start, stop] = version >= 150_000
			? ['SELECT pg_backup_start(\'sequelize-multidb rebuild\', true)', 'SELECT labelfile FROM pg_backup_stop(true)']
			: ['SELECT pg_start_backup(\'sequelize-multidb rebuild\', true, false)', 'SELECT labelfile FROM pg_stop_backup(false, true)'];
		await client.query(start);
		await rm(server.dataDir, {recursive: true, force: true});
		await cp(source.dataDir, server.dataDir, {
			recursive: true,
			preserveTimestamps: true,
			filter(from) {
				const relative = path.relative(source.dataDir, from);
				const [top] = relative.split(path.sep);
				if (relative === '' || relative === top) {
					return !notCopied.has(relative) && !relative.endsWith('.tmp');
				}

				// Timeline history files are kept: the standby needs the new primary's history.
				return !emptiedDirectories.has(top) || (top === 'pg_wal' && relative.endsWith('.history'));
			},
		});
		for (const directory of emptiedDirectories) {
			await mkdir(path.join(server.dataDir, directory), {recursive: true});
		}

		await mkdir(path.join(server.dataDir, 'pg_wal', 'archive_status'), {recursive: true});
		const {rows: [{labelfile}]} = await client.query<{labelfile: string}>(stop);
		await writeFile(path.join(server.dataDir, 'backup_label'), labelfile);
	});
	await writeFile(path.join(server.dataDir, 'standby.signal'), '');
	// Later lines win: the copy's own port and primary_conninfo are the source's.
	await appendFile(path.join(server.dataDir, 'postgresql.auto.conf'), [
		'',
		`port = ${server.port}`,
		`primary_conninfo = 'host=${source.host} port=${source.port} user=postgres application_name=${server.name}'`,
		`recovery_min_apply_delay = '${options.applyDelayMs ?? 0}ms'`,
		'',
	].join('\n'));
	await server.ownDataDir();
	await server.start();
}

/** Points a standby at another primary (`primary_conninfo` is reloadable since PostgreSQL 13). */
export async function followOtherPrimary(standby: PostgresServer, primary: PostgresServer): Promise<void> {
	await withClient(standby, async client => {
		await client.query(`ALTER SYSTEM SET primary_conninfo = 'host=${primary.host} port=${primary.port} user=postgres application_name=${standby.name}'`);
		await client.query('SELECT pg_reload_conf()');
	});
}
