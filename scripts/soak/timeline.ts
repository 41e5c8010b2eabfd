// The soak's timeline as an SVG: a band per server showing its faults, then the answered
// reads per second of each server, then the failed operations per second (red: reads,
// grey: writes, which may fail while the primary is out).
import type {FaultKind, FaultRecord, HistoryEntry, Operation} from './history.js';

// Pale fills for the fault bands, strong lines for the servers: no color means two things.
const faultColors: Record<FaultKind, string> = {
	'stop': '#fb9a99',
	'freeze': '#a6cee3',
	'kill-backends': '#000000',
	'pause-replay': '#fdbf6f',
	'partition': '#cab2d6',
	'stop-primary': '#b15928',
	'promotion': '#b2df8a',
};
const serverColors = ['#222222', '#17becf', '#bcbd22', '#1f78b4', '#6a3d9a'];

export function timelineSvg(history: readonly HistoryEntry[], servers: readonly string[], title: string): string {
	const operations = history.filter((entry): entry is Operation => entry.type === 'operation');
	const faults = history.filter((entry): entry is FaultRecord => entry.type === 'fault');
	// Loops, not Math.max(...spread): a 10-minute history has ~200,000 entries.
	const totalMs = history.reduce((latest, entry) => Math.max(latest, entry.end), 1000);
	const width = 900;
	const left = 80;
	const right = 20;
	const x = (ms: number) => left + ((ms / totalMs) * (width - left - right));
	const bandHeight = 18;
	const bandsTop = 48;
	const chartTop = bandsTop + (servers.length * (bandHeight + 4)) + 20;
	const chartHeight = 180;
	const errorsTop = chartTop + chartHeight + 30;
	const errorsHeight = 50;
	const height = errorsTop + errorsHeight + 60;
	const parts: string[] = [`<text x="${width / 2}" y="20" font-size="14" font-weight="bold" text-anchor="middle">${escape(title)}</text><text x="${left}" y="${bandsTop - 6}" font-size="10" fill="#555">faults by server (servers keep their names; a promotion moves the primary's role)</text>`];

	for (const [index, server] of servers.entries()) {
		const y = bandsTop + (index * (bandHeight + 4));
		parts.push(`<text x="${left - 6}" y="${y + 13}" font-size="11" text-anchor="end">${escape(server)}</text><rect x="${left}" y="${y}" width="${width - left - right}" height="${bandHeight}" fill="#f3f3f3"/>`);
		for (const fault of faults.filter(candidate => candidate.target === server)) {
			const span = Math.max(2, x(fault.end) - x(fault.start));
			parts.push(`<rect x="${x(fault.start).toFixed(1)}" y="${y}" width="${span.toFixed(1)}" height="${bandHeight}" fill="${faultColors[fault.kind]}" opacity="0.8"><title>${fault.kind} ${fault.start}–${fault.end} ms</title></rect>`);
		}
	}

	const seconds = Math.ceil(totalMs / 1000);
	const perSecond = (select: (operation: Operation) => boolean) => {
		const counts = Array.from({length: seconds}, () => 0);
		for (const operation of operations) {
			if (select(operation)) {
				counts[Math.min(seconds - 1, Math.floor(operation.end / 1000))]++;
			}
		}

		return counts;
	};

	const reads = (operation: Operation) => operation.kind === 'read' || operation.kind === 'list';
	const series = servers.map(server => perSecond(operation => reads(operation) && operation.ok && operation.server === server));
	const top = series.flat().reduce((highest, count) => Math.max(highest, count), 1);
	const secondX = (second: number) => x((second + 0.5) * 1000);
	parts.push(axes(left, chartTop, width - left - right, chartHeight, top, 'answered reads per second, by server'));
	for (const [index, counts] of series.entries()) {
		const points = counts.map((count, second) => `${secondX(second).toFixed(1)},${(chartTop + chartHeight - ((count / top) * chartHeight)).toFixed(1)}`).join(' ');
		parts.push(`<polyline fill="none" stroke="${serverColors[index % serverColors.length]}" stroke-width="1.5" points="${points}"/>`);
	}

	const failedReads = perSecond(operation => reads(operation) && !operation.ok);
	const failedWrites = perSecond(operation => !reads(operation) && !operation.ok);
	const errorTop = [...failedReads, ...failedWrites].reduce((highest, count) => Math.max(highest, count), 1);
	parts.push(axes(left, errorsTop, width - left - right, errorsHeight, errorTop, 'failed operations per second'));
	const barWidth = Math.max(1, ((width - left - right) / seconds) / 2);
	for (let second = 0; second < seconds; second++) {
		for (const [offset, counts, color] of [[0, failedReads, '#e41a1c'], [barWidth, failedWrites, '#999999']] as const) {
			if (counts[second] > 0) {
				const barHeight = (counts[second] / errorTop) * errorsHeight;
				parts.push(`<rect x="${(x(second * 1000) + offset).toFixed(1)}" y="${(errorsTop + errorsHeight - barHeight).toFixed(1)}" width="${barWidth.toFixed(1)}" height="${barHeight.toFixed(1)}" fill="${color}"/>`);
			}
		}
	}

	parts.push(`<text x="${width / 2}" y="${errorsTop + errorsHeight + 18}" font-size="11" text-anchor="middle">seconds (0–${seconds})</text>`);
	const legend = [
		...servers.map((server, index) => [serverColors[index % serverColors.length], `reads on ${server}`] as const),
		['#e41a1c', 'failed reads'] as const,
		['#999999', 'failed writes'] as const,
		...Object.entries(faultColors).map(([kind, color]) => [color, kind] as const),
	];
	for (const [index, [color, label]] of legend.entries()) {
		const legendX = left + ((index % 6) * 135);
		const legendY = errorsTop + errorsHeight + 30 + (Math.floor(index / 6) * 14);
		parts.push(`<rect x="${legendX}" y="${legendY - 9}" width="10" height="10" fill="${color}"/><text x="${legendX + 14}" y="${legendY}" font-size="10">${escape(label)}</text>`);
	}

	return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height + 20}" font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/>${parts.join('')}</svg>\n`;
}

function axes(left: number, top: number, width: number, height: number, maximum: number, label: string): string {
	return `<line x1="${left}" x2="${left}" y1="${top}" y2="${top + height}" stroke="#000"/><line x1="${left}" x2="${left + width}" y1="${top + height}" y2="${top + height}" stroke="#000"/><text x="${left - 4}" y="${top + 8}" font-size="10" text-anchor="end">${maximum}</text><text x="${left - 4}" y="${top + height}" font-size="10" text-anchor="end">0</text><text x="${left + 4}" y="${top - 4}" font-size="11">${escape(label)}</text>`;
}

function escape(text: string): string {
	return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}
