// The soak's load: browser users of the example forum over HTTP (cookie jars; pinning in
// `time` and in `lsn` mode) who write and then read their own writes, anonymous readers, and
// a job runner that carries consistency tokens from the write to the job. Every operation is
// recorded in the history; every write has a unique title.
import {createServer, type Server} from 'node:http';
import type {AddressInfo} from 'node:net';
import {setTimeout as delay} from 'node:timers/promises';
import {QueryTypes, type Sequelize} from 'sequelize';
import {createForum, type Forum} from '../../example/forum.js';
import {multidb, withConsistency, type MultiDb, type MultiDbOptions} from '../../source/index.js';
import {CookieJar} from '../../test/helpers/cookie-jar.js';
import type {ClientMode, HistoryWriter, Operation} from './history.js';

export const soakTable = 'soak_posts';

export interface LoadOptions {
	/** A new Sequelize on the cluster, for each forum and the job runner (as separate apps have). */
	readonly connect: () => Sequelize;
	readonly routerOptions: MultiDbOptions;
	/** Server names by port (servers' and their PgBouncers'). */
	readonly names: ReadonlyMap<number, string>;
	readonly history: HistoryWriter;
	readonly usersPerMode: number;
	readonly anonymousReaders: number;
	/** A control run: the forums do not pin and jobs carry no token, so reads can be stale. */
	readonly control?: boolean;
}

interface RunningForum {
	readonly url: string;
	readonly server: Server;
	readonly sequelize: Sequelize;
}

export class SoakLoad {
	readonly #options: LoadOptions;
	readonly #forums = new Map<ClientMode, RunningForum>();
	readonly #workers: Array<Promise<void>> = [];
	/** Posts whose write was acknowledged, for the anonymous readers to read. */
	readonly #knownPosts: number[] = [];
	#jobs?: {sequelize: Sequelize; db: MultiDb};
	#running = false;

	constructor(options: LoadOptions) {
		this.#options = options;
	}

	/** Starts the two forums (the posts table is created by the first) and the job runner's router. */
	async prepare(): Promise<void> {
		for (const mode of ['time', 'lsn'] as const) {
			const sequelize = this.#options.connect();
			const forum = await createForum({
				sequelize,
				reportErrors: true,
				router: this.#options.routerOptions,
				pinning: this.#options.control ? false : {consistency: mode},
				keys: ['soak secret'],
				serverNames: this.#options.names,
				table: soakTable,
			});
			if (mode === 'time') {
				await forum.sync();
			}

			this.#recordEvents(mode, forum.db);
			this.#forums.set(mode, await listen(forum, sequelize));
		}

		const sequelize = this.#options.connect();
		this.#jobs = {sequelize, db: multidb(sequelize, this.#options.routerOptions)};
		this.#recordEvents('jobs', this.#jobs.db);
	}

	#recordEvents(router: string, db: MultiDb): void {
		const {history} = this.#options;
		const record = (name: string, detail: string) => {
			const at = history.now();
			history.record({type: 'event', router, name, detail, start: at, end: at});
		};

