// The routing context: what the code running right now asks of the router. It rides on
// AsyncLocalStorage, so it follows a request through every await and never leaks into a
// concurrent one (the seed kept it in a thread-local).
import {AsyncLocalStorage} from 'node:async_hooks';
import {describe, invalid, isMultiDb} from './validate.js';

/**
 * What one flow of work (an HTTP request, a job) has asked for. Mutable, and shared by
 * every scope of the flow: `pin()` inside a `usePrimaryDb` block pins the whole request.
 */
export interface FlowState {
	/** `pin()` was called in this flow, or a `dbWrite` handler ran: every database is pinned. */
	pinned: boolean;
	/** A write query ran in this flow, through any database. */
	wrote: boolean;
	/** A handler wrapped in `dbWrite` ran: the response pins the client. */
	markedAsWrite: boolean;
	/** What started the flow (the Koa context of a request), so nested middleware can join it. */
	readonly owner?: object;
	/** Per-database marks: which `MultiDb` routers this flow pinned or wrote through (made on first use). */
	databases?: Map<object, DatabaseMarks>;
}

/** What one flow did or asked of one router. */
export interface DatabaseMarks {
	/**
	 * Whether reads of this database go to the primary: `true` after a pin cookie, a write
	 * request or a write that ran; `false` after `unpin(db)`, which outweighs a flow-wide
	 * pin; undefined where the flow-wide `pinned` decides.
	 */
	pinned?: boolean;
	/** Reads must see the primary's WAL up to here (an LSN-mode pin): a caught-up replica, else the primary. */
	minLsn?: bigint;
	/** A write query ran through this database in this flow (the response pins the client; `unpin` keeps this). */
	wrote: boolean;
	/** With affinity: the replica this flow reads from (a `Replica` of this router). */
	replica?: object;
	/** With affinity: when the flow's last read on `replica` completed (epoch ms). */
	replicaSeenAt?: number;
}

export interface RoutingScope {
	/** Inside `usePrimaryDb`: every query goes to the primary. */
	readonly primaryOnly: boolean;
	/** Absent for a query run outside any flow (no request, no `pin()`). */
	readonly flow?: FlowState;
	/** Consistency tokens from `withConsistency`, innermost last. */
	readonly consistency?: readonly string[];
	/** Inside `withAffinity`: the flow reads from one replica per database. */
	readonly affinity?: boolean;
	/** Inside `useReplicas(group)`: reads go to that group's replicas. */
	readonly replicaGroup?: string;
}

// One storage per process, however many copies of this package are loaded: the ESM and
// the CommonJS builds must agree, or a `usePrimaryDb` imported one way would not govern a
// router installed the other way (the dual-package hazard).
const storageKey = Symbol.for('sequelize-multidb.routing-context.v1');
type GlobalWithStorage = typeof globalThis & {[storageKey]?: AsyncLocalStorage<RoutingScope>};
const globalWithStorage = globalThis as GlobalWithStorage;
const storage = globalWithStorage[storageKey] ??= new AsyncLocalStorage<RoutingScope>();

// The routers alive in this process, shared by both builds like the storage: `isPinned()`
// without a database asks each of them, so its answer is the same whether a pin was made
// for one database (`pinning({db})`) or for all (`pinning()`, `pin()`).
const routersKey = Symbol.for('sequelize-multidb.routers.v1');
type GlobalWithRouters = typeof globalThis & {[routersKey]?: Set<WeakRef<object>>};
const routers = (globalThis as GlobalWithRouters)[routersKey] ??= new Set<WeakRef<object>>();

/** Makes a router known to `isPinned()`; `forgetRouter` when it closes (a collected one is dropped too). */
export function registerRouter(router: object): void {
	routers.add(new WeakRef(router));
}

export function forgetRouter(router: object): void {
	for (const reference of routers) {
		if (reference.deref() === router) {
			routers.delete(reference);
		}
	}
}

function* liveRouters(): Generator<object> {
	for (const reference of routers) {
		const router = reference.deref();
		if (router === undefined) {
			routers.delete(reference);
		} else {
			yield router;
		}
	}
}

export function newFlow(owner?: object): FlowState {
	return {pinned: false, wrote: false, markedAsWrite: false, owner};
}

export function currentScope(): RoutingScope | undefined {
	return storage.getStore();
}

/** Runs `fn` in `scope` (read-scopes.ts builds the scopes of `withConsistency`, `withAffinity`, `useReplicas`). */
export function runInScope<T>(scope: RoutingScope, fn: () => T): T {
	return storage.run(scope, fn);
}

/** Runs `fn` as a new flow (a request): nothing the caller pinned or wrote carries in. */
export function runInNewFlow<T>(fn: () => T, flow: FlowState = newFlow()): T {
	return storage.run({primaryOnly: false, flow}, fn);
}

