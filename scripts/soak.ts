// `npm run soak`: a seeded, randomized fault schedule under mixed load on a real cluster,
// then a check of everything that happened (scripts/soak/checker.ts). Exits 1 on any
// violation. Options:
//
//   --seconds N | --minutes N   how long the load and faults run (default 90 s)
//   --seed N                    the fault schedule's seed (default: random, printed)
//   --pgbouncer                 a PgBouncer (transaction pooling) in front of each server
//   --out DIR                   where the history, summary and timeline go (default soak-results/)
//   --control                   no pinning and no tokens: a run that must find stale reads,
//                               to show the checker sees them
//
// As root, with nftables and iproute2, the soak re-runs itself inside a network namespace
// of its own, where its partitions (dropped packets) touch nothing else on the machine.
// Elsewhere the partition fault is skipped, and the reason printed.
import {spawn, spawnSync} from 'node:child_process';
import {copyFile, mkdir, writeFile} from 'node:fs/promises';
import path from 'node:path';
import {parseArgs} from 'node:util';
import {endpointsOf, findPgBouncer, LocalCluster, newSequelize, withClient} from './local-cluster/index.js';
import {checkHistory, primaryReturnMs, type FinalPost} from './soak/checker.js';
import {FaultInjector, partitionsUnavailable, systemTools} from './soak/faults.js';
import {HistoryWriter} from './soak/history.js';
import {SoakLoad, soakTable} from './soak/load.js';
import {printReport, reportMarkdown} from './soak/report.js';
import {faultSchedule, primaryFaults, replicaFaults} from './soak/schedule.js';
import {timelineSvg} from './soak/timeline.js';
import type {MultiDbOptions} from '../source/index.js';

const {values: args} = parseArgs({options: {
	seconds: {type: 'string'},
	minutes: {type: 'string'},
	seed: {type: 'string'},
	pgbouncer: {type: 'boolean', default: false},
	out: {type: 'string', default: 'soak-results'},
	control: {type: 'boolean', default: false},
}});
const runMs = args.minutes ? Number(args.minutes) * 60_000 : Number(args.seconds ?? 90) * 1000;
const seed = args.seed === undefined ? Math.floor(Math.random() * 1_000_000) : Number(args.seed);
if (!Number.isFinite(runMs) || runMs < 15_000 || !Number.isInteger(seed)) {
	console.error('Usage: npm run soak -- [--seconds N (>= 15) | --minutes N] [--seed INTEGER] [--pgbouncer] [--control] [--out DIR]');
	process.exit(2);
}

if (args.pgbouncer && !findPgBouncer()) {
	console.log('soak: skipped (no pgbouncer binary: `apt-get install pgbouncer`, or set PGBOUNCER)');
	process.exit(0);
}

const namespaceReason = partitionsUnavailable();
if (!namespaceReason && !process.env.MULTIDB_SOAK_NETNS) {
	process.exit(await runInOwnNamespace());
}

