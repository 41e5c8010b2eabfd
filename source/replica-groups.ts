// Replica groups (`groups`): named sets of replicas, and the set a scope's reads are
// confined to (`useReplicas(name, fn)`).
import type {RoutingScope} from './context.js';
import type {Replica} from './replica.js';
import {replicasNamed} from './replica-set.js';

export class ReplicaGroups {
	readonly #groups: ReadonlyMap<string, ReadonlySet<Replica>>;

	/**
	 * @param groups Replica names by group name, as the `groups` option gives them; each name
	 * must be a replica's (a TypeError names the one that is not, and the known ones).
	 */
	constructor(groups: Readonly<Record<string, readonly string[]>>, replicas: readonly Replica[]) {
		this.#groups = new Map(Object.entries(groups).map(([group, names]) => [group, new Set(replicasNamed(names, `groups.${group}`, replicas))]));
	}

	/** The replicas the scope's reads may use: all (undefined) outside `useReplicas`. */
	allowed(scope: RoutingScope | undefined): ReadonlySet<Replica> | undefined {
		const name = scope?.replicaGroup;
		if (name === undefined) {
			return undefined;
		}

		const group = this.#groups.get(name);
		if (!group) {
			const known = [...this.#groups.keys()].map(entry => `\`${entry}\``).join(', ');
			throw new TypeError(`Unknown replica group \`${name}\` in useReplicas(); this router's groups: ${known || 'none (see the `groups` option)'}`);
		}

		return group;
	}
}
