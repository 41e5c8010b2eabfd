// What the soak records: one JSON line per operation and per fault, written as they end, so
// a run cut short still leaves a history the checker can read.
import {createWriteStream, type WriteStream} from 'node:fs';

/**
 * How a client asked to see its own writes:
 * - `time`, `lsn`: a browser user of the forum, pinned by its cookie in that mode;
 * - `token`: a job that carries a consistency token from the request that queued it;
 * - `anonymous`: a reader with no cookie, who is promised nothing but an answer.
 */
export type ClientMode = 'time' | 'lsn' | 'token' | 'anonymous';

export type OperationKind =
	/** A new post (a unique title). */
	| 'write'
	/** A like: a non-idempotent increment, so a write sent twice shows in the count. */
	| 'like'
	/** A read of one post. */
	| 'read'
	/** A read of the latest posts. */
	| 'list';

export interface Operation {
	readonly type: 'operation';
	readonly client: string;
	readonly mode: ClientMode;
	readonly kind: OperationKind;
	/** ms since the soak began. */
	readonly start: number;
	readonly end: number;
	/** Acknowledged (a write) or answered (a read). */
	readonly ok: boolean;
	/** The error's name and message, for an operation that failed. */
	readonly error?: string;
	/** The post's unique title, for a write and for a read that must see one. */
	readonly title?: string;
	readonly post?: number;
	/** The server that answered a read (by name). */
	readonly server?: string;
	/** For a read that must see the client's own writes: what it must see. */
	readonly expects?: {readonly title?: string; readonly likesAtLeast?: number};
	/** What the read saw: the post (or not), and its likes. */
	readonly found?: boolean;
	readonly likes?: number;
	/** The WAL position the client carried (a token's), where known. */
	readonly lsn?: string;
}

export type FaultKind = 'stop' | 'freeze' | 'kill-backends' | 'pause-replay' | 'partition' | 'stop-primary' | 'promotion';

export interface FaultRecord {
	readonly type: 'fault';
	readonly kind: FaultKind;
	/** The server it was done to (a promotion: the one promoted). */
	readonly target: string;
	readonly start: number;
	readonly end: number;
	/** Servers the fault made unable to answer, while it lasted. */
	readonly disables: readonly string[];
	/**
	 * Until when (ms) no primary could take queries, for a fault that took it out: the
	 * restart of a stopped primary, the end of a promotion (not of the old primary's rebuild).
	 */
	readonly primaryOutUntil?: number;
}

/** What a router reported (`primaryChanged`, `splitBrain`), for reading a history by hand. */
export interface RouterEvent {
	readonly type: 'event';
	/** Which app's router: `time`, `lsn` (the forums) or `jobs`. */
	readonly router: string;
	readonly name: string;
	readonly detail: string;
	readonly start: number;
	readonly end: number;
}

export type HistoryEntry = Operation | FaultRecord | RouterEvent;

export class HistoryWriter {
	readonly #stream: WriteStream;
	readonly #began = Date.now();
	readonly entries: HistoryEntry[] = [];

	constructor(file: string) {
		this.#stream = createWriteStream(file);
	}

	/** ms since the soak began. */
	now(): number {
		return Date.now() - this.#began;
	}

	record(entry: HistoryEntry): void {
		this.entries.push(entry);
		this.#stream.write(`${JSON.stringify(entry)}\n`);
	}

	async close(): Promise<void> {
		await new Promise(resolve => {
			this.#stream.end(resolve);
		});
	}
}
