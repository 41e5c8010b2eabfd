// The forum in a real browser: headless Chromium decides what happens to the pin cookie
// (Secure on plain HTTP, SameSite across a POST and its redirect, HttpOnly, the `.sig`
// twin). Reads come from the lagging replica only, so an unpinned page is surely stale.
import {mkdir} from 'node:fs/promises';
import {setTimeout as delay} from 'node:timers/promises';
import type {Page} from 'playwright-core';
import type {Framework} from '../example/forum-bindings.js';
import {createForum} from '../example/forum.js';
import {browserTest, hasBrowser, launch, serve} from './helpers/browser.js';
import {sharedCluster} from './helpers/shared-cluster.js';
import {newSequelize} from './helpers/sequelize.js';
import {waitForReplay} from './helpers/replay.js';

const cluster = await sharedCluster();
const lagging = cluster.replicas[1];
const names = new Map([cluster.primary, ...cluster.replicas].map(server => [server.port, server.name]));
const pinSeconds = 2;

if (hasBrowser) {
	const setup = newSequelize(cluster);
	await (await createForum({sequelize: setup, table: 'browser_posts'})).sync();
	await setup.close();
	await waitForReplay(cluster);
}

async function serveForum(t: {teardown: (fn: () => Promise<void>) => void}, pinningOn: boolean, framework: Framework = 'koa'): Promise<string> {
	const sequelize = newSequelize(cluster, {replicas: [lagging]});
	const forum = await createForum({framework, sequelize, keys: ['browser test'], pinning: pinningOn ? {seconds: pinSeconds} : false, serverNames: names, table: 'browser_posts'});
	t.teardown(async () => sequelize.close());
	return serve(t, forum.listener);
}

async function writePost(page: Page, base: string, title: string): Promise<void> {
	await page.goto(`${base}/`);
	await page.fill('input[name=title]', title);
	await page.fill('textarea[name=body]', 'Written in a real browser');
	// The form POSTs; the 303 redirect to the post's page is followed by the browser.
	await Promise.all([page.waitForURL(/\/posts\/\d+$/), page.click('button[type=submit]')]);
}

const servedBy = async (page: Page) => page.textContent('.served-by');

// Koa, and Express with its own cookie machinery (cookie-parser's signed cookies): what
// Chromium does with the pin cookie is the same.
for (const framework of ['koa', 'express'] as const) {
	browserTest(`${framework}: in a real browser, the post page after the redirect shows the new post, served by the primary`, async t => {
		const base = await serveForum(t, true, framework);
		const {page} = await launch(t);
		await writePost(page, base, 'Hello from Chromium');
		t.is(await page.textContent('h2.title'), 'Hello from Chromium');
		t.is(await servedBy(page), 'primary');
		await mkdir('test/artifacts', {recursive: true});
		await page.screenshot({path: `test/artifacts/post-page-${framework}.png`, fullPage: true});

		// The pin cookie reached the browser, signed, HttpOnly and SameSite=Lax,
		// and not Secure on plain HTTP (a browser drops a Secure cookie set over HTTP).
		const cookies = await page.context().cookies();
		const pin = cookies.find(cookie => cookie.name === 'multidb_pin_writes');
		t.truthy(pin);
		// Signed by the framework's own machinery: Koa's `.sig` twin cookie, cookie-parser's `s:` prefix.
		if (framework === 'koa') {
			t.truthy(cookies.find(cookie => cookie.name === 'multidb_pin_writes.sig'));
		} else {
			t.regex(decodeURIComponent(pin?.value ?? ''), /^s:1\.\d+\./);
		}

		t.like(pin, {httpOnly: true, sameSite: 'Lax', secure: false, path: '/'});
		// (A string expression: this file is type-checked without the DOM's types.)
		const scriptCookies = await page.evaluate<string>('document.cookie');
		t.false(scriptCookies.includes('multidb_pin_writes'));

		// The list page, read right after: still the primary while pinned.
		await page.goto(`${base}/`);
		t.is(await servedBy(page), 'primary');
		t.true((await page.textContent('.posts') ?? '').includes('Hello from Chromium'));

		// Once the pin expires, pages are served by the replica again.
		await delay((pinSeconds * 1000) + 300);
		await page.goto(`${base}/`);
		t.is(await servedBy(page), lagging.name);
	});
}

browserTest('in a real browser, liking a post (a GET wrapped in dbWrite) shows the new like at once', async t => {
	const base = await serveForum(t, true);
	const {page} = await launch(t);
	await writePost(page, base, 'Like me');
	await delay((pinSeconds * 1000) + 300);
	await Promise.all([page.waitForURL(/\/posts\/\d+$/), page.click('a.like')]);
	t.is(await page.textContent('.likes'), '1');
	t.is(await servedBy(page), 'primary');
});

browserTest('in a real browser without pinning, the same flow shows the stale page', async t => {
	const base = await serveForum(t, false);
	const {page} = await launch(t);
	await writePost(page, base, 'Lost in replication');
	t.is(await page.textContent('.missing'), 'This post does not exist (yet?).');
	t.is(await servedBy(page), lagging.name);
});
