// What the router tells an observer as it works (the OpenTelemetry instrumentation,
// opentelemetry.ts, is the one observer), and how an observer is attached to a router's
// parts. With none attached the hot path checks one field and does nothing else: the pools'
// `acquire` is wrapped only while an observer is attached.
import type {ReadSide} from './assemble.js';
import {countsOf, type PoolCounts} from './connection-pool.js';
import type {ReplicaInfo} from './replica.js';
import type {PooledConnection} from './sequelize-internals.js';
import type {StatsListener, StatsRecorder} from './stats.js';

export type {PoolCounts} from './connection-pool.js';

export interface RouterObserver extends StatsListener {
	/** A connection came out of `pool` after `seconds` (a new connection's connect included). */
	waited(pool: ObservedPool, seconds: number): void;
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
	/** Detaches the observer and unwraps the pools. */
	detach(): void;
}

export function attachObserver(parts: ReadSide | undefined, stats: StatsRecorder, observer: RouterObserver): ObservedRouter {
	if (stats.observer) {
		throw new TypeError('Expected a router without an observer, got one already instrumented; call `stop()` on its instrumentation first');
	}

	stats.observer = observer;
	const pools: ObservedPool[] = [];
	const unwrap: Array<() => void> = [];
	if (parts) {
		for (const node of parts.pool.replicas) {
			const view: ObservedPool = {name: `sequelize-multidb:${node.name}:read`, use: 'read', server: () => node, counts: () => countsOf(node.pool)};
			pools.push(view);
			unwrap.push(timeAcquisitions(node.pool, view, observer));
		}

		const {writePool} = parts;
		const write: ObservedPool = {name: 'sequelize-multidb:write', use: 'write', server: () => writePool.primary, counts: () => writePool.counts()};
		pools.push(write);
		unwrap.push(timeAcquisitions(writePool, write, observer));
	}

	return {
		pools,
		primary: () => parts?.writePool.primary,
		detach() {
			if (stats.observer === observer) {
				stats.observer = undefined;
				for (const undo of unwrap) {
					undo();
				}
			}
		},
	};
}

/**
 * Shadows the pool's `acquire` with one that reports how long each acquisition waited;
 * returns what puts the original back. Every acquisition of the router goes through a
 * pool's own `acquire` (the read pool's choices, the last resort, the write pool), so no
 * call site needs to know.
 */
function timeAcquisitions(pool: {acquire(): Promise<PooledConnection>}, view: ObservedPool, observer: RouterObserver): () => void {
	const own = Object.getOwnPropertyDescriptor(pool, 'acquire');
	const original = pool.acquire.bind(pool);
	const timed = (): Promise<PooledConnection> => {
		const started = performance.now();
		return original().then(connection => {
			observer.waited(view, (performance.now() - started) / 1000);
			return connection;
		});
	};

	Object.defineProperty(pool, 'acquire', {value: timed, writable: true, configurable: true});
	return () => {
		if (own) {
			Object.defineProperty(pool, 'acquire', own);
		} else {
			delete (pool as {acquire?: unknown}).acquire;
		}
	};
}
