// The soak's history checker and fault schedule, on hand-written histories: each promise
// broken once, each documented exception excused once, and nothing else.
import test from 'ava';
import {checkHistory, primaryReturnMs, type FinalPost} from '../scripts/soak/checker.js';
import type {FaultRecord, HistoryEntry, Operation} from '../scripts/soak/history.js';
import {faultSchedule, primaryFaults, replicaFaults} from '../scripts/soak/schedule.js';

const servers = ['primary', 'replica1', 'replica2'];
const options = {servers, primaryReturnMs: 1000};

function operation(fields: Partial<Operation>): Operation {
	return {type: 'operation', client: 'u', mode: 'time', kind: 'read', start: 100, end: 110, ok: true, ...fields};
}

function fault(fields: Partial<FaultRecord>): FaultRecord {
	return {type: 'fault', kind: 'stop', target: 'replica1', start: 0, end: 1000, disables: ['replica1'], ...fields};
}

const written = operation({kind: 'write', title: 'a', post: 1});
const posted: FinalPost[] = [{id: 1, title: 'a', likes: 0}];

const cases: Array<{name: string; history: HistoryEntry[]; posts?: FinalPost[]; violations: string[]; excused?: Record<string, number>}> = [
	{name: 'a clean history', history: [written, operation({post: 1, expects: {title: 'a'}, found: true, server: 'replica1'})], violations: []},
	{name: 'a read that failed while a server could answer', history: [written, operation({ok: false, error: 'boom'})], violations: ['failed-read']},
	{name: 'a read that missed its own post', history: [written, operation({post: 1, expects: {title: 'a'}, found: false})], violations: ['stale-read']},
	{name: 'a read that missed its own like', history: [written, operation({kind: 'like', post: 1}), operation({post: 1, expects: {title: 'a', likesAtLeast: 1}, found: true, likes: 0})], posts: [{id: 1, title: 'a', likes: 1}], violations: ['stale-read']},
	{name: 'an acknowledged write missing from the primary', history: [written], posts: [], violations: ['lost-write']},
	{name: 'an unacknowledged write missing from the primary', history: [operation({kind: 'write', title: 'a', ok: false})], posts: [], violations: []},
	{name: 'an unacknowledged write that made it anyway', history: [operation({kind: 'write', title: 'a', ok: false})], violations: []},
	{name: 'a write present twice', history: [written], posts: [...posted, {id: 2, title: 'a', likes: 0}], violations: ['duplicate-write']},
	{name: 'fewer likes than acknowledged', history: [written, operation({kind: 'like', post: 1}), operation({kind: 'like', post: 1})], posts: [{id: 1, title: 'a', likes: 1}], violations: ['lost-write']},
	{name: 'more likes than attempted', history: [written, operation({kind: 'like', post: 1, ok: false})], posts: [{id: 1, title: 'a', likes: 2}], violations: ['write-sent-twice']},
	{name: 'a failed like that made it once', history: [written, operation({kind: 'like', post: 1, ok: false})], posts: [{id: 1, title: 'a', likes: 1}], violations: []},
	{
		name: 'a pinned read that failed while the primary was out',
		history: [fault({kind: 'stop-primary', target: 'primary', disables: ['primary'], primaryOutUntil: 1000}), operation({ok: false})],
		violations: [],
		excused: {'needs-primary-while-out': 1},
	},
	{
		name: 'a pinned read that failed while the router may still follow a promotion',
		history: [fault({kind: 'promotion', target: 'primary', disables: ['primary'], end: 5000, primaryOutUntil: 500}), operation({start: 1400, end: 1450, ok: false})],
		violations: [],
		excused: {'needs-primary-while-out': 1},
	},
	{
		name: 'a pinned read that failed after the router should have followed',
		history: [fault({kind: 'promotion', target: 'primary', disables: ['primary'], end: 5000, primaryOutUntil: 500}), operation({start: 1600, end: 1650, ok: false})],
		violations: ['failed-read'],
	},
	{
		name: 'an anonymous read that failed while only the primary was out',
		history: [fault({kind: 'stop-primary', target: 'primary', disables: ['primary'], primaryOutUntil: 1000}), operation({mode: 'anonymous', ok: false})],
		violations: ['failed-read'],
	},
	{
		name: 'an anonymous read that failed while no server could answer',
		history: [
			fault({kind: 'stop-primary', target: 'primary', disables: ['primary'], primaryOutUntil: 1000}),
			fault({kind: 'freeze', target: 'replica1', disables: ['replica1'], start: 50, end: 150}),
			fault({kind: 'partition', target: 'replica2', disables: ['replica2'], start: 105, end: 400}),
			operation({mode: 'anonymous', ok: false}),
		],
		violations: [],
		excused: {'no-server-can-answer': 1},
	},
	{
		name: 'an anonymous read when the replicas were out one after the other',
		history: [
			fault({kind: 'stop-primary', target: 'primary', disables: ['primary'], primaryOutUntil: 1000}),
			fault({kind: 'freeze', target: 'replica1', disables: ['replica1'], start: 50, end: 104}),
			fault({kind: 'partition', target: 'replica2', disables: ['replica2'], start: 105, end: 400}),
			operation({mode: 'anonymous', ok: false}),
		],
		violations: ['failed-read'],
	},
	{
		name: 'a paused replay disables no server',
		history: [
			fault({kind: 'stop-primary', target: 'primary', disables: ['primary'], primaryOutUntil: 1000}),
			fault({kind: 'pause-replay', target: 'replica1', disables: []}),
			fault({kind: 'stop', target: 'replica2', disables: ['replica2']}),
			operation({mode: 'anonymous', ok: false}),
		],
		violations: ['failed-read'],
	},
];

