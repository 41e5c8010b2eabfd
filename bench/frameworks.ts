// Each pinning adapter against its bare framework, on an empty route: Koa, Express and
// Fastify, each side a server process of its own (bench/framework-server.ts), loaded by
// autocannon from another process, runs alternating.
import {execFileSync, fork, type ChildProcess} from 'node:child_process';
import {fileURLToPath} from 'node:url';
import {clusterEnvironment} from '../scripts/local-cluster/index.js';
import {nodeBinary} from '../scripts/node-binary.js';
import type {FrameworkName} from './framework-server.js';
import {markdownTable, median, spread, type BenchCluster} from './harness.js';
import {load, loadSettings} from './koa.js';
import type {BenchSection} from './section.js';
import {nodeVersions} from './throughput.js';

const frameworkNames: readonly FrameworkName[] = ['koa', 'express', 'fastify'];
const runs = 5;
/** On a route that does nothing, any middleware is a visible share of the request. */
const target = 0.9;

export async function frameworksOverhead(cluster: BenchCluster): Promise<BenchSection> {
	const rows: string[][] = [];
	const verdicts: Array<{figure: string; target: string; met: boolean}> = [];
	for (const major of nodeVersions) {
		const node = nodeBinary(major);
		const version = execFileSync(node, ['--version'], {encoding: 'utf8'}).trim();
		for (const framework of frameworkNames) {
			console.log(`  Node ${version}, ${framework}...`);
			await compare(cluster, node, version, framework, rows, verdicts);
		}
	}

	return {
		id: 'frameworks',
		title: 'Pinning adapters: Koa, Express and Fastify against their bare framework',
		method: `An empty \`GET /plain\` route; each side a server process of its own (\`bench/framework-server.ts\`): the bare framework, or the framework with its pinning adapter and the cookie machinery it needs (Koa: \`app.keys\`; Express: \`cookie-parser\` with a secret; Fastify: \`@fastify/cookie\` with a secret). autocannon from another process (${loadSettings.connections} connections, ${loadSettings.seconds} s per run, ${runs} runs per side alternating after a 1 s warm-up); requests/s median (min–max). The requests carry no pin: the common case, a read-only page view.`,
		body: markdownTable(['Node', 'framework', 'bare req/s', 'with pinning req/s', 'ratio'], rows),
		verdicts,
	};
}

async function compare(cluster: BenchCluster, node: string, version: string, framework: FrameworkName, rows: string[][], verdicts: Array<{figure: string; target: string; met: boolean}>): Promise<void> {
	const [bare, pinned] = await Promise.all([start(cluster, node, framework, 'bare'), start(cluster, node, framework, 'pinned')]);
	try {
		const results = {bare: [] as number[], pinned: [] as number[]};
		await load(`${bare.url}/plain`, 1);
		await load(`${pinned.url}/plain`, 1);
		for (let run = 0; run < runs; run++) {
			for (const side of run % 2 === 0 ? (['bare', 'pinned'] as const) : (['pinned', 'bare'] as const)) {
				results[side].push(await load(`${(side === 'bare' ? bare : pinned).url}/plain`, loadSettings.seconds));
			}
		}

		const ratio = median(results.pinned) / median(results.bare);
		rows.push([version, framework, spread(results.bare), spread(results.pinned), `**${ratio.toFixed(3)}**`]);
		verdicts.push({figure: `${framework} with pinning / bare, empty route, Node ${version}: ${ratio.toFixed(3)}`, target: `>= ${target}`, met: ratio >= target});
	} finally {
		bare.child.kill();
		pinned.child.kill();
	}
}

async function start(cluster: BenchCluster, node: string, framework: FrameworkName, mode: 'bare' | 'pinned'): Promise<{url: string; child: ChildProcess}> {
	const child = fork(fileURLToPath(new URL('framework-server.ts', import.meta.url)), [framework, mode], {
		execPath: node,
		execArgv: ['--import', 'tsx'],
		env: {...process.env, ...clusterEnvironment(cluster.local)},
		stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
	});
	const port = await new Promise<number>((resolve, reject) => {
		child.once('message', message => {
			resolve(message as number);
		});
		child.once('exit', code => {
			reject(new Error(`the ${framework} ${mode} server exited with ${code}`));
		});
	});
	return {url: `http://127.0.0.1:${port}`, child};
}
