import test from 'ava';
import request from 'supertest';
import {createForum} from '../example/forum.js';
import {sharedCluster} from './helpers/shared-cluster.js';
import {newSequelize, serverNamer} from './helpers/sequelize.js';
import {waitForReplay} from './helpers/replay.js';

const cluster = await sharedCluster();
const lagging = cluster.replicas[1];
const names = new Map([cluster.primary, ...cluster.replicas].map(server => [server.port, server.name]));

// The forum's table is shared by this file's tests: create it once, everywhere.
const setupSequelize = newSequelize(cluster);
await createForum({sequelize: setupSequelize}).sync();
await setupSequelize.close();
await waitForReplay(cluster);

function forumOn(t: {teardown: (fn: () => Promise<void>) => void}, pinningOn: boolean) {
	// Only the lagging replica serves reads: an unpinned read of a new post is surely stale.
	const sequelize = newSequelize(cluster, {replicas: [lagging]});
	t.teardown(async () => sequelize.close());
	return createForum({sequelize, pinning: pinningOn ? {} : false, keys: ['test'], serverNames: names}).app.callback();
}

test('posting redirects to the new post, whose page is served by the primary and shows it', async t => {
	const agent = request.agent(forumOn(t, true));
	const posted = await agent.post('/posts').type('form').send({title: 'Hello <world>', body: 'First!'}).expect(303);
	const location = posted.headers.location;
	t.regex(location, /^\/posts\/\d+$/);
	const page = await agent.get(location).expect(200);
	t.is(page.headers['x-served-by'], 'primary');
	t.true(page.text.includes('<h2 class="title">Hello &lt;world&gt;</h2>'));
	t.true(page.text.includes('<span class="served-by">primary</span>'));
});

test('without pinning, the post page right after posting is stale on the lagging replica', async t => {
	const agent = request.agent(forumOn(t, false));
	const posted = await agent.post('/posts').type('form').send({title: 'Lost?', body: 'Not yet replayed'}).expect(303);
	const page = await agent.get(posted.headers.location).expect(404);
	t.is(page.headers['x-served-by'], lagging.name);
});

test('liking a post is a GET wrapped in dbWrite: it writes on the primary and pins the client', async t => {
	const agent = request.agent(forumOn(t, true));
	const posted = await agent.post('/posts').type('form').send({title: 'Like me', body: '!'}).expect(303);
	const location = posted.headers.location;
	// A new client (no cookie) likes the post: its GET must still reach the primary.
	const liker = request.agent(forumOn(t, true));
	const liked = await liker.get(`${location}/like`).expect(302);
	t.is(liked.headers['x-served-by'], 'primary');
	t.true((liked.headers['set-cookie'] as unknown as string[]).some(cookie => cookie.startsWith('multidb_pin_writes=')));
	const page = await liker.get(location).expect(200);
	t.true(page.text.includes('<span class="likes">1</span>'));
});

test('a post without a title is refused with 400', async t => {
	const response = await request(forumOn(t, true)).post('/posts').type('form').send({body: 'no title'});
	t.is(response.status, 400);
	t.true(response.text.includes('A post needs a title and a body.'));
});

test('the list page names the servers that answered', async t => {
	const page = await request(forumOn(t, true)).get('/').expect(200);
	const served = /<span class="served-by">([^<]+)<\/span>/.exec(page.text)?.[1];
	t.is(served, serverNamer(cluster)(lagging.port));
});