for (const {name, history, posts = posted, violations, excused = {}} of cases) {
	test(`checker: ${name}`, t => {
		const report = checkHistory(history, posts, options);
		t.deepEqual(report.violations.map(violation => violation.kind), violations, JSON.stringify(report.violations));
		t.deepEqual(report.excused, excused);
	});
}

test('checker: latency by the fault active when the read began, and reads by server', t => {
	const report = checkHistory([
		fault({kind: 'freeze', start: 1000, end: 2000}),
		operation({start: 0, end: 10, server: 'replica1'}),
		operation({start: 10, end: 30, server: 'replica2'}),
		operation({start: 1500, end: 4500, server: 'replica2'}),
	], [], options);
	t.deepEqual(report.latency, {none: {reads: 2, p50: 20, p99: 20, max: 20}, freeze: {reads: 1, p50: 3000, p99: 3000, max: 3000}});
	t.deepEqual(report.readsByServer, {replica1: 1, replica2: 2});
	t.deepEqual(report.faults, {freeze: 1});
});

test('checker: the follow allowance is a monitor round that waits for a silent primary', t => {
	t.is(primaryReturnMs({}), 1200 + 2000 + 500);
	t.is(primaryReturnMs({monitorIntervalMs: 1000, connectTimeoutMs: 500}), 1200 + 500 + 500);
});

test('schedule: the same seed gives the same faults, every kind comes up, and all end before the run does', t => {
	const kinds = [...replicaFaults, ...primaryFaults];
	const schedule = faultSchedule(42, 90_000, kinds);
	t.deepEqual(schedule, faultSchedule(42, 90_000, kinds));
	t.notDeepEqual(schedule, faultSchedule(43, 90_000, kinds));
	t.deepEqual([...new Set(schedule.map(fault => fault.kind))].sort(), [...kinds].sort());
	t.true(schedule.every(fault => fault.at >= 3000 && fault.at + fault.durationMs <= 87_000));
	t.true(schedule.some((fault, index) => index > 0 && fault.at < schedule[index - 1].at + schedule[index - 1].durationMs), 'faults overlap');
});
