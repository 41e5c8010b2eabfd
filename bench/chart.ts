// A small SVG line chart of events per second over time, one panel per reader (Sequelize's
// own replication beside the router), with dashed lines where faults were injected.

export interface ChartSeries {
	/** The bucket key this line counts. */
	readonly key: string;
	readonly label: string;
	readonly color: string;
	readonly dashed?: boolean;
}

export interface ChartPanel {
	readonly title: string;
	/** Per time bucket: counts by series key. */
	readonly buckets: ReadonlyArray<Readonly<Record<string, number>>>;
}

export interface ChartOptions {
	readonly series: readonly ChartSeries[];
	readonly panels: readonly ChartPanel[];
	readonly bucketMs: number;
	readonly totalMs: number;
	/** Fault marks: when (ms from the start) and what. */
	readonly marks: ReadonlyArray<readonly [atMs: number, label: string]>;
	readonly unit: string;
}

export function lineChart({series, panels, bucketMs, totalMs, marks, unit}: ChartOptions): string {
	const width = 460;
	const height = 220;
	const margin = {left: 50, right: 10, top: 30, bottom: 35};
	const perSecond = (value: number) => value * (1000 / bucketMs);
	const top = Math.max(1, ...panels.flatMap(panel => panel.buckets.flatMap(bucket => series.map(line => perSecond(bucket[line.key] ?? 0)))));
	const draw = (panel: ChartPanel, offsetX: number) => {
		const x = (index: number) => offsetX + margin.left + ((index + 0.5) / panel.buckets.length) * (width - margin.left - margin.right);
		const y = (value: number) => margin.top + (1 - (value / top)) * (height - margin.top - margin.bottom);
		const lines = series.map(line => `<polyline fill="none" stroke="${line.color}" stroke-width="2"${line.dashed ? ' stroke-dasharray="5 3"' : ''} points="${panel.buckets.map((bucket, index) => `${x(index).toFixed(1)},${y(perSecond(bucket[line.key] ?? 0)).toFixed(1)}`).join(' ')}"/>`).join('');
		const events = marks.map(([at, label], index) => {
			const position = x((at / bucketMs) - 0.5);
			return `<line x1="${position}" x2="${position}" y1="${margin.top}" y2="${height - margin.bottom}" stroke="#999" stroke-dasharray="4"/><text x="${position + 3}" y="${margin.top + 10 + (index * 11)}" font-size="10">${label}</text>`;
		}).join('');
		const axis = `<line x1="${offsetX + margin.left}" x2="${offsetX + margin.left}" y1="${margin.top}" y2="${height - margin.bottom}" stroke="#000"/><line x1="${offsetX + margin.left}" x2="${offsetX + width - margin.right}" y1="${height - margin.bottom}" y2="${height - margin.bottom}" stroke="#000"/><text x="${offsetX + margin.left - 5}" y="${margin.top + 4}" font-size="10" text-anchor="end">${Math.round(top)}</text><text x="${offsetX + margin.left - 5}" y="${height - margin.bottom}" font-size="10" text-anchor="end">0</text><text x="${offsetX + (width / 2)}" y="${height - 8}" font-size="11" text-anchor="middle">seconds (0–${totalMs / 1000})</text>`;
		return `<text x="${offsetX + (width / 2)}" y="18" font-size="13" text-anchor="middle" font-weight="bold">${panel.title}</text>${axis}${events}${lines}`;
	};

	const perRow = 4;
	const legendRows = Math.ceil(series.length / perRow);
	const legend = series.map((line, index) => {
		const left = 20 + ((index % perRow) * 220);
		const top = height + 5 + (Math.floor(index / perRow) * 16);
		return `<rect x="${left}" y="${top}" width="12" height="12" fill="${line.color}"/><text x="${left + 16}" y="${top + 10}" font-size="12">${line.label} ${unit}</text>`;
	}).join('');
	return `<svg xmlns="http://www.w3.org/2000/svg" width="${width * panels.length}" height="${height + 10 + (legendRows * 16)}" font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/>${panels.map((panel, index) => draw(panel, index * width)).join('')}${legend}</svg>\n`;
}
