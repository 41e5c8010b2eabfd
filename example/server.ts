// `npm run example`: the forum on http://localhost:3000 (PORT to change), on a local
// cluster, served by Koa (`-- --framework express` or `-- --framework fastify` for the
// others). Open it, write a post, and look at the footer: the post's page is served by the
// primary right after you write, by the replicas again 15 s later. /status shows each
// server live; /metrics is the router's OpenTelemetry metrics for Prometheus.
import {createServer} from 'node:http';
import {parseArgs} from 'node:util';
import {frameworkNames, type Framework} from './forum-bindings.js';
import {createForum} from './forum.js';
import {startCluster} from './local-cluster.js';

const {values} = parseArgs({options: {framework: {type: 'string', default: 'koa'}}});
const framework = values.framework as Framework;
if (!frameworkNames.includes(framework)) {
	console.error(`Unknown --framework ${values.framework}; choose one of ${frameworkNames.join(', ')}`);
	process.exit(2);
}

const cluster = await startCluster();
const sequelize = cluster.connect();
const forum = await createForum({sequelize, framework, keys: ['example secret: change me'], serverNames: cluster.names, operatorPages: true});
await forum.sync();
const port = Number(process.env.PORT ?? 3000);
createServer(forum.listener).listen(port, () => {
	console.log(`Forum on http://localhost:${port}, served by ${framework} (Ctrl-C to stop)`);
	console.log(`Servers, live: http://localhost:${port}/status · Prometheus metrics: http://localhost:${port}/metrics`);
});
