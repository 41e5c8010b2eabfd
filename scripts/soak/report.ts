// The soak's report: printed as it ends, and as a Markdown section for RELIABILITY.md.
import type {MultiDbOptions} from '../../source/index.js';
import type {SoakReport} from './checker.js';

export function printReport(report: SoakReport, followAllowanceMs: number): void {
	console.log(`# operations checked: ${report.operations} (${Object.entries(report.byKind).map(([kind, {ok, failed}]) => `${kind} ${ok} ok/${failed} failed`).join(', ')})`);
	console.log(`# faults done: ${Object.entries(report.faults).map(([kind, count]) => `${kind} ${count}`).join(', ')}`);
	console.log(`# writes: ${report.writes.acknowledged} acknowledged, ${report.writes.unacknowledged} not (${report.writes.failedWhilePrimaryUp} of them failed while a primary was up); likes: ${report.writes.likesAcknowledged} acknowledged of ${report.writes.likesAttempted} attempted`);
	console.log(`# reads by server: ${Object.entries(report.readsByServer).map(([server, count]) => `${server} ${count}`).join(', ')}`);
	console.log(`# failed reads excused (primary out, plus ${followAllowanceMs} ms for the router to follow; no server could answer): ${JSON.stringify(report.excused)}`);
	console.log('# read latency by active fault (ms):');
	for (const [phase, {reads, p50, p99, max}] of Object.entries(report.latency)) {
		console.log(`#   ${phase.padEnd(14)} ${String(reads).padStart(6)} reads  p50 ${p50}  p99 ${p99}  max ${max}`);
	}

	for (const violation of report.violations.slice(0, 30)) {
		console.log(`VIOLATION ${violation.kind}: ${violation.detail}`);
	}

	const counts = Object.entries(report.violationCounts).map(([kind, count]) => `${kind} ${count}`).join(', ');
	console.log(`soak: ${report.violations.length} violations${counts ? ` (${counts})` : ''}`);
}

export interface ReportContext {
	readonly title: string;
	/** The command that produced the run. */
	readonly command: string;
	readonly postgres: string;
	readonly routerOptions: MultiDbOptions;
	readonly followAllowanceMs: number;
	readonly skipped: readonly string[];
}

export function reportMarkdown(report: SoakReport, context: ReportContext): string {
	const counts = (record: Readonly<Record<string, number | undefined>>) => Object.entries(record).map(([name, count]) => `${name} ${count ?? 0}`).join(', ') || 'none';
	const lines = [
		`### ${context.title}`,
		'',
		`\`${context.command}\` (${context.postgres}; router options \`${JSON.stringify(context.routerOptions)}\`)`,
		'',
		`- **Violations: ${report.violations.length}**${report.violations.length > 0 ? ` (${counts(report.violationCounts)})` : ''}.`,
		`- Operations checked: ${report.operations} (${Object.entries(report.byKind).map(([kind, {ok, failed}]) => `${kind}: ${ok} ok, ${failed} failed`).join('; ')}).`,
		`- Faults done: ${counts(report.faults)}${context.skipped.length > 0 ? `; ${context.skipped.length} not made (${context.skipped.filter(reason => reason.includes('no server')).length} because they would have left no server able to answer)` : ''}.`,
		`- Writes: ${report.writes.acknowledged} acknowledged${report.violationCounts['lost-write'] || report.violationCounts['duplicate-write'] ? '' : ', each on the final primary exactly once'}; ${report.writes.unacknowledged} not acknowledged (${report.writes.failedWhilePrimaryUp} of them while a primary was up). Likes: ${report.writes.likesAcknowledged} acknowledged of ${report.writes.likesAttempted} sent.`,
		`- Failed reads excused: ${counts(report.excused)} (the primary out, plus ${context.followAllowanceMs} ms for the router to follow; no server able to answer).`,
		`- Answered reads by server: ${counts(report.readsByServer)}.`,
		'',
		'| active fault | reads | p50 ms | p99 ms | max ms |',
		'|---|---:|---:|---:|---:|',
		...Object.entries(report.latency).map(([phase, {reads, p50, p99, max}]) => `| ${phase} | ${reads} | ${p50} | ${p99} | ${max} |`),
		'',
	];
	for (const violation of report.violations.slice(0, 20)) {
		lines.push(`- ${violation.kind}: ${violation.detail}`);
	}

	return `${lines.join('\n')}\n`;
}
