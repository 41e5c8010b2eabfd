// Which node takes the writes, as a table: what the nodes answered in one round x the node
// that took the writes so far and its timeline -> where writes go and who gets nothing.
// Pure functions, no server: test/promotion.ts proves the wiring on real servers.
import test from 'ava';
import {decidePrimary, type RoleReport} from '../source/topology.js';

type Answer = 'down' | `primary ${number}` | `standby ${number}` | 'primary ?';

/** `primary 2`: answers as a primary on timeline 2; `standby 1`: a standby on timeline 1; `down`: no answer. */
function report(answer: Answer): RoleReport {
	if (answer === 'down') {
		return {reachable: false};
	}

	const [role, timeline] = answer.split(' ');
	return {reachable: true, inRecovery: role === 'standby', timeline: timeline === '?' ? undefined : Number(timeline)};
}

interface Row {
	readonly label: string;
	/** The node that took the writes so far is `a`; its timeline when last seen. */
	readonly timeline: number | undefined;
	readonly answers: Readonly<Record<'a' | 'b' | 'c', Answer>>;
	readonly follow?: boolean;
	/** Where writes go, then `name:reason` for each node that gets nothing. */
	readonly expected: string;
}

const table: Row[] = [
	{label: 'the primary answers: writes stay', timeline: 1, answers: {a: 'primary 1', b: 'standby 1', c: 'standby 1'}, expected: 'a'},
	{label: 'first round, the primary answers: its timeline is learned', timeline: undefined, answers: {a: 'primary 3', b: 'standby 3', c: 'standby 2'}, expected: 'a'},
	{label: 'the primary is down and nobody was promoted: writes stay (and fail)', timeline: 1, answers: {a: 'down', b: 'standby 1', c: 'standby 1'}, expected: 'a'},
	{label: 'the primary is down and b was promoted: writes move to b', timeline: 1, answers: {a: 'down', b: 'primary 2', c: 'standby 1'}, expected: 'b (moved, timeline 2)'},
	{label: 'the primary was demoted to a standby and b promoted: writes move', timeline: 1, answers: {a: 'standby 2', b: 'primary 2', c: 'standby 2'}, expected: 'b (moved, timeline 2)'},
	{label: 'the primary down at start-up (never seen) and b promoted: writes move', timeline: undefined, answers: {a: 'down', b: 'primary 2', c: 'standby 1'}, expected: 'b (moved, timeline 2)'},
	{label: 'b promoted while the primary still answers (a replica detached): writes stay, b gets nothing', timeline: 1, answers: {a: 'primary 1', b: 'primary 2', c: 'standby 1'}, expected: 'a; b:primary-answers'},
	{label: 'an old primary restarted without being demoted (older timeline): it gets nothing', timeline: 2, answers: {a: 'primary 2', b: 'primary 1', c: 'standby 2'}, expected: 'a; b:older-timeline'},
	{label: 'the primary down, and only an old primary on an older timeline answers as one: writes stay', timeline: 2, answers: {a: 'down', b: 'primary 1', c: 'standby 2'}, expected: 'a; b:older-timeline'},
	{label: 'a node on the same timeline as the primary: a twin, it gets nothing', timeline: 1, answers: {a: 'primary 1', b: 'primary 1', c: 'standby 1'}, expected: 'a; b:same-timeline'},
	{label: 'the primary down, two nodes promoted onto the same timeline: writes stay, both reported', timeline: 1, answers: {a: 'down', b: 'primary 2', c: 'primary 2'}, expected: 'a; b:same-timeline; c:same-timeline'},
	{label: 'the primary down, two nodes promoted on different timelines: the newest wins', timeline: 1, answers: {a: 'down', b: 'primary 2', c: 'primary 3'}, expected: 'c (moved, timeline 3); b:older-timeline'},
	{label: 'a candidate older than a standby\'s timeline is stale (the cluster moved on past it)', timeline: undefined, answers: {a: 'down', b: 'primary 2', c: 'standby 3'}, expected: 'a; b:older-timeline'},
	{label: 'a candidate whose timeline could not be read is not followed', timeline: 1, answers: {a: 'down', b: 'primary ?', c: 'standby 1'}, expected: 'a; b:primary-answers'},
	{label: 'the primary answers on an older timeline than its own last (restored from a backup): writes move to the newer one', timeline: 3, answers: {a: 'primary 2', b: 'primary 4', c: 'standby 3'}, expected: 'b (moved, timeline 4); a:older-timeline'},
	{label: 'followPrimary off: writes stay with the configured primary, the promoted node is reported', timeline: 1, follow: false, answers: {a: 'down', b: 'primary 2', c: 'standby 1'}, expected: 'a; b:not-followed'},
	{label: 'followPrimary off and the primary answers: nothing changes', timeline: 1, follow: false, answers: {a: 'primary 1', b: 'standby 1', c: 'standby 1'}, expected: 'a'},
];

test('where writes go, and who gets nothing: every failover and split-brain case', t => {
	for (const row of table) {
		const reports = new Map(Object.entries(row.answers).map(([node, answer]) => [node, report(answer)]));
		const decision = decidePrimary('a', row.timeline, reports, row.follow ?? true);
		const moved = decision.changed ? ` (moved, timeline ${decision.timeline})` : '';
		const rogues = [...decision.rogues].map(([node, reason]) => `; ${node}:${reason}`).join('');
		t.is(`${decision.primary}${moved}${rogues}`, row.expected, row.label);
	}
});

test('the timeline floor rises with the primary and never falls', t => {
	const reports = (a: Answer, b: Answer) => new Map([['a', report(a)], ['b', report(b)]]);
	t.is(decidePrimary('a', 1, reports('primary 3', 'standby 3'), true).timeline, 3);
	t.is(decidePrimary('a', 3, reports('down', 'standby 3'), true).timeline, 3);
	t.is(decidePrimary('a', undefined, reports('down', 'standby 1'), true).timeline, undefined);
});
