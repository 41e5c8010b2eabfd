// Reads that Sequelize makes on the caller's behalf around a write (rule 8). A replica may
// not have replayed that write yet, so outside a pinned request these reads would come back
// stale: `reload()` right after `create()` finds nothing ("Instance could not be reloaded
// because it does not exist anymore"), `findCreateFind` whose INSERT met a unique violation
// returns `[null, false]`. The router wraps these methods on every model of its instance:
// - reads that must see the current state, or that feed a write, run on the primary;
// - `findCreateFind` keeps its first read on a replica (its point: most calls only find),
//   and runs in a flow, so that once its INSERT was tried its second read uses the primary.
import type {Sequelize} from 'sequelize';
import {usePrimaryDb, withOwnFlow} from './context.js';
import {forEachModel} from './sequelize-internals.js';

type Method = (this: unknown, ...arguments_: unknown[]) => unknown;
type Runner = <T>(fn: () => T) => T;

/**
 * Static methods whose reads belong on the primary: `sync` reads the catalog (enum types
 * it just made); `findOrCreate` reads, outside its transaction, the row that another
 * caller's INSERT beat it to; `update`, `destroy` and `restore` with `individualHooks` read
 * the rows they are about to change.
 */
const primaryStatics = ['sync', 'findOrCreate', 'update', 'destroy', 'restore'];
/** `reload()` exists to fetch the current state: a replica may be behind the instance itself. */
const primaryInstanceMethods = ['reload'];
/** The calls that create associations, whose mutators are wrapped as they are made. */
const associationFactories = ['hasOne', 'belongsTo', 'hasMany', 'belongsToMany'];
/**
 * Association mutators read before they write (the current links, to add or remove the
 * difference) and some read back what they created (`BelongsToMany#create` links it with `add`).
 */
const associationMutators = ['set', 'add', 'remove', 'create'];

const wrappers = new WeakSet<Method>();

/**
 * Wraps the read-after-write methods of an instance (its `sync`) and of each of its models,
 * those defined later included.
 */
export function routeOwnReads(sequelize: Sequelize): void {
	wrapMethod(sequelize, 'sync', usePrimaryDb);
	forEachModel(sequelize, routeModel);
}

function routeModel(model: object): void {
	for (const name of primaryStatics) {
		wrapMethod(model, name, usePrimaryDb);
	}

	wrapMethod(model, 'findCreateFind', withOwnFlow);
	const {prototype} = model as {prototype?: object};
	for (const name of primaryInstanceMethods) {
		if (prototype) {
			wrapMethod(prototype, name, usePrimaryDb);
		}
	}

	for (const association of Object.values((model as {associations?: Record<string, object>}).associations ?? {})) {
		wrapMutators(association);
	}

	for (const name of associationFactories) {
		wrapMethod(model, name, fn => {
			const association = fn();
			wrapMutators(association as object);
			return association;
		});
	}
}

function wrapMutators(association: object): void {
	for (const name of associationMutators) {
		wrapMethod(association, name, usePrimaryDb);
	}
}

/**
 * Replaces `target[name]` (its own or the one it inherits, so a user's override keeps
 * working) with a function that calls it through `run`. A method already wrapped (a model
 * that inherits from a routed model) is left as it is.
 */
function wrapMethod(target: object, name: string, run: Runner): void {
	const original = (target as Record<string, unknown>)[name];
	if (typeof original !== 'function' || wrappers.has(original as Method)) {
		return;
	}

	const wrapper: Method = function (this: unknown, ...arguments_: unknown[]): unknown {
		return run(() => (original as Method).apply(this, arguments_));
	};

	wrappers.add(wrapper);
	Object.defineProperty(target, name, {value: wrapper, writable: true, configurable: true});
}
