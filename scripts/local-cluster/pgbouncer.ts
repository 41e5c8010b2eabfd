// A real PgBouncer (Debian's `pgbouncer` package, or PGBOUNCER=/path) in front of one server
// of a local cluster, in transaction-pooling mode: what users put between many application
// processes and PostgreSQL once connections are the wall.
//
// PgBouncer keeps accepting client connections while the server behind it is down or
// frozen; the client learns of it only from PgBouncer's own errors (SQLSTATE 08P01), or by
// waiting. The settings below keep those waits short, as the README advises users to.
import {execFileSync} from 'node:child_process';
import {existsSync, readFileSync} from 'node:fs';
import {writeFile} from 'node:fs/promises';
import path from 'node:path';
import {runAs, type ServerUser} from './postgres-binaries.js';

/** The pgbouncer binary: PGBOUNCER, else the one on PATH or in /usr/sbin; undefined when none. */
export function findPgBouncer(): string | undefined {
	const candidates = [process.env.PGBOUNCER, '/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'];
	try {
		candidates.push(execFileSync('sh', ['-c', 'command -v pgbouncer'], {encoding: 'utf8'}).trim());
	} catch {
		// Not on PATH.
	}

	return candidates.find(candidate => candidate !== undefined && candidate !== '' && existsSync(candidate));
}

export class PgBouncer {
	readonly host = '127.0.0.1';
	readonly #binary: string;
	readonly #user: ServerUser;
	readonly #configFile: string;
	readonly #pidFile: string;

	constructor(
		readonly name: string,
		readonly port: number,
		/** The server it pools connections to. */
		readonly serverPort: number,
		readonly directory: string,
		binary: string,
		user: ServerUser,
	) {
		this.#binary = binary;
		this.#user = user;
		this.#configFile = path.join(directory, `${name}.pgbouncer.ini`);
		// The cluster's watchdog kills every `*.pgbouncer.pid` it finds in the cluster's dir.
		this.#pidFile = path.join(directory, `${name}.pgbouncer.pid`);
	}

	get logFile(): string {
		return path.join(this.directory, `${this.name}.pgbouncer.log`);
	}

	async start(): Promise<void> {
		await writeFile(this.#configFile, [
			'[databases]',
			`* = host=127.0.0.1 port=${this.serverPort} user=postgres`,
			'[pgbouncer]',
			'listen_addr = 127.0.0.1',
			`listen_port = ${this.port}`,
			'unix_socket_dir =',
			'auth_type = any',
			'pool_mode = transaction',
			'max_client_conn = 1000',
			'default_pool_size = 40',
			// After a failed login PgBouncer refuses every client for server_login_retry (15 s
			// by default): a replica that came back would stay unusable that long (with 1 s,
			// the soak still saw reads fail for a second after a restart).
			'server_login_retry = 0.2',
			// A client whose query waits for a server connection (the server is frozen, or
			// gone without a word) gets an error after this, instead of after 2 minutes.
			'query_wait_timeout = 5',
			'server_connect_timeout = 3',
			// node-postgres sends none of these, Sequelize may; PgBouncer refuses unknown ones.
			'ignore_startup_parameters = extra_float_digits,options,statement_timeout',
			`logfile = ${this.logFile}`,
			`pidfile = ${this.#pidFile}`,
			'',
		].join('\n'));
		await runAs(this.#user, this.#binary, ['-d', this.#configFile], {cwd: this.directory});
	}

	/** SIGINT: PgBouncer's "safe shutdown" would wait for clients; SIGTERM closes at once. */
	stop(): void {
		try {
			process.kill(Number(readFileSync(this.#pidFile, 'utf8').trim()), 'SIGTERM');
		} catch {
			// Not running.
		}
	}
}
