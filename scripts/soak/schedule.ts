// The soak's fault schedule: a pure function of the seed and the run's length, so a run that
// found something can be replayed (`npm run soak -- --seed N`).
//
// Faults are dealt from a shuffled deck, so every kind comes up in every round of the deck,
// and they overlap: each lasts 2–7 s and the next begins 1–3.5 s later. Which server a
// replica fault hits is a slot (the first or second standby at that moment), resolved when it
// runs, because a promotion changes which servers are standbys.
import type {FaultKind} from './history.js';

export interface ScheduledFault {
	/** ms after the soak's load began; the fault starts no earlier (later if its target is busy). */
	readonly at: number;
	readonly kind: FaultKind;
	/** For a replica fault: which standby, 0 or 1. */
	readonly slot: number;
	readonly durationMs: number;
}

/** Faults done to one standby. */
export const replicaFaults: readonly FaultKind[] = ['stop', 'freeze', 'kill-backends', 'pause-replay', 'partition'];
/** Faults done to the primary. */
export const primaryFaults: readonly FaultKind[] = ['stop-primary', 'promotion'];

/** mulberry32: a small seeded generator, enough for a schedule (not for anything secret). */
export function seededRandom(seed: number): () => number {
	let state = seed >>> 0;
	return () => {
		state = (state + 0x6D_2B_79_F5) >>> 0;
		let value = state;
		value = Math.imul(value ^ (value >>> 15), value | 1);
		value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
		return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
	};
}

/**
 * The faults of a run of `runMs`, of the kinds in `kinds`. The first fault starts after 3 s
 * of calm, to measure the calm; the last ends 3 s before the run does.
 */
export function faultSchedule(seed: number, runMs: number, kinds: readonly FaultKind[]): ScheduledFault[] {
	const random = seededRandom(seed);
	const between = (low: number, high: number) => Math.round(low + (random() * (high - low)));
	const schedule: ScheduledFault[] = [];
	let deck: FaultKind[] = [];
	for (let at = 3000; kinds.length > 0;) {
		if (deck.length === 0) {
			deck = shuffle([...kinds], random);
		}

		const kind = deck.pop() as FaultKind;
		const durationMs = kind === 'kill-backends' ? 0 : between(2000, 7000);
		if (at + durationMs + 3000 > runMs) {
			break;
		}

		schedule.push({at, kind, slot: between(0, 1), durationMs});
		at += between(1000, 3500);
	}

	return schedule;
}

function shuffle<T>(items: T[], random: () => number): T[] {
	for (let index = items.length - 1; index > 0; index--) {
		const other = Math.floor(random() * (index + 1));
		[items[index], items[other]] = [items[other], items[index]];
	}

	return items;
}
