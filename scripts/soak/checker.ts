// Reads a soak's history and the final primary's rows, and says which promises were broken:
// a pure function, so its rules are tested on hand-written histories (test/soak-checker.ts).
//
// The promises, and the only exceptions the README documents:
// - A read does not fail. Except a read that needs the primary (a pinned or token-carrying
//   client's) while the primary is out, and any read at an instant when no server at all
//   can answer.
// - A read of a client that wrote sees that write (the post, and at least its own likes).
// - An acknowledged write is on the final primary, once; a like is counted at least once
//   per acknowledgement and at most once per attempt.
import type {FaultKind, FaultRecord, HistoryEntry, Operation} from './history.js';

export interface FinalPost {
	readonly id: number;
	readonly title: string;
	readonly likes: number;
}

export type ViolationKind = 'failed-read' | 'stale-read' | 'lost-write' | 'duplicate-write' | 'write-sent-twice';

/** Why a failed read broke no promise. */
export type ExcuseKind = 'needs-primary-while-out' | 'no-server-can-answer';

export interface Violation {
	readonly kind: ViolationKind;
	readonly detail: string;
}

export interface LatencySummary {
	readonly reads: number;
	readonly p50: number;
	readonly p99: number;
	readonly max: number;
}

export interface SoakReport {
	readonly operations: number;
	readonly byKind: Readonly<Record<string, {ok: number; failed: number}>>;
	readonly faults: Readonly<Partial<Record<FaultKind, number>>>;
	readonly violations: readonly Violation[];
	readonly violationCounts: Readonly<Partial<Record<ViolationKind, number>>>;
	readonly excused: Readonly<Partial<Record<ExcuseKind, number>>>;
	/** Read latency (ms) by the fault kinds active when the read began; `none` for calm. */
	readonly latency: Readonly<Record<string, LatencySummary>>;
	/** Answered reads per server. */
	readonly readsByServer: Readonly<Record<string, number>>;
	/**
	 * Checked write and like counts, and how many writes failed while a primary was up (no
	 * promise covers them, but users would see them).
	 */
	readonly writes: {readonly acknowledged: number; readonly unacknowledged: number; readonly likesAcknowledged: number; readonly likesAttempted: number; readonly failedWhilePrimaryUp: number};
}

const readKinds = new Set(['read', 'list']);

export function checkHistory(history: readonly HistoryEntry[], finalPosts: readonly FinalPost[], options: CheckOptions): SoakReport {
	const operations = history.filter((entry): entry is Operation => entry.type === 'operation');
	const faults = history.filter((entry): entry is FaultRecord => entry.type === 'fault');
	const violations: Violation[] = [];
	const excused: Partial<Record<ExcuseKind, number>> = {};
	const byKind: Record<string, {ok: number; failed: number}> = {};
	const readsByServer: Record<string, number> = {};

	for (const operation of operations) {
		const counts = byKind[operation.kind] ??= {ok: 0, failed: 0};
		counts[operation.ok ? 'ok' : 'failed']++;
		if (!readKinds.has(operation.kind)) {
			continue;
		}

		if (operation.ok) {
			if (operation.server) {
				readsByServer[operation.server] = (readsByServer[operation.server] ?? 0) + 1;
			}

			const stale = staleness(operation);
			if (stale) {
				violations.push({kind: 'stale-read', detail: `${describe(operation)}: ${stale}`});
			}

			continue;
		}

		const excuse = excuseFor(operation, faults, options);
		if (excuse) {
			excused[excuse] = (excused[excuse] ?? 0) + 1;
		} else {
			violations.push({kind: 'failed-read', detail: `${describe(operation)}: ${operation.error ?? 'failed'}`});
		}
	}

	const writes = {
		...checkWrites(operations, finalPosts, violations),
		failedWhilePrimaryUp: operations.filter(operation => (operation.kind === 'write' || operation.kind === 'like') && !operation.ok && !primaryWasOut(operation, faults, options)).length,
	};
	const faultCounts: Partial<Record<FaultKind, number>> = {};
	for (const fault of faults) {
		faultCounts[fault.kind] = (faultCounts[fault.kind] ?? 0) + 1;
	}

	const violationCounts: Partial<Record<ViolationKind, number>> = {};
	for (const violation of violations) {
		violationCounts[violation.kind] = (violationCounts[violation.kind] ?? 0) + 1;
	}

	return {
		operations: operations.length,
		byKind,
		faults: faultCounts,
		violations,
		violationCounts,
		excused,
		latency: latencyByPhase(operations.filter(operation => readKinds.has(operation.kind)), faults),
		readsByServer,
		writes,
	};
}

function describe(operation: Operation): string {
	return `${operation.client} (${operation.mode}) ${operation.kind}${operation.post === undefined ? '' : ` of post ${operation.post}`} at ${operation.start}–${operation.end} ms${operation.server ? ` on ${operation.server}` : ''}`;
}

/** What a read that must see the client's writes missed, if anything. */
function staleness(operation: Operation): string | undefined {
	const {expects} = operation;
	if (!expects) {
		return undefined;
	}

	if (expects.title !== undefined && !operation.found) {
		return `did not find its own post "${expects.title}"`;
	}

	if (expects.likesAtLeast !== undefined && (operation.likes ?? 0) < expects.likesAtLeast) {
		return `saw ${operation.likes ?? 0} likes after its own ${expects.likesAtLeast} acknowledged`;
	}

	return undefined;
}