/** The marks of one database in the current flow, created on first use. */
export function marksOf(flow: FlowState, database: object): DatabaseMarks {
	flow.databases ??= new Map();
	let marks = flow.databases.get(database);
	if (!marks) {
		marks = {wrote: false};
		flow.databases.set(database, marks);
	}

	return marks;
}

/**
 * Runs `fn` with every query sent to the primary and returns its result. Nests: an inner
 * block ending leaves an outer one in force (the seed's `use_primary_db` unpinned the
 * thread when any block ended). The previous state comes back on return and on throw.
 */
export function usePrimaryDb<T>(fn: () => T): T {
	if (typeof fn !== 'function') {
		throw new TypeError(`Expected \`fn\` to be a function, got ${describe(fn)}`);
	}

	return storage.run({...currentScope(), primaryOnly: true}, fn);
}

/**
 * Runs `fn` in the current flow or, outside any flow (a script, a job), in a flow of its
 * own: either way, the writes `fn` makes send its later reads to the primary.
 */
export function withOwnFlow<T>(fn: () => T): T {
	const scope = currentScope();
	return scope?.flow ? fn() : storage.run({primaryOnly: false, ...scope, flow: newFlow()}, fn);
}

/** `usePrimaryDb.wrap(fn)`: a function that runs `fn` inside `usePrimaryDb` on every call. */
usePrimaryDb.wrap = function wrap<Arguments extends unknown[], Result>(fn: (...arguments_: Arguments) => Result): (...arguments_: Arguments) => Result {
	if (typeof fn !== 'function') {
		throw new TypeError(`Expected \`fn\` to be a function, got ${describe(fn)}`);
	}

	return function primaryOnly(this: unknown, ...arguments_: Arguments): Result {
		return usePrimaryDb(() => fn.apply(this, arguments_));
	};
};

/**
 * Whether reads of `database` go to the primary in `scope`: `usePrimaryDb`, `pin()`, a
 * request pinned by `pinning()` (a pin cookie, a write method, `dbWrite`), or a write the
 * flow made through it (its later reads must see that write). The router asks this for
 * every read; `isPinned(db)` answers with it.
 */
export function readsPinned(scope: RoutingScope | undefined, database: object): boolean {
	if (!scope) {
		return false;
	}

	const {flow} = scope;
	return scope.primaryOnly || (flow !== undefined && (flow.databases?.get(database)?.pinned ?? flow.pinned));
}

/**
 * Pins the current flow: its reads go to the primary until `unpin()` or the flow ends.
 * Called outside any flow, it starts one that lasts for the rest of the current
 * asynchronous execution (like the seed's `pin_this_thread`).
 */
export function pin(): void {
	const flow = flowForChange();
	flow.pinned = true;
	// A database unpinned earlier is pinned again: `pin()` covers every database.
	for (const marks of flow.databases?.values() ?? []) {
		marks.pinned = undefined;
	}
}

/**
 * Lifts the current flow's pins, for one database (`db`) or all, for the rest of the flow:
 * `pin()`, a pin cookie or write method seen by `pinning()`, a write already made, an LSN
 * pin. A write made afterwards pins again; the response still pins the client for a write
 * made before (`unpin` changes where this request reads, not what the client is told).
 * It does not end an enclosing `usePrimaryDb` block, nor a `withConsistency` scope.
 */
export function unpin(db?: object): void {
	checkDatabase(db);
	const flow = flowForChange();
	if (db === undefined) {
		flow.pinned = false;
		for (const marks of flow.databases?.values() ?? []) {
			marks.pinned = undefined;
			marks.minLsn = undefined;
		}

		return;
	}

	const marks = marksOf(flow, db);
	marks.pinned = false;
	marks.minLsn = undefined;
}

/**
 * Whether a read would go to the primary here (the seed's `this_thread_is_pinned`): for
 * `db`, or without it for any router of this process, whatever pinned it (`usePrimaryDb`,
 * `pin()`, a pin cookie, a write method, `dbWrite`, a write that ran). An LSN pin is not
 * counted: its reads go to replicas that have replayed the write.
 */
export function isPinned(db?: object): boolean {
	checkDatabase(db);
	const scope = currentScope();
	if (db !== undefined) {
		return readsPinned(scope, db);
	}

	if (scope?.primaryOnly) {
		return true;
	}

	let anyRouter = false;
	for (const router of liveRouters()) {
		anyRouter = true;
		if (readsPinned(scope, router)) {
			return true;
		}
	}

	// No router yet: what a router made now would do.
	return !anyRouter && scope?.flow?.pinned === true;
}

function checkDatabase(db: unknown): void {
	if (db !== undefined && !isMultiDb(db)) {
		throw invalid('db', 'the handle returned by multidb()', db);
	}
}

function flowForChange(): FlowState {
	const scope = currentScope();
	if (scope?.flow) {
		return scope.flow;
	}

	const flow = newFlow();
	storage.enterWith({primaryOnly: false, ...scope, flow});
	return flow;
}
