// The router's parts for one Sequelize instance with replicas, built and wired together:
// the nodes, the read and write pools, how reads choose a replica (balancer, affinity,
// groups), the prober, the monitor and the primary follower. The facade (multidb.ts) keeps
// the handle; `install` puts the pools in place.
import type {Sequelize} from 'sequelize';
import {Affinity} from './affinity.js';
import {Balancer} from './balancer.js';
import {CatchUp} from './catch-up.js';
import type {Consistency} from './consistency.js';
import {ReadDeadlines} from './deadline.js';
import type {EmitEvent} from './events.js';
import {nativePools} from './install.js';
import {LagMonitor} from './monitor.js';
import type {ResolvedMultiDbOptions} from './options.js';
import {PrimaryFollower} from './primary-follower.js';
import {Prober} from './prober.js';
import {readPastDeadline, type ReadAttempt} from './read-attempt.js';
import {ReadPoolOfReplicas} from './read-pool.js';
import type {Replica} from './replica.js';
import {ReplicaGroups} from './replica-groups.js';
import {createNodes, replicasNamed} from './replica-set.js';
import {configuredReplicas, connectionManagerOf} from './sequelize-internals.js';
import {WritePool} from './write-pool.js';

/** Bound on a monitor probe when `readTimeoutMs` is 0 (off): a probe must never hang. */
const defaultProbeTimeoutMs = 10_000;

export interface ReadSide {
	readonly pool: ReadPoolOfReplicas;
	readonly writePool: WritePool;
	/** `replication.write`, as a node. */
	readonly configuredPrimary: Replica;
	readonly balancer: Balancer;
	readonly affinity: Affinity;
	readonly prober: Prober;
	readonly monitor: LagMonitor | undefined;
	readonly deadlines: ReadDeadlines<ReadAttempt> | undefined;
}

export interface AssemblyOptions {
	readonly sequelize: Sequelize;
	readonly options: ResolvedMultiDbOptions;
	/** The router the flows' marks are kept for. */
	readonly router: object;
	readonly consistency: Consistency;
	readonly emit: EmitEvent;
	/** A read could not connect to a replica and moved on: counted as a failover. */
	readonly countConnectFailover: (replica: Replica) => void;
}

/** The parts, started; undefined where no replica is configured (reads then use the primary). */
export function assembleReadSide({sequelize, options, router, consistency, emit, countConnectFailover}: AssemblyOptions): ReadSide | undefined {
	const manager = connectionManagerOf(sequelize);
	const configs = configuredReplicas(sequelize);
	const native = nativePools(sequelize);
	const replication = manager.config.replication;
	if (!replication || configs.length === 0 || !native) {
		return undefined;
	}

	const {primary, replicas} = createNodes(replication.write, configs, {manager, flapWindowMs: options.cooldownMs, maxLagMs: options.maxLagMs, maxLagBytes: options.maxLagBytes, emit, connectTimeoutMs: options.connectTimeoutMs, shuffle: options.shuffle});
	const nodes = [...replicas, primary];
	replicasNamed(Object.keys(options.weights), 'weights', replicas);
	const groups = new ReplicaGroups(options.groups, replicas);
	const writePool = new WritePool({manager, nativePool: native.write, configuredPrimary: primary});
	const follower = new PrimaryFollower({writePool, follow: options.followPrimary, emit});
	const prober = new Prober({manager, timeoutMs: options.connectTimeoutMs});
	const deadlines = options.readTimeoutMs > 0 ? new ReadDeadlines(options.readTimeoutMs, readPastDeadline) : undefined;
	const balancer = new Balancer(nodes, {policy: options.balance, weights: options.weights});
	let monitor: LagMonitor | undefined;
	const affinity = new Affinity({always: options.affinity, router, balancer, primaryPositionSince: since => monitor?.primaryPositionSince(since)});
	const pool = new ReadPoolOfReplicas({
		replicas: nodes,
		router,
		consistency,
		catchUp: new CatchUp(nodes, options.connectTimeoutMs),
		fallbackToPrimary: options.fallbackToPrimary,
		nativePool: native.read,
		primaryPool: writePool,
		deadlines,
		onConnectFailure(replica, error) {
			// A read that could not connect to this replica moves on to the next one.
			countConnectFailover(replica);
			prober.connectionFailed(replica, error);
		},
		emit,
		balancer,
		affinity,
		groups,
		// A read about to fail asks every node its role once more (last-resort.ts): a probe of
		// each out of rotation (the monitor skips those that are down), and a monitor round.
		askRoles: async () => {
			await Promise.all([prober.probeNow(nodes.filter(node => !node.takesWrites && (node.state !== 'up' || node.promoted))), monitor?.probe()]);
		},
	});
	if (options.monitorIntervalMs > 0) {
		monitor = new LagMonitor({
			manager,
			nodes,
			intervalMs: options.monitorIntervalMs,
			probeTimeoutMs: options.readTimeoutMs > 0 ? options.readTimeoutMs : defaultProbeTimeoutMs,
			currentPrimary: () => follower.primary,
			onRoles: readings => follower.observe(readings),
			onFailure(node, error) {
				prober.connectionFailed(node, error);
			},
		});
		monitor.start();
	}

	return {pool, writePool, configuredPrimary: primary, balancer, affinity, prober, monitor, deadlines};
}
