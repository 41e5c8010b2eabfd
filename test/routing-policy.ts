// The routing policy as a table: scope x query kind x replica states -> target and reason.
// Pure functions, no server: the real cluster proves the wiring elsewhere.
import test from 'ava';
import {decideRead, lastResortOrder, pickLeastOutstanding, pickReplica, pickWeighted, type Candidate, type ReadFacts} from '../source/routing-policy.js';

const plain: ReadFacts = {pinned: false, required: undefined, locking: false, misroutedWrite: false, transaction: false};

test('primary or replicas, and why: every combination of scope and query kind', t => {
	const table: Array<[string, Partial<ReadFacts>, string]> = [
		['a plain read', {}, 'replicas round-robin'],
		['a read in a readOnly transaction', {transaction: true}, 'replicas read-only-transaction'],
		['a pinned read (usePrimaryDb, pin(), a pin cookie, a write in the flow)', {pinned: true}, 'primary pinned'],
		['a pinned readOnly transaction', {pinned: true, transaction: true}, 'primary pinned'],
		['a read that must see a WAL position', {required: 100n}, 'replicas caught-up >= 100'],
		['a readOnly transaction that must see a WAL position', {required: 100n, transaction: true}, 'primary pinned'],
		['a read whose token cannot be judged (bad signature, cluster unknown)', {required: 'primary'}, 'primary pinned'],
		['a pinned read with a WAL position too', {pinned: true, required: 100n}, 'primary pinned'],
		['SELECT ... FOR UPDATE', {locking: true}, 'primary locking-read'],
		['SELECT ... FOR SHARE in a pinned scope', {locking: true, pinned: true}, 'primary locking-read'],
		['a read that turned out to write (25006), retried', {misroutedWrite: true}, 'primary misrouted-write'],
		['a misrouted write that also locks, pinned', {misroutedWrite: true, locking: true, pinned: true}, 'primary misrouted-write'],
	];
	for (const [label, facts, expected] of table) {
		const decision = decideRead({...plain, ...facts});
		const minLsn = decision.target === 'replicas' && decision.minLsn !== undefined ? ` >= ${decision.minLsn}` : '';
		t.is(`${decision.target} ${decision.reason}${minLsn}`, expected, label);
	}
});

test('the common decisions are shared objects: a plain read allocates nothing', t => {
	t.is(decideRead(plain), decideRead({...plain}));
	t.is(decideRead({...plain, pinned: true}), decideRead({...plain, pinned: true}));
});

/** A replica as the policy sees it: in rotation or not, and how far it has replayed. */
function replica(usable: boolean, replayLsn?: bigint): Candidate {
	return {usable, hasReplayed: lsn => replayLsn !== undefined && replayLsn >= lsn};
}

test('the next replica: round robin from the cursor over usable ones, skipping failed and not-caught-up ones', t => {
	const up = replica(true, 50n);
	const down = replica(false, 500n);
	const ahead = replica(true, 200n);
	const table: Array<[string, Candidate[], number, Candidate[], bigint | undefined, number]> = [
		['the replica at the cursor', [up, ahead], 0, [], undefined, 0],
		['the cursor wraps', [up, ahead], 1, [], undefined, 1],
		['an unusable replica is skipped', [down, up], 0, [], undefined, 1],
		['a replica this read already failed on is skipped', [up, ahead], 0, [up], undefined, 1],
		['the search wraps past the end', [up, down], 1, [], undefined, 0],
		['none usable', [down, down], 0, [], undefined, -1],
		['all failed already', [up, ahead], 0, [up, ahead], undefined, -1],
		['a WAL position: only replicas known to have replayed it', [up, ahead], 0, [], 100n, 1],
		['a WAL position nobody usable has replayed (the down one has)', [up, down], 0, [], 300n, -1],
		['no replicas at all', [], 0, [], undefined, -1],
	];
	for (const [label, replicas, cursor, excluded, minLsn, expected] of table) {
		t.is(pickReplica(replicas, cursor, new Map(excluded.map(entry => [entry, 'failed'])), minLsn), expected, label);
	}
});

test('the last resort tries lagging replicas first, then suspect, then down ones by fewest failed probes, never promoted or already failed ones', t => {
	const named = (name: string, state: 'up' | 'suspect' | 'down', failures = 0, promoted = false) => ({name, state, failures, promoted});
	const lagging = named('lagging', 'up');
	const suspect = named('suspect', 'suspect');
	const downOnce = named('down once', 'down', 1);
	const downOften = named('down often', 'down', 5);
	const promoted = named('promoted', 'up', 0, true);
	const failed = named('failed by this read', 'up');
	const order = lastResortOrder([downOften, promoted, suspect, failed, downOnce, lagging], new Map([[failed, 'refused']]));
	t.deepEqual(order.map(entry => entry.name), ['lagging', 'suspect', 'down once', 'down often']);
});

test('a replica group confines the choice to its replicas, the last resort included', t => {
	const web = replica(true);
	const api = replica(true);
	const apiDown = {...replica(false), name: 'api down', state: 'down' as const, failures: 1, promoted: false};
	t.is(pickReplica([web, api], 0, undefined, undefined, new Set([api])), 1);
	t.is(pickReplica([web, api], 0, undefined, undefined, new Set([apiDown as Candidate])), -1);
	const webDown = {name: 'web down', state: 'down' as const, failures: 0, promoted: false};
	t.deepEqual(lastResortOrder([webDown, apiDown], undefined, new Set([apiDown])).map(entry => entry.name), ['api down']);
});

test('smooth weighted round robin: weights 2:1 give exactly 2:1, never three in a row, and follow rotation changes', t => {
	const a = replica(true);
	const b = replica(true);
	const scores = [0, 0];
	const picks = Array.from({length: 3000}, () => pickWeighted([a, b], scores, [2, 1], {}));
	t.deepEqual(picks.slice(0, 6), [0, 1, 0, 0, 1, 0]);
	t.is(picks.filter(index => index === 0).length, 2000);
	t.false(picks.join('').includes('000'));
	// b leaves rotation: everything goes to a; a failed read's replica is skipped too.
	const down = replica(false);
	t.deepEqual(Array.from({length: 4}, () => pickWeighted([a, down], [0, 0], [2, 1], {})), [0, 0, 0, 0]);
	t.is(pickWeighted([a, b], [0, 0], [2, 1], {excluded: new Map([[a, 'failed']])}), 1);
	t.is(pickWeighted([down, down], [0, 0], [1, 1], {}), -1);
});

test('least outstanding: the fewest reads in flight per unit of weight wins, ties in turn from the cursor', t => {
	const busy = {...replica(true), inFlight: 5};
	const idle = {...replica(true), inFlight: 1};
	const alsoIdle = {...replica(true), inFlight: 1};
	const inFlight = (candidate: {inFlight: number}) => candidate.inFlight;
	const table: Array<[string, Array<typeof busy>, number, readonly number[] | undefined, number]> = [
		['the idle one', [busy, idle], 0, undefined, 1],
		['a tie goes to the first from the cursor', [idle, alsoIdle], 1, undefined, 1],
		['a tie from the start', [idle, alsoIdle], 0, undefined, 0],
		['a heavier replica carries more in flight (5/10 < 1/1)', [busy, idle], 0, [10, 1], 0],
		['an unusable one is never picked, however idle', [busy, {...replica(false), inFlight: 0}], 0, undefined, 0],
	];
	for (const [label, replicas, cursor, weights, expected] of table) {
		t.is(pickLeastOutstanding(replicas, cursor, inFlight, weights, {}), expected, label);
	}
});
