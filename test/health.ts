// The health state machine, with its clock and jitter given: no server needed.
import test from 'ava';
import {firstProbeDelayMs, flappingProbeIntervalMs, flappingStableMs, maxFlappingProbeDelayMs, maxProbeDelayMs, ReplicaHealth} from '../source/health.js';

/** Jitter pinned to its middle: back-offs come out exact. */
const noJitter = () => 0.5;

test('one connection failing makes the replica suspect, and an answered probe keeps it in rotation', t => {
	const health = new ReplicaHealth(30_000, noJitter);
	t.true(health.isUsable());
	t.true(health.connectionFailed(new Error('terminating connection due to administrator command')));
	t.is(health.state, 'suspect');
	t.false(health.isUsable());
	t.deepEqual(health.probeSucceeded(0), {});
	t.is(health.state, 'up');
	t.true(health.isUsable());
	t.is(health.lastError, undefined);
});

test('the failures of every connection in flight make one incident: one probe', t => {
	const health = new ReplicaHealth(30_000, noJitter);
	t.true(health.connectionFailed(new Error('first')));
	for (let index = 0; index < 5; index++) {
		t.false(health.connectionFailed(new Error('in flight')));
	}

	t.deepEqual(health.probeFailed(new Error('refused'), 0), {wentDown: true});
	// Down: further connection failures do not start probes; the back-off does.
	t.false(health.connectionFailed(new Error('late')));
	t.is(health.failures, 1);
});

test('out of rotation, probes back off from 200 ms doubling to 1 s, and one answered probe brings it back', t => {
	const health = new ReplicaHealth(30_000, noJitter);
	health.connectionFailed(new Error('reset'));
	let now = 1_000_000;
	const delays: number[] = [];
	t.deepEqual(health.probeFailed(new Error('refused'), now), {wentDown: true});
	delays.push(health.nextProbeAt - now);
	for (let probe = 0; probe < 5; probe++) {
		now = health.nextProbeAt;
		t.deepEqual(health.probeFailed(new Error('refused'), now), {wentDown: false});
		delays.push(health.nextProbeAt - now);
	}

	t.deepEqual(delays, [firstProbeDelayMs, 400, 800, maxProbeDelayMs, maxProbeDelayMs, maxProbeDelayMs]);
	t.is(health.state, 'down');
	t.is(health.failures, 6);
	t.deepEqual(health.probeSucceeded(now + 1000), {cameBack: true});
	t.is(health.state, 'up');
	t.is(health.failures, 0);
	t.false(health.flapping);
});

test('back-off jitter stays within ±20 %', t => {
	for (const random of [0, 0.999_999]) {
		const health = new ReplicaHealth(30_000, () => random);
		health.connectionFailed(new Error('x'));
		health.probeFailed(new Error('x'), 0);
		const delay = health.nextProbeAt;
		t.true(delay >= firstProbeDelayMs * 0.8 && delay <= firstProbeDelayMs * 1.2, String(delay));
	}
});

test('a replica that goes down again within the flap window backs off further, and must keep answering for 5 s to rejoin', t => {
	const health = new ReplicaHealth(10_000, noJitter);
	let now = 0;
	const goDown = () => {
		health.connectionFailed(new Error('refused'));
		return health.probeFailed(new Error('refused'), now);
	};

	goDown();
	now += 300;
	t.deepEqual(health.probeSucceeded(now), {cameBack: true});
	now += 1000; // Within the window: flapping.
	t.deepEqual(goDown(), {wentDown: true});
	t.true(health.flapping);
	// The back-off continues from the first episode's instead of starting over.
	t.is(health.nextProbeAt - now, 400);
	for (let probe = 0; probe < 4; probe++) {
		now = health.nextProbeAt;
		health.probeFailed(new Error('refused'), now);
	}

	t.is(health.nextProbeAt - now, maxFlappingProbeDelayMs);
	// Answering: probed every half second, it must answer for 5 s in a row.
	const answeringFrom = health.nextProbeAt;
	for (now = answeringFrom; now - answeringFrom < flappingStableMs; now = health.nextProbeAt) {
		t.deepEqual(health.probeSucceeded(now), {}, `answered at +${now - answeringFrom} ms`);
		t.is(health.nextProbeAt - now, flappingProbeIntervalMs);
	}

	// One failure in the middle starts it over.
	health.probeFailed(new Error('refused'), now);
	const again = health.nextProbeAt;
	for (now = again; now - again < flappingStableMs; now = health.nextProbeAt) {
		t.deepEqual(health.probeSucceeded(now), {});
	}

	t.deepEqual(health.probeSucceeded(now), {cameBack: true});
	// Outside the window, the next episode is an ordinary one again.
	now += 10_001;
	goDown();
	t.false(health.flapping);
	t.is(health.nextProbeAt - now, firstProbeDelayMs);
});

test('lagging or promoted replicas are up but not usable', t => {
	const health = new ReplicaHealth(30_000, noJitter);
	health.lagging = true;
	t.is(health.state, 'up');
	t.false(health.isUsable());
	health.lagging = false;
	health.promoted = true;
	t.false(health.isUsable());
});
