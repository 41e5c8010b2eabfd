// `npm test`: builds the package, starts the shared test cluster (unless MULTIDB_TEST_PRIMARY/REPLICAS point at
// one), runs ava with the TAP reporter, stops the cluster, and ends with the plain line
// `N passed, N failed` that CI reads. Extra arguments go to ava (`npm test -- test/x.ts`).
import {spawn} from 'node:child_process';
import {createInterface} from 'node:readline';
import {clusterEnvironment, LocalCluster} from './local-cluster/index.js';

// test/package.ts loads the built package as users do. CI builds just before.
if (!process.env.MULTIDB_TEST_SKIP_BUILD) {
	await import('./build.js');
}

const usesExistingCluster = Boolean(process.env.MULTIDB_TEST_PRIMARY && process.env.MULTIDB_TEST_REPLICAS);
const startedAt = Date.now();
const cluster = usesExistingCluster ? undefined : await LocalCluster.start();
if (cluster) {
	console.log(`# test cluster: ${cluster.binaries.version}, primary :${cluster.primary.port}, replicas ${cluster.replicas.map(replica => `:${replica.port}`).join(' ')} (up in ${Date.now() - startedAt} ms)`);
}

cluster?.stopOnSignals();

const counts = {pass: 0, fail: 0, skip: 0};
const exitCode = await new Promise<number>(resolve => {
	const ava = spawn(process.execPath, ['node_modules/ava/entrypoints/cli.mjs', '--tap', ...process.argv.slice(2)], {
		env: {...process.env, ...(cluster ? clusterEnvironment(cluster) : {})},
		stdio: ['ignore', 'pipe', 'inherit'],
	});
	const lines = createInterface({input: ava.stdout});
	lines.on('line', line => {
		console.log(line);
		const summary = /^# (pass|fail|skip) (\d+)$/.exec(line);
		if (summary) {
			counts[summary[1] as keyof typeof counts] = Number(summary[2]);
		}
	});
	ava.once('close', code => {
		resolve(code ?? 1);
	});
});

await cluster?.stop();
if (exitCode !== 0 && counts.fail === 0) {
	// ava failed without counting a failed test (a crash before any test ran, bad arguments).
	console.log(`# ava exited with ${exitCode} without a failed test; counting the run as one failure`);
	counts.fail = 1;
}

console.log(`${counts.pass} passed, ${counts.fail} failed${counts.skip > 0 ? `, ${counts.skip} skipped` : ''}`);
process.exitCode = exitCode;