// The settings a production user would pick: reads give up on a silent server after 3 s,
// and a replica 2 s behind leaves rotation, however few bytes it misses (the replay-pause
// fault holds replay 2–7 s while the load writes a few kB a second).
const routerOptions: MultiDbOptions = {readTimeoutMs: 3000, connectTimeoutMs: 2000, maxLagMs: 2000, maxLagBytes: 0};
const followAllowanceMs = primaryReturnMs(routerOptions);
const cluster = await LocalCluster.start({applyDelaysMs: [0, 0], pgbouncer: args.pgbouncer});
cluster.stopOnSignals();
const outDir = path.resolve(args.out);
await mkdir(outDir, {recursive: true});
const history = new HistoryWriter(path.join(outDir, 'history.jsonl'));
const partitions = !namespaceReason;
const injector = new FaultInjector(cluster, history, partitions);
process.exitCode = 1;
try {
	const endpoints = endpointsOf(cluster);
	const names = new Map(cluster.servers.flatMap(server => [[server.port, server.name], ...server.bouncer ? [[server.bouncer.port, server.name] as const] : []]));
	const load = new SoakLoad({
		connect: () => newSequelize(endpoints, {pool: {max: 10}}),
		routerOptions,
		names,
		history,
		usersPerMode: 4,
		anonymousReaders: 3,
		control: args.control,
	});
	await load.prepare();
	await cluster.waitForReplay();

	const kinds = [...replicaFaults, ...primaryFaults].filter(kind => partitions || kind !== 'partition');
	const schedule = faultSchedule(seed, runMs, kinds);
	console.log(`# soak: ${runMs / 1000} s, seed ${seed}, ${schedule.length} faults scheduled${args.pgbouncer ? ', behind PgBouncer' : ''}; ${cluster.binaries.version}`);
	console.log(`# router options: ${JSON.stringify(routerOptions)}`);
	if (!partitions) {
		console.log(`# partition faults skipped: ${namespaceReason}`);
	}

	if (args.control) {
		console.log('# control run: no pinning, no consistency tokens; stale reads are expected');
	}

	load.start();
	const began = Date.now();
	await injector.run(schedule, () => Date.now() - began > runMs);
	const left = runMs - (Date.now() - began);
	if (left > 0) {
		await new Promise(resolve => {
			setTimeout(resolve, left);
		});
	}

	await load.stop();
	for (const skipped of injector.skipped) {
		console.log(`# fault not made: ${skipped}`);
	}

	const finalPosts = await withClient(injector.primary, async client => (await client.query<FinalPost>(`SELECT id, title, likes FROM ${soakTable}`)).rows);
	await history.close();
	const servers = cluster.servers.map(server => server.name);
	const report = checkHistory(history.entries, finalPosts, {servers, primaryReturnMs: followAllowanceMs});
	await writeFile(path.join(outDir, 'summary.json'), `${JSON.stringify({seed, runMs, pgbouncer: args.pgbouncer, postgres: cluster.binaries.version, routerOptions, report}, undefined, '\t')}\n`);
	const title = `Soak: ${runMs / 1000} s, seed ${seed}${args.pgbouncer ? ', behind PgBouncer' : ''}`;
	await writeFile(path.join(outDir, 'timeline.svg'), timelineSvg(history.entries, servers, title));
	const command = `npm run soak -- ${args.minutes ? `--minutes ${args.minutes}` : `--seconds ${runMs / 1000}`} --seed ${seed}${args.pgbouncer ? ' --pgbouncer' : ''}${args.control ? ' --control' : ''}`;
	await writeFile(path.join(outDir, 'report.md'), reportMarkdown(report, {title, command, postgres: cluster.binaries.version, routerOptions, followAllowanceMs, skipped: injector.skipped}));
	printReport(report, followAllowanceMs);
	console.log(`# history.jsonl, summary.json, report.md and timeline.svg in ${outDir}`);
	process.exitCode = report.violations.length === 0 ? 0 : 1;
} catch (error) {
	console.log(`soak: harness failure: ${(error as Error).message}`);
	throw error;
} finally {
	injector.dispose();
	// The servers' logs, for a run that needs looking into.
	await Promise.all(cluster.servers.map(async server => copyFile(server.logFile, path.join(outDir, `${server.name}.log`)).catch(() => undefined)));
	await cluster.stop();
}

// The routers' sockets and timers are closed; exit without waiting for stragglers.
process.exit();

/**
 * Runs this script again inside a new network namespace with only loopback up, and removes
 * the namespace afterwards. Resolves the child's exit code.
 */
async function runInOwnNamespace(): Promise<number> {
	const namespace = `multidb-soak-${process.pid}`;
	const ipTool = systemTools.ip ?? 'ip';
	const ip = (...ipArgs: string[]) => {
		const result = spawnSync(ipTool, ipArgs, {encoding: 'utf8'});
		if (result.status !== 0) {
			throw new Error(`\`ip ${ipArgs.join(' ')}\` failed: ${result.stderr}`);
		}
	};

	ip('netns', 'add', namespace);
	try {
		ip('netns', 'exec', namespace, ipTool, 'link', 'set', 'lo', 'up');
		console.log(`# soak: running in network namespace ${namespace}`);
		const child = spawn(ipTool, ['netns', 'exec', namespace, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
			stdio: 'inherit',
			env: {...process.env, MULTIDB_SOAK_NETNS: namespace},
		});
		for (const signal of ['SIGINT', 'SIGTERM'] as const) {
			process.on(signal, () => child.kill(signal));
		}

		return await new Promise(resolve => {
			child.once('close', code => {
				resolve(code ?? 1);
			});
		});
	} finally {
		ip('netns', 'delete', namespace);
	}
}
