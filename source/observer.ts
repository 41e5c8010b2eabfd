// What the router tells an observer as it works (the OpenTelemetry instrumentation,
// opentelemetry.ts, is the one observer), and how an observer is attached to a router's
// parts. With none attached the hot path checks two fields (the stats' observer, the pool's
// wait reporter) and does nothing else.
import type {ReadSide} from './assemble.js';
import {countsOf, type PoolCounts, type WaitReporter} from './connection-pool.js';
import type {ReplicaInfo} from './replica.js';
import type {StatsListener, StatsRecorder} from './stats.js';

export type {PoolCounts} from './connection-pool.js';

export interface RouterObserver extends StatsListener {
	/**
	 * A connection came out of `pool` after `seconds` (a new connection's connect included).
	 * Without it, acquisitions are not timed at all.
	 */
	waited?(pool: ObservedPool, seconds: number): void;
}

/** One connection pool of the router, as an observer sees it. */
export interface ObservedPool {
	/** `sequelize-multidb:<server>:read` for a server's reads, `sequelize-multidb:write` for the writes. */
	readonly name: string;
	readonly use: 'read' | 'write';
	/** The server its connections go to now (the write pool's follows the primary). */
	server(): ReplicaInfo;
	counts(): PoolCounts;
}

/** A router with an observer attached. */
export interface ObservedRouter {
	/** Each server's read pool, then the write pool; empty without replicas. */
	readonly pools: readonly ObservedPool[];
	/** The server writes go to now (undefined without replicas: the one Sequelize was given). */
	primary(): ReplicaInfo | undefined;
	/** Detaches the observer; acquisitions are no longer timed. */
	detach(): void;
}

export function attachObserver(parts: ReadSide | undefined, stats: StatsRecorder, observer: RouterObserver): ObservedRouter {
	if (stats.observer) {
		throw new TypeError('Expected a router without an observer, got one already instrumented; call `stop()` on its instrumentation first');
	}

	stats.observer = observer;
	const pools: ObservedPool[] = [];
	const timed: Array<{reportWait: WaitReporter | undefined}> = [];
	if (parts) {
		for (const node of parts.pool.replicas) {
			const view: ObservedPool = {name: `sequelize-multidb:${node.name}:read`, use: 'read', server: () => node, counts: () => countsOf(node.pool)};
			pools.push(view);
			timed.push(node);
			node.reportWait = waitReporter(observer, view);
		}

		const {writePool} = parts;
		const write: ObservedPool = {name: 'sequelize-multidb:write', use: 'write', server: () => writePool.primary, counts: () => writePool.counts()};
		pools.push(write);
		timed.push(writePool);
		writePool.reportWait = waitReporter(observer, write);
	}

	return {
		pools,
		primary: () => parts?.writePool.primary,
		detach() {
			if (stats.observer === observer) {
				stats.observer = undefined;
				for (const pool of timed) {
					pool.reportWait = undefined;
				}
			}
		},
	};
}

/** What tells the observer of one pool's waits; undefined where the observer does not ask. */
function waitReporter(observer: RouterObserver, view: ObservedPool): WaitReporter | undefined {
	return observer.waited ? seconds => observer.waited?.(view, seconds) : undefined;
}
