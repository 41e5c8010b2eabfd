// A Koa app for the pinning tests. Every route answers with the server that ran its read
// (`server`), so a test sees where each request's reads went.
import KoaRouter from '@koa/router';
import Koa from 'koa';
import {DataTypes, QueryTypes, type Sequelize} from 'sequelize';
import {dbWrite, multidb, pinning, type MultiDb, type PinningOptions} from '../../source/index.js';
import type {ClusterEndpoints} from './shared-cluster.js';
import {answeringServer, newSequelize, serverNamer, type TestSequelizeOptions} from './sequelize.js';
import {runEverywhere} from './replay.js';

export interface TestApp {
	readonly app: Koa;
	readonly db: MultiDb;
	readonly sequelize: Sequelize;
	readonly table: string;
}

/** A table that exists on every server (created once per test file; replicas wait for it). */
export async function createNotesTable(cluster: ClusterEndpoints): Promise<string> {
	const table = `notes_${Math.random().toString(36).slice(2, 10)}`;
	await runEverywhere(cluster, `CREATE TABLE ${table} (id serial PRIMARY KEY, body text NOT NULL, likes int NOT NULL DEFAULT 0)`);
	return table;
}

export interface TestAppOptions {
	readonly pinning?: Omit<PinningOptions, 'db'> | false;
	readonly sequelize?: TestSequelizeOptions;
	readonly keys?: string[];
}

export function createTestApp(cluster: ClusterEndpoints, table: string, options: TestAppOptions = {}): TestApp {
	const sequelize = newSequelize(cluster, options.sequelize);
	const db = multidb(sequelize);
	const Note = sequelize.define('Note', {body: DataTypes.TEXT, likes: DataTypes.INTEGER}, {tableName: table, timestamps: false});
	const app = new Koa();
	if (options.keys) {
		app.keys = options.keys;
	}

	if (options.pinning !== false) {
		app.use(pinning({db, ...options.pinning}));
	}

	const server = async () => answeringServer(sequelize, cluster);
	const router = new KoaRouter();
	router.get('/read', async ctx => {
		ctx.body = {server: await server()};
	});
	router.all('/any', async ctx => {
		const answered = await server();
		ctx.body = {server: answered};
		ctx.set('X-Server', answered);
	});
	router.post('/notes', async ctx => {
		const note = await Note.create({body: 'hello'});
		ctx.body = {id: note.get('id'), server: await server()};
	});
	router.get('/notes/:id', async ctx => {
		const note = await Note.findByPk(Number(ctx.params.id));
		ctx.body = {found: note !== null, server: await server()};
	});
	// One query that says both where it ran and whether it saw the note: no per-query mix-up.
	router.get('/notes/:id/check', async ctx => {
		const row = await sequelize.query<{port: number; found: boolean}>(`SELECT inet_server_port() AS port, EXISTS (SELECT 1 FROM ${table} WHERE id = :id) AS found`, {type: QueryTypes.SELECT, plain: true, replacements: {id: Number(ctx.params.id)}});
		ctx.body = {found: row?.found, server: serverNamer(cluster)(row?.port ?? 0)};
	});
	router.get('/notes/:id/like', dbWrite(async ctx => {
		const before = await server();
		await Note.increment('likes', {where: {id: Number(ctx.params.id)}});
		ctx.body = {server: before};
	}));
	router.get('/flagged', async ctx => {
		ctx.state.dbWrite = true;
		ctx.body = {server: await server()};
	});
	router.get('/sneaky-write', async ctx => {
		const before = await server();
		await Note.create({body: 'written by a GET'});
		ctx.body = {before, after: await server()};
	});
	router.post('/search', async ctx => {
		ctx.body = {server: await server()};
	});
	router.post('/fails-after-write', async () => {
		await Note.create({body: 'committed, then the handler fails'});
		throw new Error('after the write');
	});
	router.get('/fails-after-flag', async ctx => {
		ctx.state.dbWrite = true;
		await Note.create({body: 'committed'});
		ctx.throw(409, 'conflict after the write');
	});
	app.use(router.routes());
	app.use(router.allowedMethods());
	app.silent = true;
	return {app, db, sequelize, table};
}
