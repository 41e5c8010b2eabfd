// Writes follow the primary: after each round of the monitor, the follower applies the
// topology's decision (topology.ts has the rules) to the nodes and the write pool, and
// reports what it saw: a change of primary, and nodes that claim to be a primary without
// taking the writes (split brain), once per episode.
import createDebug from 'debug';
import {warningCodes, warningType} from './errors.js';
import type {EmitEvent} from './events.js';
import type {Replica} from './replica.js';
import {decidePrimary, type RoleReport, type SplitBrainReason} from './topology.js';
import type {WritePool} from './write-pool.js';

const log = createDebug('sequelize-multidb:primary');

export interface PrimaryFollowerOptions {
	readonly writePool: WritePool;
	/** `followPrimary`: whether writes may move at all. */
	readonly follow: boolean;
	readonly emit: EmitEvent;
}

export class PrimaryFollower {
	readonly #options: PrimaryFollowerOptions;
	/** The timeline of the primary when it last answered (undefined: not seen yet). */
	#timeline: number | undefined;
	/** Nodes claiming to be a primary that get nothing, reported once per episode. */
	readonly #rogues = new Map<Replica, SplitBrainReason>();

	constructor(options: PrimaryFollowerOptions) {
		this.#options = options;
	}

	get primary(): Replica {
		return this.#options.writePool.primary;
	}

	/** One round's answers: moves the writes where the rules say, and returns where they go and the primary's timeline. */
	observe(reports: ReadonlyMap<Replica, RoleReport>): {primary: Replica; timeline: number | undefined} {
		const from = this.primary;
		const decision = decidePrimary(from, this.#timeline, reports, this.#options.follow);
		this.#timeline = decision.timeline;
		const to = decision.primary;
		if (log.enabled && !decision.changed && reports.get(from)?.reachable !== true) {
			log('%s (timeline %s) does not answer; writes stay: %s', from.name, this.#timeline, [...reports].map(([node, report]) => `${node.name} ${report.reachable ? `${report.inRecovery ? 'standby' : 'primary'} tl ${report.timeline}` : 'unreachable'}`).join(', '));
		}

		if (decision.changed) {
			from.takesWrites = false;
			to.takesWrites = true;
			this.#options.writePool.switchTo(to);
			const {timeline} = decision;
			log('writes now go to %s (timeline %d), not %s', to.name, timeline, from.name);
			this.#options.emit('primaryChanged', {from: from.name, to: to.name, timeline});
		}

		for (const [node, report] of reports) {
			const reason = decision.rogues.get(node);
			if (reason === undefined) {
				// An episode ends when the node answers as something else (not when it is unreachable).
				if (report.reachable) {
					this.#rogues.delete(node);
				}
			} else if (this.#rogues.get(node) !== reason) {
				this.#rogues.set(node, reason);
				this.#reportSplitBrain(node, report.timeline, reason, to);
			}
		}

		return {primary: to, timeline: this.#timeline};
	}

	#reportSplitBrain(node: Replica, timeline: number | undefined, reason: SplitBrainReason, primary: Replica): void {
		const event = {node: node.name, timeline, primary: primary.name, primaryTimeline: this.#timeline, reason};
		const message = `sequelize-multidb: ${node.name} answers as a primary (timeline ${timeline ?? '?'}) but ${primary.name} (timeline ${this.#timeline ?? '?'}) takes the writes: ${reason}; it gets neither writes nor reads`;
		log(message);
		process.emitWarning(message, {type: warningType, code: warningCodes.splitBrain});
		this.#options.emit('splitBrain', event);
	}
}
