// One side of bench/frameworks.ts, in a process of its own: Koa, Express or Fastify with an
// empty route (`GET /plain`), bare or with its pinning adapter (and the cookie machinery the
// adapter needs). Prints the port it listens on; the parent loads it with autocannon.
import type {AddressInfo} from 'node:net';
import {createServer} from 'node:http';
import fastifyCookie from '@fastify/cookie';
import cookieParser from 'cookie-parser';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import {multidb, pinning as koaPinning} from '../source/index.js';
import {pinning as expressPinning} from '../source/express.js';
import {pinning as fastifyPinning} from '../source/fastify.js';
import {endpointsFromEnvironment, newSequelize} from '../scripts/local-cluster/index.js';

export type FrameworkName = 'koa' | 'express' | 'fastify';

const [framework, mode] = process.argv.slice(2) as [FrameworkName, 'bare' | 'pinned'];
const endpoints = endpointsFromEnvironment();
if (!endpoints || !['koa', 'express', 'fastify'].includes(framework) || !['bare', 'pinned'].includes(mode)) {
	throw new TypeError('Usage: framework-server.ts koa|express|fastify bare|pinned, with MULTIDB_TEST_PRIMARY/REPLICAS set');
}

const db = multidb(newSequelize(endpoints));
const pinned = mode === 'pinned';
const secret = 'a bench secret';
let port: number;
if (framework === 'fastify') {
	const app = Fastify();
	if (pinned) {
		await app.register(fastifyCookie, {secret});
		await app.register(fastifyPinning({db}));
	}

	app.get('/plain', () => 'ok');
	await app.listen({port: 0, host: '127.0.0.1'});
	port = (app.server.address() as AddressInfo).port;
} else {
	let listener: Parameters<typeof createServer>[1];
	if (framework === 'express') {
		const app = express();
		if (pinned) {
			app.use(cookieParser(secret));
			app.use(expressPinning({db}));
		}

		app.get('/plain', (_request, response) => {
			response.send('ok');
		});
		listener = app;
	} else {
		const app = new Koa();
		app.keys = [secret];
		if (pinned) {
			app.use(koaPinning({db}));
		}

		app.use(ctx => {
			ctx.body = 'ok';
		});
		const handle = app.callback();
		listener = (request, response) => {
			void handle(request, response);
		};
	}

	const server = createServer(listener);
	await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
	port = (server.address() as AddressInfo).port;
}

process.send?.(port);
