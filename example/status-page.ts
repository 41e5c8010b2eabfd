// The `/status` page: a table of the servers and two live SVG charts (queries per second
// per server, each standby's lag), drawn in the browser from `/status.json`, polled every
// second. The first paint uses the rows the server embeds, so the page is whole at once.
import type {ServerRow} from './status.js';

/** Drawn in the browser: kept as plain ES2020 with no dependencies. */
const script = String.raw`
const palette = {primary: '#3b6fd4', replica1: '#1c9a6c', replica2: '#d9822b'};
const stateColors = {writes: '#3b6fd4', healthy: '#1c9a6c', suspect: '#d9a21b', lagging: '#d9a21b', quarantined: '#d1453b', promoted: '#8e44ad'};
const colorOf = name => palette[name] || '#777';
const text = value => String(value).replace(/[&<>"']/g, c => '&#' + c.charCodeAt(0) + ';');

function renderRows(servers) {
	document.querySelector('#servers tbody').innerHTML = servers.map(server => '<tr data-server="' + text(server.name) + '">'
		+ '<td><span class="swatch" style="background:' + colorOf(server.name) + '"></span>' + text(server.name) + '<div class="address">' + text(server.address) + '</div></td>'
		+ '<td>' + text(server.role) + '</td>'
		+ '<td><span class="state" style="background:' + (stateColors[server.state] || '#777') + '">' + text(server.state) + '</span></td>'
		+ '<td class="num">' + (server.lagMs === undefined || server.lagMs === null ? '–' : (server.lagMs / 1000).toFixed(1) + ' s') + '</td>'
		+ '<td class="num reads">' + server.perSecond + '</td>'
		+ '<td class="error">' + (server.lastError ? text(server.lastError) : '') + '</td></tr>').join('');
}

function chart(svg, history, pick, unit) {
	const width = 640, height = 160, left = 44, bottom = 18;
	const names = [...new Set(history.flatMap(sample => Object.keys(pick(sample))))].sort();
	const max = Math.max(1, ...history.flatMap(sample => Object.values(pick(sample))));
	// The right edge is the latest sample; at least a minute is shown.
	const end = history.length > 0 ? history[history.length - 1].at : Date.now();
	const span = Math.max(60000, end - (history.length > 0 ? history[0].at : end));
	const x = at => width - 8 - ((end - at) / span) * (width - left - 8);
	const y = value => 6 + (1 - value / max) * (height - bottom - 6);
	const lines = names.map(name => {
		const points = history.filter(sample => pick(sample)[name] !== undefined).map(sample => x(sample.at).toFixed(1) + ',' + y(pick(sample)[name]).toFixed(1)).join(' ');
		return '<polyline fill="none" stroke-width="2" stroke="' + colorOf(name) + '" points="' + points + '"><title>' + text(name) + '</title></polyline>';
	}).join('');
	const legend = names.map((name, index) => '<text x="' + (left + 4 + index * 90) + '" y="' + (height - 2) + '" fill="' + colorOf(name) + '">' + text(name) + '</text>').join('');
	const grid = [0, 0.5, 1].map(f => '<line x1="' + left + '" x2="' + (width - 8) + '" y1="' + y(max * f) + '" y2="' + y(max * f) + '" stroke="#e4e4e4"/><text x="' + (left - 4) + '" y="' + (y(max * f) + 4) + '" text-anchor="end">' + (unit === 's' ? (max * f / 1000).toFixed(1) + ' s' : Math.round(max * f)) + '</text>').join('');
	const axis = '<text x="' + (width - 8) + '" y="' + (height - 2) + '" text-anchor="end">now</text>'
		+ '<text x="' + (width - 40) + '" y="' + (height - 2) + '" text-anchor="end">−' + Math.round(span / 1000) + ' s to</text>';
	svg.setAttribute('viewBox', '0 0 ' + width + ' ' + height);
	svg.innerHTML = grid + lines + legend + axis;
}

function render(status) {
	renderRows(status.servers);
	chart(document.querySelector('#reads'), status.history, sample => sample.rates, '/s');
	chart(document.querySelector('#lag'), status.history, sample => sample.lagMs, 's');
	document.querySelector('#updated').textContent = new Date().toLocaleTimeString();
}

async function poll() {
	try {
		const response = await fetch('/status.json', {cache: 'no-store'});
		render(await response.json());
	} catch (error) {
		document.querySelector('#updated').textContent = 'unreachable: ' + error.message;
	}
}

render({servers: JSON.parse(document.querySelector('#initial').textContent), history: []});
poll();
setInterval(poll, 1000);
`;

export function statusPage(servers: readonly ServerRow[]): string {
	// `<` escaped so that no server text can close the script element.
	const initial = JSON.stringify(servers).replaceAll('<', String.raw`\u003c`);
	return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Database status</title>
<style>
body{font:15px/1.5 system-ui;max-width:44em;margin:2em auto;color:#222}
h2{font-size:15px;margin:1.5em 0 .3em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35em .5em;border-bottom:1px solid #eee;vertical-align:top}
.num{text-align:right}.address{color:#888;font-size:12px}.error{color:#b33;font-size:12px;max-width:14em}
.state{color:#fff;border-radius:3px;padding:0 .4em;font-size:13px}.swatch{display:inline-block;width:.7em;height:.7em;border-radius:50%;margin-right:.4em}
svg{width:100%;height:auto;font-size:11px;fill:#666}footer{color:#888;font-size:12px;margin-top:2em}
</style></head><body>
<h1><a href="/">Forum</a> · database status</h1>
<table id="servers"><thead><tr><th>server</th><th>role</th><th>state</th><th class="num">lag</th><th class="num">queries/s</th><th>last error</th></tr></thead><tbody></tbody></table>
<h2>Queries per second, by server (last minutes)</h2>
<svg id="reads" role="img" aria-label="Queries per second by server"></svg>
<h2>Replication lag, by replica</h2>
<svg id="lag" role="img" aria-label="Replication lag by replica"></svg>
<footer>Updated <span id="updated"></span> · Prometheus metrics at <a href="/metrics">/metrics</a></footer>
<script type="application/json" id="initial">${initial}</script>
<script>${script}</script>
</body></html>`;
}
