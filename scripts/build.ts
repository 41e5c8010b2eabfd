// `npm run build`: dist/esm (ES modules) and dist/cjs (CommonJS), each with declarations.
// Both builds share one routing context at run time (see source/context.ts).
import {spawnSync} from 'node:child_process';
import {rm, writeFile} from 'node:fs/promises';
import {createRequire} from 'node:module';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
await rm('dist', {recursive: true, force: true});
for (const project of ['tsconfig.build.json', 'tsconfig.cjs.json']) {
	const result = spawnSync(process.execPath, [tsc, '-p', project], {stdio: 'inherit'});
	if (result.status !== 0) {
		process.exit(result.status ?? 1);
	}
}

// Node reads `.js` under dist/cjs as CommonJS only with this marker, as the root
// package.json says "type": "module".
await writeFile('dist/cjs/package.json', `${JSON.stringify({type: 'commonjs'}, undefined, '\t')}\n`);
