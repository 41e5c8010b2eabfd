// The forum's pages (forum.ts) served by Koa, Express or Fastify, each with its own
// pinning adapter, cookie machinery, form parsing and write marking. A binding resolves a
// request listener for `http.createServer`.
import type {IncomingMessage, RequestListener} from 'node:http';
import fastifyCookie from '@fastify/cookie';
import KoaRouter from '@koa/router';
import cookieParser from 'cookie-parser';
import express from 'express';
import Fastify, {type FastifyReply} from 'fastify';
import Koa from 'koa';
import {dbWrite as koaDbWrite, pinning as koaPinning, type MultiDb, type PinningOptions} from '../source/index.js';
import {dbWrite as expressDbWrite, pinning as expressPinning} from '../source/express.js';
import {pinning as fastifyPinning} from '../source/fastify.js';
import type {ForumPages, Page} from './forum.js';
import type {OperatorPages} from './status.js';

export type Framework = 'koa' | 'express' | 'fastify';

export const frameworkNames: readonly Framework[] = ['koa', 'express', 'fastify'];

interface Binding {
	readonly db: MultiDb;
	readonly pages: ForumPages;
	readonly operator: OperatorPages | undefined;
	readonly pinning: Omit<PinningOptions, 'db'> | false | undefined;
	readonly keys: string[] | undefined;
	readonly reportErrors: boolean;
}

type Form = Record<string, string | undefined>;

