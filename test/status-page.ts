// The forum's `/status` page in a real browser, on a cluster of its own: under a steady
// load of page views and posts, a replica is stopped; the page, polling as it does, shows
// it quarantined and its reads moved to the other replica. The screenshot is kept in
// test/artifacts/status-page.png.
import {mkdir} from 'node:fs/promises';
import {setTimeout as delay} from 'node:timers/promises';
import {createForum} from '../example/forum.js';
import {browserTest, launch, serve} from './helpers/browser.js';
import {ownCluster} from './helpers/faults.js';
import {waitForReplay} from './helpers/replay.js';
import {newSequelize} from './helpers/sequelize.js';

/** Page views and posts on the forum until stopped, as its users would make them. */
function visitors(base: string): {stop: () => Promise<void>} {
	let running = true;
	const reader = async () => {
		while (running) {
			await fetch(`${base}/`).then(async response => response.text()).catch(() => undefined);
			await delay(20);
		}
	};

	const writer = async () => {
		for (let index = 0; running; index++) {
			await fetch(`${base}/posts`, {method: 'POST', body: new URLSearchParams({title: `post ${index}`, body: 'load'}), redirect: 'manual'}).catch(() => undefined);
			await delay(250);
		}
	};

	const all = [reader(), reader(), writer()];
	return {
		async stop() {
			running = false;
			await Promise.all(all);
		},
	};
}

const rowOf = (server: string) => `#servers tr[data-server="${server}"]`;

browserTest('the status page shows a stopped replica quarantined, its reads moved to the other replica, live', async t => {
	// replica2 replays 1.5 s late, so the lag chart has a line to draw.
	const faults = await ownCluster(t, {applyDelaysMs: [0, 1500]});
	const {endpoints} = faults;
	const names = new Map([endpoints.primary, ...endpoints.replicas].map(server => [server.port, server.name]));
	const sequelize = newSequelize(endpoints);
	t.teardown(async () => sequelize.close());
	const forum = await createForum({sequelize, pinning: false, serverNames: names, operatorPages: true, router: {shuffle: false, connectTimeoutMs: 1000, readTimeoutMs: 2000}});
	t.teardown(async () => forum.stop());
	await forum.sync();
	// Until the replicas have the table, a list page read there would fail.
	await waitForReplay(endpoints);
	const base = await serve(t, forum.listener);
	const load = visitors(base);
	t.teardown(async () => load.stop());

	const {page} = await launch(t);
	await page.setViewportSize({width: 900, height: 820});
	await page.goto(`${base}/status`);
	const reads = async (server: string) => Number(await page.textContent(`${rowOf(server)} .reads`));
	// Both replicas serve the list pages.
	await page.waitForFunction(`[...document.querySelectorAll('#servers .reads')].filter(cell => Number(cell.textContent) > 0).length >= 2`, undefined, {timeout: 15_000});
	t.is(await page.textContent(`${rowOf('replica1')} .state`), 'healthy');
	await delay(4000);

	await faults.cluster.replicas[0].stop('immediate');
	await page.waitForSelector(`${rowOf('replica1')} .state:text("quarantined")`, {timeout: 15_000});
	// A few seconds of the moved load on the chart, and a sample with none on replica1.
	await delay(4000);
	t.is(await page.textContent(`${rowOf('replica1')} .state`), 'quarantined');
	t.is(await reads('replica1'), 0);
	t.true(await reads('replica2') > 0);
	t.regex(await page.textContent(`${rowOf('replica1')} .error`) ?? '', /\S/);
	t.is(await page.textContent(`${rowOf('primary')} .state`), 'writes');
	// Both charts have a line per server that has data.
	t.true(await page.locator('#reads polyline').count() >= 3);
	t.true(await page.locator('#lag polyline').count() >= 1);
	await mkdir('test/artifacts', {recursive: true});
	await page.screenshot({path: 'test/artifacts/status-page.png', fullPage: true});
});
