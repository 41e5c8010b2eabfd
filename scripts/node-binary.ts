// The official Node.js binary of a major version, from the npm registry (the `node-<os>-<cpu>`
// packages), installed into a cache folder under node_modules: no system change, and a fresh
// clone gets it with the registry it already uses. `tsx scripts/node-binary.ts 24` prints
// the binary's path (installing it on first use).
import {execFileSync} from 'node:child_process';
import {existsSync} from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cacheRoot = path.join(projectRoot, 'node_modules', '.cache', 'sequelize-multidb', 'node');

/** The path of Node `major`'s binary, installed from the npm registry if it is not cached yet. */
export function nodeBinary(major: number): string {
	if (!Number.isInteger(major) || major < 18) {
		throw new TypeError(`Expected \`major\` to be a Node.js major version >= 18, got ${String(major)}`);
	}

	if (Number(process.versions.node.split('.')[0]) === major) {
		return process.execPath;
	}

	const packageName = `node-${process.platform === 'win32' ? 'win' : process.platform}-${process.arch}`;
	const prefix = path.join(cacheRoot, String(major));
	const binary = path.join(prefix, 'node_modules', packageName, 'bin', process.platform === 'win32' ? 'node.exe' : 'node');
	if (!existsSync(binary)) {
		const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
		execFileSync(npm, ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', '--no-package-lock', `${packageName}@${major}`], {stdio: ['ignore', 'ignore', 'inherit']});
	}

	return binary;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
	console.log(nodeBinary(Number(process.argv[2])));
}