		db.on('primaryChanged', ({from, to, timeline}) => {
			record('primaryChanged', `${from} -> ${to}, timeline ${timeline}`);
		});
		db.on('splitBrain', ({node, timeline, primary, primaryTimeline, reason}) => {
			record('splitBrain', `${node} (timeline ${timeline}) vs ${primary} (timeline ${primaryTimeline}): ${reason}`);
		});
	}

	start(): void {
		this.#running = true;
		for (const mode of ['time', 'lsn'] as const) {
			for (let index = 0; index < this.#options.usersPerMode; index++) {
				this.#workers.push(this.#user(`${mode}-user-${index + 1}`, mode));
			}
		}

		for (let index = 0; index < this.#options.anonymousReaders; index++) {
			this.#workers.push(this.#anonymous(`reader-${index + 1}`));
		}

		this.#workers.push(this.#jobRunner());
	}

	/** Stops the clients, waiting for what they have in flight, and closes the forums. */
	async stop(): Promise<void> {
		this.#running = false;
		await Promise.all(this.#workers);
		for (const forum of this.#forums.values()) {
			await new Promise(resolve => {
				forum.server.close(resolve);
			});
			await forum.sequelize.close();
		}

		await this.#jobs?.sequelize.close();
	}

	#forum(mode: 'time' | 'lsn'): RunningForum {
		const forum = this.#forums.get(mode);
		if (!forum) {
			throw new Error('SoakLoad.prepare() was not called');
		}

		return forum;
	}

	#jobRouter(): {sequelize: Sequelize; db: MultiDb} {
		if (!this.#jobs) {
			throw new Error('SoakLoad.prepare() was not called');
		}

		return this.#jobs;
	}

	#record(operation: Omit<Operation, 'type' | 'end'>): void {
		this.#options.history.record({type: 'operation', ...operation, end: this.#options.history.now()});
	}

	/** A browser user: writes posts and likes them, and reads each back at once. */
	async #user(client: string, mode: 'time' | 'lsn'): Promise<void> {
		const {url} = this.#forum(mode);
		const jar = new CookieJar();
		const mine: Array<{post: number; title: string; likes: number}> = [];
		for (let count = 1; this.#running; count++) {
			const roll = Math.random();
			if (roll < 0.4 || mine.length === 0) {
				const title = `soak ${client} ${count}`;
				const start = this.#options.history.now();
				const written = await attempt(async () => jar.fetch(`${url}/posts`, {method: 'POST', body: new URLSearchParams({title, body: 'written by the soak'}), redirect: 'manual'}));
				const post = written.response?.status === 303 ? Number(/\/posts\/(\d+)/.exec(written.response.headers.get('location') ?? '')?.[1]) : undefined;
				this.#record({client, mode, kind: 'write', start, ok: post !== undefined, title, post, error: written.error});
				if (post !== undefined) {
					mine.push({post, title, likes: 0});
					this.#knownPosts.push(post);
					await this.#readPost(client, mode, jar, url, post, {title});
				}
			} else if (roll < 0.7) {
				const mark = mine[Math.floor(Math.random() * mine.length)];
				const start = this.#options.history.now();
				const liked = await attempt(async () => jar.fetch(`${url}/posts/${mark.post}/like`, {redirect: 'manual'}));
				const ok = liked.response?.status === 302;
				this.#record({client, mode, kind: 'like', start, ok, post: mark.post, error: liked.error});
				if (ok) {
					mark.likes++;
					await this.#readPost(client, mode, jar, url, mark.post, {title: mark.title, likesAtLeast: mark.likes});
				}
			} else {
				await this.#readList(client, mode, jar, url);
			}

			await delay(20 + (Math.random() * 60));
		}
	}

	async #anonymous(client: string): Promise<void> {
		const {url} = this.#forum(Math.random() < 0.5 ? 'time' : 'lsn');
		const jar = new CookieJar();
		while (this.#running) {
			const known = this.#knownPosts;
			await (known.length === 0 || Math.random() < 0.3 ? this.#readList(client, 'anonymous', jar, url) : this.#readPost(client, 'anonymous', jar, url, known[Math.floor(Math.random() * known.length)]));
			await delay(10 + (Math.random() * 40));
		}
	}

	async #readPost(client: string, mode: ClientMode, jar: CookieJar, url: string, post: number, expects?: Operation['expects']): Promise<void> {
		const start = this.#options.history.now();
		const read = await attempt(async () => jar.fetch(`${url}/posts/${post}`));
		const status = read.response?.status;
		const body = read.body ?? '';
		this.#record({
			client,
			mode,
			kind: 'read',
			start,
			ok: status === 200 || status === 404,
			post,
			server: servedBy(read.response),
			expects,
			found: status === 200 && (expects?.title === undefined || body.includes(`<h2 class="title">${expects.title}</h2>`)),
			likes: Number(/<span class="likes">(\d+)<\/span>/.exec(body)?.[1] ?? 0),
			error: read.error,
		});
	}

	async #readList(client: string, mode: ClientMode, jar: CookieJar, url: string): Promise<void> {
		const start = this.#options.history.now();
		const read = await attempt(async () => jar.fetch(`${url}/`));
		this.#record({client, mode, kind: 'list', start, ok: read.response?.status === 200, server: servedBy(read.response), error: read.error});
	}

	/**
	 * Writes a post in one flow and reads it in a job that runs 0–300 ms later with the
	 * write's consistency token, as a queue worker would.
	 */
	async #jobRunner(): Promise<void> {
		const {sequelize, db} = this.#jobRouter();
		const client = 'jobs';
		const queued: Array<Promise<void>> = [];
		for (let count = 1; this.#running; count++) {
			const title = `soak job ${count}`;
			const start = this.#options.history.now();
			try {
				const [rows] = await sequelize.query(`INSERT INTO ${soakTable} (title, body, likes, "createdAt", "updatedAt") VALUES (:title, 'queued by the soak', 0, now(), now()) RETURNING id`, {replacements: {title}, type: QueryTypes.INSERT});
				const post = (rows as unknown as Array<{id: number}>)[0].id;
				this.#record({client, mode: 'token', kind: 'write', start, ok: true, title, post});
				this.#knownPosts.push(post);
				const token = await db.consistencyToken();
				queued.push(delay(Math.random() * 300).then(async () => this.#job(post, title, token)));
			} catch (error) {
				this.#record({client, mode: 'token', kind: 'write', start, ok: false, title, error: describe(error)});
			}

			await delay(30 + (Math.random() * 70));
		}

		await Promise.all(queued);
	}

	async #job(post: number, title: string, token: string): Promise<void> {
		const {sequelize} = this.#jobRouter();
		const start = this.#options.history.now();
		try {
			const read = async () => sequelize.query<{title: string; port: number; replayed: string | null}>(`SELECT title, inet_server_port() AS port, pg_last_wal_replay_lsn()::text AS replayed FROM ${soakTable} WHERE id = :post`, {replacements: {post}, type: QueryTypes.SELECT});
			const rows = await (this.#options.control ? read() : withConsistency(token, read));
			const port = rows[0]?.port ?? (await sequelize.query<{port: number}>('SELECT inet_server_port() AS port', {type: QueryTypes.SELECT}))[0]?.port;
			this.#record({client: 'jobs', mode: 'token', kind: 'read', start, ok: true, post, server: this.#options.names.get(port), expects: {title}, found: rows[0]?.title === title, lsn: rows[0]?.replayed ?? undefined});
		} catch (error) {
			this.#record({client: 'jobs', mode: 'token', kind: 'read', start, ok: false, post, expects: {title}, error: describe(error)});
		}
	}
}

/** The forum answers a failed request with 500 and the error in `X-Error`, for the history. */
function describe(error: unknown): string {
	const {name, message, parent} = error as {name?: string; message?: string; parent?: {code?: string; message?: string}};
	return `${name ?? 'Error'}${parent?.code ? ` ${parent.code}` : ''}: ${parent?.message ?? message ?? String(error)}`;
}

async function attempt(request: () => Promise<Response>): Promise<{response?: Response; body?: string; error?: string}> {
	try {
		const response = await request();
		const body = await response.text();
		const error = response.status >= 500 ? response.headers.get('x-error') ?? `HTTP ${response.status}` : undefined;
		return {response, body, error};
	} catch (error) {
		return {error: `HTTP client: ${(error as Error).message}`};
	}
}

/** The first server that answered the request's reads (the forum's `X-Served-By`). */
function servedBy(response: Response | undefined): string | undefined {
	return response?.headers.get('x-served-by')?.split(', ')[0];
}

async function listen(forum: Forum, sequelize: Sequelize): Promise<RunningForum> {
	const server = createServer(forum.listener);
	await new Promise<void>(resolve => {
		server.listen(0, '127.0.0.1', resolve);
	});
	return {url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, sequelize};
}
