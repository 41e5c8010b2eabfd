import {execFile} from 'node:child_process';
import {existsSync} from 'node:fs';
import {promisify} from 'node:util';
import test from 'ava';
import {sharedCluster} from './helpers/shared-cluster.js';

// These tests exercise the built package (dist/), as users install it: `npm test` builds
// it first.
const cluster = await sharedCluster();
const url = (server: typeof cluster.primary) => `postgres://${encodeURIComponent(server.username)}${server.password ? `:${encodeURIComponent(server.password)}` : ''}@${server.host}:${server.port}/${encodeURIComponent(server.database)}`;

test('the package loads from require and import, and both builds share one routing context', async t => {
	const {stdout} = await promisify(execFile)(process.execPath, ['test/fixtures/dual-package.cjs'], {
		env: {...process.env, MULTIDB_TEST_PRIMARY: url(cluster.primary), MULTIDB_TEST_REPLICAS: cluster.replicas.map(replica => url(replica)).join(',')},
	});
	const result = JSON.parse(stdout) as {exports: {cjs: string[]; esm: string[]}; pinnedAcrossBuilds: boolean; plain: {inRecovery: boolean}; pinnedThroughCjs: {inRecovery: boolean}; secondInstall?: string; openTelemetry: {loadedByMain: boolean; sameExports: boolean; instrumentedAcrossBuilds: boolean}; adapters: Record<string, {cjs: string[]; esm: string[]}>};
	t.true(result.exports.cjs.includes('multidb'));
	t.deepEqual(result.exports.cjs, result.exports.esm);
	t.true(result.pinnedAcrossBuilds);
	t.deepEqual(result.plain, {inRecovery: true});
	// usePrimaryDb from the CommonJS build governs a router installed by the ES module build.
	t.deepEqual(result.pinnedThroughCjs, {inRecovery: false});
	t.regex(result.secondInstall ?? '', /already installed/);
	// `@opentelemetry/api` is an optional peer: the main entry never loads it, and
	// `sequelize-multidb/opentelemetry` (either build) instruments a router of either build.
	t.deepEqual(result.openTelemetry, {loadedByMain: false, sameExports: true, instrumentedAcrossBuilds: true});
	t.deepEqual(result.adapters, {express: {cjs: ['dbWrite', 'pinning'], esm: ['dbWrite', 'pinning']}, fastify: {cjs: ['dbWrite', 'pinning'], esm: ['dbWrite', 'pinning']}});
});

test('the build ships type declarations for both module systems', t => {
	for (const file of ['dist/esm/index.d.ts', 'dist/cjs/index.d.ts', 'dist/esm/opentelemetry.d.ts', 'dist/cjs/opentelemetry.d.ts', 'dist/esm/express.d.ts', 'dist/cjs/express.d.ts', 'dist/esm/fastify.d.ts', 'dist/cjs/fastify.d.ts', 'dist/cjs/package.json']) {
		t.true(existsSync(file), file);
	}
});
