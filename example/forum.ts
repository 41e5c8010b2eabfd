// A small forum on Sequelize + sequelize-multidb, served by Koa, Express or Fastify
// (`framework`): list posts, write a post (POST, then a 303 redirect to its page), view a
// post, like it (a GET that writes, marked with the framework's `dbWrite`). Each page says,
// discreetly, which server answered its reads. With `operatorPages`, `/status` and
// `/metrics` show the router at work (status.ts). The pages are framework-free; each
// framework's binding (forum-bindings.ts) routes to them with its own adapter.
import {AsyncLocalStorage} from 'node:async_hooks';
import type {RequestListener} from 'node:http';
import {DataTypes, Model, type Sequelize} from 'sequelize';
import {multidb, type MultiDb, type MultiDbOptions, type PinningOptions} from '../source/index.js';
import {bindings, type Framework} from './forum-bindings.js';
import {operatorPages, type OperatorPages} from './status.js';

interface PostAttributes {
	id?: number;
	title: string;
	body: string;
	likes?: number;
}

export type {Framework} from './forum-bindings.js';

export interface ForumOptions {
	readonly sequelize: Sequelize;
	/** The web framework that serves it. */
	readonly framework?: Framework;
	/** The router's options. */
	readonly router?: MultiDbOptions;
	/** `false` runs the forum without pinning, to show the stale read it prevents. */
	readonly pinning?: Omit<PinningOptions, 'db'> | false;
	/** Signs the pin cookie: Koa's `app.keys`, cookie-parser's or @fastify/cookie's secret. */
	readonly keys?: string[];
	/** Display names of servers by port (the demo names them primary, replica1, replica2). */
	readonly serverNames?: ReadonlyMap<number, string>;
	/** The posts table. */
	readonly table?: string;
	/** Serve `/status` and `/metrics` (OpenTelemetry's Prometheus exporter). */
	readonly operatorPages?: boolean;
	/** A failed request answers 500 with the error in an `X-Error` header (the soak records it). */
	readonly reportErrors?: boolean;
}

export interface Forum {
	/** The forum, for `http.createServer` (or supertest). */
	readonly listener: RequestListener;
	readonly db: MultiDb;
	/** Creates the posts table on the primary (replicas get it by replication). */
	readonly sync: () => Promise<void>;
	/** Stops the operator pages' sampling and instrumentation (the Sequelize instance is the caller's). */
	readonly stop: () => Promise<void>;
}

/** What a route answers: a page, or a redirect. */
export interface Page {
	readonly status: number;
	readonly html?: string;
	readonly location?: string;
}

/** The forum's pages, whatever serves them. */
export interface ForumPages {
	list(): Promise<Page>;
	create(form: Record<string, string | undefined>): Promise<Page>;
	show(id: string): Promise<Page>;
	/** A write (the binding marks it as one). */
	like(id: string): Promise<Page>;
	/** Runs a request's handling with a fresh list of the servers that answer it. */
	tracked<T>(handle: () => T): T;
	/** The servers that answered the current request, for `X-Served-By`. */
	servedBy(): string;
}

export async function createForum(options: ForumOptions): Promise<Forum> {
	const {sequelize} = options;
	const db = multidb(sequelize, options.router);
	const Post = definePost(sequelize, options.table ?? 'forum_posts');
	const answered = trackAnsweringServers(sequelize, db, options.serverNames);
	const render = (status: number, title: string, content: string): Page => ({status, html: page(title, content, answered.servers())});
	const pages: ForumPages = {
		async list() {
			const posts = await Post.findAll({order: [['id', 'DESC']], limit: 50});
			return render(200, 'Forum', `
			<form method="post" action="/posts">
				<input name="title" placeholder="Title" required>
				<textarea name="body" placeholder="Say something" required></textarea>
				<button type="submit">Post</button>
			</form>
			<ul class="posts">${posts.map(post => `<li><a href="/posts/${post.id}">${escape(post.title)}</a> (${post.likes} likes)</li>`).join('')}</ul>`);
		},
		async create({title, body}) {
			if (!title || !body) {
				return render(400, 'Missing fields', '<p>A post needs a title and a body.</p>');
			}

			const post = await Post.create({title, body});
			return {status: 303, location: `/posts/${post.id}`};
		},
		async show(id) {
			const post = await Post.findByPk(Number(id));
			if (!post) {
				return render(404, 'Not found', '<p class="missing">This post does not exist (yet?).</p>');
			}

			return render(200, escape(post.title), `
			<article><h2 class="title">${escape(post.title)}</h2><p>${escape(post.body)}</p></article>
			<p><span class="likes">${post.likes}</span> likes · <a class="like" href="/posts/${post.id}/like">Like</a> · <a href="/">All posts</a></p>`);
		},
		async like(id) {
			await Post.increment('likes', {where: {id: Number(id)}});
			return {status: 302, location: `/posts/${id}`};
		},
		tracked: answered.tracked,
		servedBy: () => answered.servers().join(', '),
	};

	const operator: OperatorPages | undefined = options.operatorPages ? operatorPages(db, options.serverNames ?? new Map()) : undefined;
	const listener = await bindings[options.framework ?? 'koa']({db, pages, operator, pinning: options.pinning, keys: options.keys, reportErrors: options.reportErrors === true});
	return {
		listener,
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
		tracked: <T>(handle: () => T): T => perRequest.run(new Set(), handle),
	};
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
