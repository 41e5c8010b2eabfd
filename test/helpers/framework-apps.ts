// One app, written once, served by each framework with its own adapter: the routes of the
// shared pinning scenarios (test/pinning-frameworks.ts). Every route answers with the server
// that ran its read, so a test sees where each request's reads went. A route is marked as
// a write by the framework's own means: its wrapper (`dbWrite`), or its write flag.
import type {RequestListener, Server} from 'node:http';
import fastifyCookie from '@fastify/cookie';
import KoaRouter from '@koa/router';
import cookieParser from 'cookie-parser';
import express from 'express';
import Fastify, {type FastifyReply, type FastifyRequest} from 'fastify';
import Koa from 'koa';
import {DataTypes, QueryTypes, type Sequelize} from 'sequelize';
import {dbWrite as koaDbWrite, multidb, pinning as koaPinning, type MultiDb, type PinningOptions} from '../../source/index.js';
import {dbWrite as expressDbWrite, pinning as expressPinning} from '../../source/express.js';
import {dbWrite as fastifyDbWrite, pinning as fastifyPinning} from '../../source/fastify.js';
import type {ClusterEndpoints} from './shared-cluster.js';
import {answeringServer, newSequelize, serverNamer, type TestSequelizeOptions} from './sequelize.js';

type Params = Record<string, string>;

interface Route {
	readonly method: 'get' | 'post';
	readonly path: string;
	/** `wrapper`: wrapped in the adapter's `dbWrite`; `flag`: sets the framework's write flag. */
	readonly write?: 'wrapper' | 'flag';
	readonly handle: (params: Params) => Promise<Record<string, unknown>>;
}

export interface FrameworkApp {
	/** What supertest takes: a request listener, or a server. */
	readonly listener: RequestListener | Server;
	readonly db: MultiDb;
	readonly sequelize: Sequelize;
	close(): Promise<void>;
}

export interface FrameworkAppOptions {
	readonly pinning?: Omit<PinningOptions, 'db'>;
	readonly sequelize?: TestSequelizeOptions;
	/** Signs pins: Koa's `app.keys`, cookie-parser's secret. */
	readonly secret?: string;
}

export interface Framework {
	readonly name: string;
	create(cluster: ClusterEndpoints, table: string, options?: FrameworkAppOptions): Promise<FrameworkApp>;
}

function routesOf(sequelize: Sequelize, cluster: ClusterEndpoints, table: string): Route[] {
	const Note = sequelize.define('Note', {body: DataTypes.TEXT, likes: DataTypes.INTEGER}, {tableName: table, timestamps: false});
	const server = async () => answeringServer(sequelize, cluster);
	return [
		{method: 'get', path: '/read', handle: async () => ({server: await server()})},
		{method: 'post', path: '/search', handle: async () => ({server: await server()})},
		{method: 'post', path: '/notes', async handle() {
			const note = await Note.create({body: 'hello'});
			return {id: note.get('id'), server: await server()};
		}},
		// One query that says both where it ran and whether it saw the note.
		{method: 'get', path: '/notes/:id/check', async handle({id}) {
			const row = await sequelize.query<{port: number; found: boolean}>(`SELECT inet_server_port() AS port, EXISTS (SELECT 1 FROM ${table} WHERE id = :id) AS found`, {type: QueryTypes.SELECT, plain: true, replacements: {id: Number(id)}});
			return {found: row?.found, server: serverNamer(cluster)(row?.port ?? 0)};
		}},
		{method: 'get', path: '/notes/:id/like', write: 'wrapper', async handle({id}) {
			const before = await server();
			await Note.increment('likes', {where: {id: Number(id)}});
			return {server: before};
		}},
		{method: 'get', path: '/flagged', write: 'flag', handle: async () => ({server: await server()})},
		{method: 'get', path: '/sneaky-write', async handle() {
			const before = await server();
			await Note.create({body: 'written by a GET'});
			return {before, after: await server()};
		}},
		{method: 'post', path: '/fails-after-write', async handle() {
			await Note.create({body: 'committed, then the handler fails'});
			throw new Error('after the write');
		}},
	];
}

/** The router, on a fresh instance, its identity learned (as a warm app would have it). */
function setUp(cluster: ClusterEndpoints, table: string, options: FrameworkAppOptions) {
	const sequelize = newSequelize(cluster, options.sequelize);
	const db = multidb(sequelize);
	return {sequelize, db, routes: routesOf(sequelize, cluster, table)};
}

const koa: Framework = {
	name: 'koa',
	async create(cluster, table, options = {}) {
		const {sequelize, db, routes} = setUp(cluster, table, options);
		await db.systemIdentifier();
		const app = new Koa();
		app.silent = true;
		if (options.secret) {
			app.keys = [options.secret];
		}

		app.use(koaPinning({db, ...options.pinning}));
		const router = new KoaRouter();
		for (const route of routes) {
			const handler = async (ctx: Koa.Context & {params: Params}) => {
				if (route.write === 'flag') {
					ctx.state.dbWrite = true;
				}

				ctx.body = await route.handle(ctx.params);
			};

			router[route.method](route.path, route.write === 'wrapper' ? koaDbWrite(handler) : handler);
		}

		app.use(router.routes());
		const handle = app.callback();
		return {listener(request, response) {
			void handle(request, response);
		}, db, sequelize, close: async () => sequelize.close()};
	},
};

const expressFramework: Framework = {
	name: 'express',
	async create(cluster, table, options = {}) {
		const {sequelize, db, routes} = setUp(cluster, table, options);
		await db.systemIdentifier();
		const app = express();
		app.use(cookieParser(options.secret));
		app.use(expressPinning({db, ...options.pinning}));
		for (const route of routes) {
			const handler = async (request: express.Request, response: express.Response) => {
				if (route.write === 'flag') {
					response.locals.dbWrite = true;
				}

				response.json(await route.handle(request.params as Params));
			};

			// Express 5 hands a rejected handler's error to its error handler.
			app[route.method](route.path, route.write === 'wrapper' ? expressDbWrite(handler) : handler);
		}

		// Express's own error handler answers a failed handler with 500 (silent in 'test').
		app.set('env', 'test');
		return {listener: app, db, sequelize, close: async () => sequelize.close()};
	},
};

const fastifyFramework: Framework = {
	name: 'fastify',
	async create(cluster, table, options = {}) {
		const {sequelize, db, routes} = setUp(cluster, table, options);
		await db.systemIdentifier();
		const app = Fastify();
		await app.register(fastifyCookie, options.secret ? {secret: options.secret} : {});
		await app.register(fastifyPinning({db, ...options.pinning}));
		for (const route of routes) {
			const handler = async (request: FastifyRequest, reply: FastifyReply) => {
				if (route.write === 'flag') {
					reply.dbWrite = true;
				}

				return route.handle(request.params as Params);
			};

			app.route({method: route.method.toUpperCase(), url: route.path, handler: route.write === 'wrapper' ? fastifyDbWrite(handler) : handler});
		}

		// A route marked as a write by its config, as the wrapper marks one.
		app.get('/notes/:id/like-by-config', {config: {dbWrite: true}}, async request => routes.find(route => route.path === '/notes/:id/like')?.handle(request.params as Params));
		await app.ready();
		return {listener: app.server, db, sequelize, async close() {
			await app.close();
			await sequelize.close();
		}};
	},
};

export const frameworks: readonly Framework[] = [koa, expressFramework, fastifyFramework];
