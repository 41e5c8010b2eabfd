// One benchmark's results, as written into BENCHMARKS.md.
export interface BenchSection {
	readonly id: string;
	readonly title: string;
	/** What was measured and how, in a sentence or two. */
	readonly method: string;
	/** Markdown tables and lines. */
	readonly body: string;
	/** Each headline figure against its target. */
	readonly verdicts: ReadonlyArray<{readonly figure: string; readonly target: string; readonly met: boolean}>;
}