function overlaps(fault: FaultRecord, start: number, end: number): boolean {
	return fault.start <= end && fault.end >= start;
}

/**
 * How long after a primary came back (restarted, or a standby promoted) the router may still
 * send what needs the primary to the old one: it learns of a promotion in its next monitor
 * round (within 1.2 intervals, with jitter), which waits for a silent old primary for up to
 * min(connectTimeoutMs, 2 intervals).
 */
export function primaryReturnMs({monitorIntervalMs = 1000, connectTimeoutMs = 5000}: {monitorIntervalMs?: number; connectTimeoutMs?: number}): number {
	return Math.round((1.2 * monitorIntervalMs) + Math.min(connectTimeoutMs, 2 * monitorIntervalMs) + 500);
}

export interface CheckOptions {
	/** The servers' names. */
	readonly servers: readonly string[];
	/** See primaryReturnMs(). */
	readonly primaryReturnMs: number;
}

function primaryWasOut(operation: Operation, faults: readonly FaultRecord[], options: CheckOptions): boolean {
	return faults.some(fault => fault.primaryOutUntil !== undefined && fault.start <= operation.end && fault.primaryOutUntil + options.primaryReturnMs >= operation.start);
}

function excuseFor(operation: Operation, faults: readonly FaultRecord[], options: CheckOptions): ExcuseKind | undefined {
	if (operation.mode !== 'anonymous' && primaryWasOut(operation, faults, options)) {
		return 'needs-primary-while-out';
	}

	return noServerCanAnswer(operation, faults, options.servers) ? 'no-server-can-answer' : undefined;
}

/**
 * Whether at some instant of the operation every server was disabled by a fault. Such an
 * instant, if any, is the operation's start or the start of one of the faults.
 */
function noServerCanAnswer(operation: Operation, faults: readonly FaultRecord[], servers: readonly string[]): boolean {
	const during = faults.filter(fault => overlaps(fault, operation.start, operation.end));
	const instants = [operation.start, ...during.map(fault => fault.start).filter(start => start >= operation.start)];
	return instants.some(instant => servers.every(server => during.some(fault => fault.start <= instant && fault.end >= instant && fault.disables.includes(server))));
}

function checkWrites(operations: readonly Operation[], finalPosts: readonly FinalPost[], violations: Violation[]): Omit<SoakReport['writes'], 'failedWhilePrimaryUp'> {
	const postsByTitle = new Map<string, FinalPost[]>();
	for (const post of finalPosts) {
		const same = postsByTitle.get(post.title) ?? [];
		same.push(post);
		postsByTitle.set(post.title, same);
	}

	for (const [title, posts] of postsByTitle) {
		if (posts.length > 1) {
			violations.push({kind: 'duplicate-write', detail: `"${title}" is on the primary ${posts.length} times (ids ${posts.map(post => post.id).join(', ')})`});
		}
	}

	let acknowledged = 0;
	let unacknowledged = 0;
	for (const write of operations.filter(operation => operation.kind === 'write')) {
		if (!write.ok) {
			unacknowledged++;
			continue;
		}

		acknowledged++;
		if (write.title !== undefined && !postsByTitle.has(write.title)) {
			violations.push({kind: 'lost-write', detail: `${describe(write)}: acknowledged "${write.title}" is not on the final primary`});
		}
	}

	const likes = new Map<number, {acknowledged: number; attempted: number}>();
	for (const {kind, post, ok} of operations) {
		if (kind !== 'like' || post === undefined) {
			continue;
		}

		const counts = likes.get(post) ?? {acknowledged: 0, attempted: 0};
		counts.attempted++;
		counts.acknowledged += ok ? 1 : 0;
		likes.set(post, counts);
	}

	const postsById = new Map(finalPosts.map(post => [post.id, post]));
	let likesAcknowledged = 0;
	let likesAttempted = 0;
	for (const [id, counts] of likes) {
		likesAcknowledged += counts.acknowledged;
		likesAttempted += counts.attempted;
		const final = postsById.get(id)?.likes ?? 0;
		if (final < counts.acknowledged) {
			violations.push({kind: 'lost-write', detail: `post ${id} has ${final} likes on the final primary after ${counts.acknowledged} acknowledged`});
		}

		if (final > counts.attempted) {
			violations.push({kind: 'write-sent-twice', detail: `post ${id} has ${final} likes on the final primary after only ${counts.attempted} attempted`});
		}
	}

	return {acknowledged, unacknowledged, likesAcknowledged, likesAttempted};
}

function latencyByPhase(reads: readonly Operation[], faults: readonly FaultRecord[]): Record<string, LatencySummary> {
	const durations = new Map<string, number[]>();
	for (const read of reads) {
		const active = new Set(faults.filter(fault => fault.start <= read.start && fault.end >= read.start).map(fault => fault.kind));
		for (const phase of active.size === 0 ? ['none'] : active) {
			const values = durations.get(phase) ?? [];
			values.push(read.end - read.start);
			durations.set(phase, values);
		}
	}

	return Object.fromEntries([...durations].map(([phase, values]) => {
		const sorted = values.sort((a, b) => a - b);
		const at = (share: number) => sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))];
		return [phase, {reads: sorted.length, p50: at(0.5), p99: at(0.99), max: at(1)}];
	}));
}
