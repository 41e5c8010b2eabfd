// A small forum on Koa + Sequelize + sequelize-multidb: list posts, write a post (POST,
// then a 303 redirect to its page), view a post, like it (a GET that writes, wrapped in
// `dbWrite`). Each page says, discreetly, which server answered its reads. With
// `operatorPages`, `/status` and `/metrics` show the router at work (status.ts).
import {AsyncLocalStorage} from 'node:async_hooks';
import KoaRouter, {type RouterContext} from '@koa/router';
import Koa from 'koa';
import {DataTypes, Model, type Sequelize} from 'sequelize';
import {dbWrite, multidb, pinning, type MultiDb, type MultiDbOptions, type PinningOptions} from '../source/index.js';
import {operatorPages} from './status.js';

interface PostAttributes {
	id?: number;
	title: string;
	body: string;
	likes?: number;
}

export interface ForumOptions {
	readonly sequelize: Sequelize;
	/** The router's options. */
	readonly router?: MultiDbOptions;
	/** `false` runs the forum without pinning, to show the stale read it prevents. */
	readonly pinning?: Omit<PinningOptions, 'db'> | false;
	/** Signs the pin cookie. */
	readonly keys?: string[];
	/** Display names of servers by port (the demo names them primary, replica1, replica2). */
	readonly serverNames?: ReadonlyMap<number, string>;
	/** The posts table. */
	readonly table?: string;
	/** Serve `/status` and `/metrics` (OpenTelemetry's Prometheus exporter). */
	readonly operatorPages?: boolean;
}

export interface Forum {
	readonly app: Koa;
	readonly db: MultiDb;
	/** Creates the posts table on the primary (replicas get it by replication). */
	readonly sync: () => Promise<void>;
	/** Stops the operator pages' sampling and instrumentation (the Sequelize instance is the caller's). */
	readonly stop: () => Promise<void>;
}

export function createForum(options: ForumOptions): Forum {
	const {sequelize} = options;
	const db = multidb(sequelize, options.router);
	const Post = definePost(sequelize, options.table ?? 'forum_posts');
	const answered = trackAnsweringServers(sequelize, db, options.serverNames);
	const app = new Koa();
	if (options.keys) {
		app.keys = options.keys;
	}

	app.use(answered.middleware);
	if (options.pinning !== false) {
		app.use(pinning({db, ...options.pinning}));
	}

	const operator = options.operatorPages ? operatorPages(db, options.serverNames ?? new Map()) : undefined;
	if (operator) {
		app.use(operator.router.routes());
	}

	const router = new KoaRouter();
	router.get('/', async ctx => {
		const posts = await Post.findAll({order: [['id', 'DESC']], limit: 50});
		ctx.body = page('Forum', `
			<form method="post" action="/posts">
				<input name="title" placeholder="Title" required>
				<textarea name="body" placeholder="Say something" required></textarea>
				<button type="submit">Post</button>
			</form>
			<ul class="posts">${posts.map(post => `<li><a href="/posts/${post.id}">${escape(post.title)}</a> (${post.likes} likes)</li>`).join('')}</ul>
		`, answered.servers());
	});

	router.post('/posts', async ctx => {
		const {title, body} = await readForm(ctx);
		if (!title || !body) {
			ctx.status = 400;
			ctx.body = page('Missing fields', '<p>A post needs a title and a body.</p>', answered.servers());
			return;
		}

		const post = await Post.create({title, body});
		ctx.status = 303;
		ctx.redirect(`/posts/${post.id}`);
	});

	router.get('/posts/:id', async ctx => {
		const post = await Post.findByPk(Number(ctx.params.id));
		if (!post) {
			ctx.status = 404;
			ctx.body = page('Not found', '<p class="missing">This post does not exist (yet?).</p>', answered.servers());
			return;
		}

		ctx.body = page(escape(post.title), `
			<article><h2 class="title">${escape(post.title)}</h2><p>${escape(post.body)}</p></article>
			<p><span class="likes">${post.likes}</span> likes · <a class="like" href="/posts/${post.id}/like">Like</a> · <a href="/">All posts</a></p>
		`, answered.servers());
	});

	// A GET that writes: `dbWrite` sends this request's reads to the primary and pins the
	// client, as a POST would.
	router.get('/posts/:id/like', dbWrite(async (ctx: RouterContext) => {
		await Post.increment('likes', {where: {id: Number(ctx.params.id)}});
		ctx.redirect(`/posts/${ctx.params.id}`);
	}));

	app.use(router.routes());
	app.use(router.allowedMethods());
	return {
		app,
		db,
		sync: async () => {
			await Post.sync();
		},
		stop: async () => operator?.stop(),
	};
}

/** One model class per forum, so two forums (the demo runs two) never share a Sequelize. */
function definePost(sequelize: Sequelize, tableName: string) {
	class Post extends Model<PostAttributes, PostAttributes> implements PostAttributes {
		declare id?: number;
		declare title: string;
		declare body: string;
		declare likes?: number;
	}

	Post.init({
		id: {type: DataTypes.INTEGER, autoIncrement: true, primaryKey: true},
		title: {type: DataTypes.STRING(200), allowNull: false},
		body: {type: DataTypes.TEXT, allowNull: false},
		likes: {type: DataTypes.INTEGER, allowNull: false, defaultValue: 0},
	}, {sequelize, tableName});
	return Post;
}

/**
 * Collects, per request, the servers whose connections ran its queries (an `afterQuery`
 * hook sees the connection), for the page footer and the `X-Served-By` header.
 */
function trackAnsweringServers(sequelize: Sequelize, db: MultiDb, names: ReadonlyMap<number, string> = new Map()) {
	const perRequest = new AsyncLocalStorage<Set<string>>();
	const replicaPorts = new Set(db.replicas.map(replica => replica.port));
	sequelize.addHook('afterQuery', (_options, query) => {
		const {connection} = query as unknown as {connection: {port: number}};
		const role = replicaPorts.has(connection.port) ? 'replica' : 'primary';
		perRequest.getStore()?.add(names.get(connection.port) ?? `${role} :${connection.port}`);
	});
	return {
		servers: () => [...perRequest.getStore() ?? []],
		middleware: answeringServers,
	};

	async function answeringServers(ctx: Koa.Context, next: Koa.Next): Promise<void> {
		const servers = new Set<string>();
		await perRequest.run(servers, next);
		if (servers.size > 0) {
			ctx.set('X-Served-By', [...servers].join(', '));
		}
	}
}

function page(title: string, content: string, servers: string[]): string {
	return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>body{font:16px/1.5 system-ui;max-width:40em;margin:2em auto}footer{color:#888;font-size:12px;margin-top:3em}textarea,input{display:block;width:100%;margin:.3em 0}</style>
</head><body><h1><a href="/">Forum</a></h1>${content}
<footer>Reads served by <span class="served-by">${servers.map(server => escape(server)).join(', ') || 'none'}</span></footer>
</body></html>`;
}

function escape(text: string): string {
	return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll('\'', '&#39;');
}

/** Reads a small urlencoded form body (the forum's only form) without a body-parser. */
async function readForm(ctx: Koa.Context): Promise<Record<string, string>> {
	let raw = '';
	for await (const chunk of ctx.req) {
		raw += String(chunk);
		if (raw.length > 100_000) {
			ctx.throw(413, 'Form too large');
		}
	}

	return Object.fromEntries(new URLSearchParams(raw));
}