export const bindings: Record<Framework, (binding: Binding) => RequestListener | Promise<RequestListener>> = {
	koa({db, pages, operator, pinning, keys, reportErrors}) {
		const app = new Koa();
		if (keys) {
			app.keys = keys;
		}

		if (reportErrors) {
			app.use(errorHeader);
		}

		app.use(async (_ctx, next) => {
			await pages.tracked(next);
		});
		if (pinning !== false) {
			app.use(koaPinning({db, ...pinning}));
		}

		const send = (ctx: Koa.Context, page: Page) => {
			ctx.status = page.status;
			setServedBy(pages, (name, value) => {
				ctx.set(name, value);
			});
			if (page.location) {
				ctx.redirect(page.location);
			} else {
				ctx.body = page.html;
			}
		};

		const router = new KoaRouter();
		router.get('/', async ctx => {
			send(ctx, await pages.list());
		});
		router.post('/posts', async ctx => {
			send(ctx, await pages.create(await readForm(ctx.req)));
		});
		router.get('/posts/:id', async ctx => {
			send(ctx, await pages.show(ctx.params.id));
		});
		// A GET that writes: `dbWrite` sends its reads to the primary and pins the client.
		router.get('/posts/:id/like', koaDbWrite(async (ctx: Koa.Context & {params: Record<string, string>}) => {
			send(ctx, await pages.like(ctx.params.id));
		}));
		if (operator) {
			router.get('/metrics', ctx => {
				// The exporter writes the response itself.
				ctx.respond = false;
				operator.metrics(ctx.req, ctx.res);
			});
			router.get('/status.json', ctx => {
				ctx.set('Cache-Control', 'no-store');
				ctx.body = operator.statusJson();
			});
			router.get('/status', ctx => {
				ctx.body = operator.statusHtml();
			});
		}

		app.use(router.routes());
		app.use(router.allowedMethods());
		const handle = app.callback();
		return (request, response) => {
			void handle(request, response);
		};
	},

	express({db, pages, operator, pinning, keys, reportErrors}) {
		const app = express();
		app.set('env', reportErrors ? 'test' : app.get('env'));
		app.use((_request, _response, next) => {
			pages.tracked(next);
		});
		app.use(cookieParser(keys));
		if (pinning !== false) {
			app.use(expressPinning({db, ...pinning}));
		}

		app.use(express.urlencoded({extended: false, limit: '100kb'}));
		const send = (response: express.Response, page: Page) => {
			setServedBy(pages, (name, value) => response.setHeader(name, value));
			if (page.location) {
				response.redirect(page.status, page.location);
			} else {
				response.status(page.status).type('html').send(page.html);
			}
		};

		app.get('/', async (_request, response) => {
			send(response, await pages.list());
		});
		app.post('/posts', async (request, response) => {
			send(response, await pages.create(request.body as Form));
		});
		app.get('/posts/:id', async (request, response) => {
			send(response, await pages.show(request.params.id));
		});
		app.get('/posts/:id/like', expressDbWrite(async (request: express.Request<{id: string}>, response) => {
			send(response, await pages.like(request.params.id));
		}));
		if (operator) {
			app.get('/metrics', (request, response) => {
				operator.metrics(request, response);
			});
			app.get('/status.json', (_request, response) => {
				response.set('Cache-Control', 'no-store').json(operator.statusJson());
			});
			app.get('/status', (_request, response) => {
				response.type('html').send(operator.statusHtml());
			});
		}

		if (reportErrors) {
			app.use((error: unknown, _request: express.Request, response: express.Response, next: express.NextFunction) => {
				if (response.headersSent) {
					next(error);
					return;
				}

				response.status(500).set('X-Error', describeError(error)).send('failed');
			});
		}

		return app;
	},

	async fastify({db, pages, operator, pinning, keys, reportErrors}) {
		const app = Fastify();
		if (reportErrors) {
			app.setErrorHandler(async (error, _request, reply) => reply.code(500).header('X-Error', describeError(error)).send('failed'));
		}

		// Runs before pinning's own preHandler: the request's list of answering servers.
		app.addHook('preHandler', (_request, _reply, done) => {
			pages.tracked(done);
		});
		app.addContentTypeParser('application/x-www-form-urlencoded', {parseAs: 'string', bodyLimit: 100_000}, (_request, body, done) => {
			done(null, Object.fromEntries(new URLSearchParams(body as string)));
		});
		await app.register(fastifyCookie, keys ? {secret: keys} : {});
		if (pinning !== false) {
			await app.register(fastifyPinning({db, ...pinning}));
		}

		const send = async (reply: FastifyReply, page: Page) => {
			setServedBy(pages, (name, value) => reply.header(name, value));
			return page.location ? reply.redirect(page.location, page.status) : reply.code(page.status).type('text/html').send(page.html);
		};

		app.get('/', async (_request, reply) => send(reply, await pages.list()));
		app.post('/posts', async (request, reply) => send(reply, await pages.create(request.body as Form)));
		app.get<{Params: {id: string}}>('/posts/:id', async (request, reply) => send(reply, await pages.show(request.params.id)));
		// A GET that writes, marked as one by its route config.
		app.get<{Params: {id: string}}>('/posts/:id/like', {config: {dbWrite: true}}, async (request, reply) => send(reply, await pages.like(request.params.id)));
		if (operator) {
			app.get('/metrics', (request, reply) => {
				// The exporter writes the response itself.
				reply.hijack();
				operator.metrics(request.raw, reply.raw);
			});
			app.get('/status.json', async (_request, reply) => reply.header('Cache-Control', 'no-store').send(operator.statusJson()));
			app.get('/status', async (_request, reply) => reply.type('text/html').send(operator.statusHtml()));
		}

		await app.ready();
		return (request, response) => {
			app.routing(request, response);
		};
	},
};

function setServedBy(pages: ForumPages, set: (name: string, value: string) => unknown): void {
	const served = pages.servedBy();
	if (served) {
		set('X-Served-By', served);
	}
}

/** Reads a small urlencoded form body (Koa has no body parser of its own). */
async function readForm(request: IncomingMessage): Promise<Form> {
	let raw = '';
	for await (const chunk of request) {
		raw += String(chunk);
		if (raw.length > 100_000) {
			throw Object.assign(new Error('Form too large'), {status: 413, expose: true});
		}
	}

	return Object.fromEntries(new URLSearchParams(raw));
}

/** Koa: a failed request answers 500 with the error in `X-Error`. */
async function errorHeader(ctx: Koa.Context, next: Koa.Next): Promise<void> {
	try {
		await next();
	} catch (error) {
		ctx.status = 500;
		ctx.set('X-Error', describeError(error));
		ctx.body = 'failed';
	}
}

/** The error as one header-safe line: its name, the driver's code, its message. */
function describeError(error: unknown): string {
	const {name, message, parent} = error as {name?: string; message?: string; parent?: {code?: string; message?: string}};
	return `${name ?? 'Error'}${parent?.code ? ` ${parent.code}` : ''}: ${parent?.message ?? message ?? String(error)}`.replaceAll(/[^\u0020-\u007E]/g, '?').slice(0, 300);
}
