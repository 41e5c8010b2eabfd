// The nodes of the cluster: the replicas of `replication.read`, each named, given its
// connect timeout, and put in round-robin order (shuffled once, so that after a deploy every
// process does not send its first read to the same replica), and the configured primary
// after them (it serves replica reads only once it has become a standby).
import {Replica, type ReplicaOptions} from './replica.js';
import type {ConnectionConfig} from './sequelize-internals.js';

export interface Nodes {
	/** `replication.write`. */
	readonly primary: Replica;
	/** `replication.read`, in round-robin order. */
	readonly replicas: readonly Replica[];
}

/** Every node, named `host:port` (the database appended only where two share a server). */
export function createNodes(write: ConnectionConfig, reads: readonly ConnectionConfig[], options: Omit<ReplicaOptions, 'name' | 'config' | 'writeConfig' | 'role'> & {readonly connectTimeoutMs: number; readonly shuffle: boolean}): Nodes {
	const all = [...reads, write];
	const node = (config: ConnectionConfig, index: number, role: ReplicaOptions['role']) => new Replica({...options, name: nameOf(config, index, all), config: withConnectTimeout(config, options.connectTimeoutMs), writeConfig: config, role});
	const replicas = reads.map((config, index) => node(config, index, 'standby'));
	return {primary: node(write, reads.length, 'primary'), replicas: options.shuffle ? shuffled(replicas) : replicas};
}

/** pg's own connect timeout, on read, probe and monitor connections (writes keep the user's config). */
function withConnectTimeout(config: ConnectionConfig, connectTimeoutMs: number): ConnectionConfig {
	const dialectOptions = (config.dialectOptions ?? {}) as Record<string, unknown>;
	return {...config, dialectOptions: {...dialectOptions, connectionTimeoutMillis: connectTimeoutMs}};
}

/**
 * The replicas with these names, as an option keyed or listed by replica name gives them
 * (`weights`, `groups.api`): a name that is no replica's is a TypeError naming it, the
 * option, and the replicas there are, so a typo does not pass silently.
 */
export function replicasNamed(names: readonly string[], option: string, replicas: readonly Replica[]): Replica[] {
	return names.map(name => {
		const replica = replicas.find(candidate => candidate.name === name);
		if (!replica) {
			throw new TypeError(`Unknown replica \`${name}\` in \`${option}\`; the replicas are ${replicas.map(known => `\`${known.name}\``).join(', ')}`);
		}

		return replica;
	});
}

function nameOf(config: ConnectionConfig, index: number, all: readonly ConnectionConfig[]): string {
	const server = (entry: ConnectionConfig) => `${entry.host ?? 'localhost'}:${entry.port ?? 5432}`;
	const name = server(config);
	const sameServer = all.filter(entry => server(entry) === name);
	if (sameServer.length === 1) {
		return name;
	}

	const withDatabase = `${name}/${config.database ?? ''}`;
	return all.filter(entry => `${server(entry)}/${entry.database ?? ''}` === withDatabase).length === 1 ? withDatabase : `${name}#${index + 1}`;
}

/** Fisher-Yates, on a copy. */
function shuffled<T>(items: readonly T[]): T[] {
	const result = [...items];
	for (let index = result.length - 1; index > 0; index--) {
		const other = Math.floor(Math.random() * (index + 1));
		[result[index], result[other]] = [result[other], result[index]];
	}

	return result;
}
