// The attributes the router's metrics and trace events carry, after OpenTelemetry's
// database semantic conventions where one exists (`db.system.name`, `server.address`,
// `server.port`, `db.namespace`, `db.client.connection.*`), and under `multidb.` for what
// is ours. Built once per server (and reason) and reused: a query must not allocate them.
import type {Attributes} from '@opentelemetry/api';
import type {ReplicaInfo} from './replica.js';

/** A server's attributes: where it is, and its name as the router shows it (`host:port`). */
export function serverAttributes(server: ReplicaInfo): Attributes {
	return {
		'db.system.name': 'postgresql',
		'server.address': server.host,
		'server.port': server.port,
		'multidb.server': server.name,
		...(server.database === undefined ? {} : {'db.namespace': server.database}),
	};
}

/**
 * Attributes by target and by a second key (a reason, a failure kind), built on first use.
 * `primary` is a role, not a server: its attributes are rebuilt when writes move.
 */
export class AttributeCache {
	readonly #resolve: (target: string) => ReplicaInfo | undefined;
	readonly #byTarget = new Map<string, Map<string, {server: ReplicaInfo | undefined; attributes: Attributes}>>();
	readonly #extra: (key: string) => Attributes;

	constructor(resolve: (target: string) => ReplicaInfo | undefined, extra: (key: string) => Attributes) {
		this.#resolve = resolve;
		this.#extra = extra;
	}

	get(target: string, key: string): Attributes {
		let byKey = this.#byTarget.get(target);
		if (!byKey) {
			byKey = new Map();
			this.#byTarget.set(target, byKey);
		}

		const server = this.#resolve(target);
		const cached = byKey.get(key);
		if (cached && cached.server === server) {
			return cached.attributes;
		}

		const attributes = Object.freeze({...(server ? serverAttributes(server) : {'db.system.name': 'postgresql'}), 'multidb.target': target, ...this.#extra(key)});
		byKey.set(key, {server, attributes});
		return attributes;
	}
}
