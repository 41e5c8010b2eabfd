// Headless Chromium for the browser tests (Debian's, or CHROMIUM_PATH), and a Node HTTP
// server for an app under test, both closed at the end of the test.
import {existsSync} from 'node:fs';
import {createServer, type RequestListener, type Server} from 'node:http';
import type {AddressInfo} from 'node:net';
import test from 'ava';
import {chromium, type Browser, type Page} from 'playwright-core';

const browserPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const hasBrowser = existsSync(browserPath);
if (!hasBrowser) {
	console.log(`# browser tests skipped: no Chromium at ${browserPath} (install Debian's chromium, or set CHROMIUM_PATH)`);
}

/** Serial where Chromium is installed (one browser at a time on a small machine), skipped elsewhere. */
export const browserTest = hasBrowser ? test.serial : test.skip;

type Teardown = {teardown: (fn: () => Promise<void>) => void};

export async function launch(t: Teardown): Promise<{browser: Browser; page: Page}> {
	const browser = await chromium.launch({
		executablePath: browserPath,
		// Without the background-networking flags, Chromium keeps dialling hosts this closed network refuses.
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
	});
	t.teardown(async () => browser.close());
	const page = await browser.newPage();
	return {browser, page};
}

/** Serves `app` on a free loopback port; resolves its base URL. */
export async function serve(t: Teardown, app: RequestListener): Promise<string> {
	const server = await new Promise<Server>(resolve => {
		const listening = createServer(app).listen(0, '127.0.0.1', () => {
			resolve(listening);
		});
	});
	t.teardown(async () => {
		server.closeAllConnections();
		await new Promise(resolve => {
			server.close(resolve);
		});
	});
	return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
