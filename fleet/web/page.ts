// The operations page: one HTML document with its script inline (no build step, no framework). It loads
// /api/fleet once through the SSE snapshot, then applies `devices` and `alert` events as they come, so
// it never reloads. At the top, the at-risk list ordered by time to the window (what to act on);
// then recent alerts; then every device. Clicking a device shows its history as a small timeline.
const script = `
const state = { devices: new Map(), atRisk: [], alerts: [], offsetMs: 0, horizonMs: 12 * 3600000, selected: null, timeZone: 'Europe/Stockholm' };
const $ = (id) => document.getElementById(id);
const fmt = (iso) => {
  if (!iso) return '-';
  return new Intl.DateTimeFormat('sv-SE', { timeZone: state.timeZone, dateStyle: 'short', timeStyle: 'short' }).format(new Date(iso));
};
const now = () => Date.now() + state.offsetMs;
const left = (row) => {
  if (!row.risk.windowAt) return 'unknown';
  const ms = Math.max(0, Date.parse(row.risk.windowAt) - now());
  if (ms === 0) return 'open now';
  const minutes = Math.ceil(ms / 60000);
  return minutes < 60 ? minutes + ' min' : Math.floor(minutes / 60) + ' h ' + String(minutes % 60).padStart(2, '0') + ' min';
};
const text = (value) => document.createTextNode(value == null ? '-' : String(value));
function cells(tr, values) {
  for (const value of values) { const td = document.createElement('td'); td.append(text(value)); tr.append(td); }
  return tr;
}
function deviceLink(id) {
  const a = document.createElement('a'); a.href = '#' + id; a.textContent = id;
  a.addEventListener('click', (e) => { e.preventDefault(); showHistory(id); });
  return a;
}
function riskList() {
  const rows = [...state.devices.values()].filter((row) => row.risk.atRisk);
  const t = (row) => row.risk.windowAt ? Math.max(0, Date.parse(row.risk.windowAt) - now()) : Infinity;
  return rows.sort((a, b) => t(a) - t(b) || (a.device < b.device ? -1 : 1));
}
let renderQueued = false;
function render() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => { renderQueued = false; draw(); }, 100);
}
function draw() {
  const risk = riskList();
  const riskBody = $('at-risk-body'); riskBody.replaceChildren();
  for (const row of risk) {
    const tr = document.createElement('tr'); tr.dataset.device = row.device;
    const td = document.createElement('td'); td.append(deviceLink(row.device)); tr.append(td);
    cells(tr, [row.risk.reasons.join(', '), fmt(row.risk.windowAt) + (row.risk.windowEstimated ? ' (estimated)' : ''), left(row)]);
    riskBody.append(tr);
  }
  $('at-risk-count').textContent = String(risk.length);
  $('no-risk').hidden = risk.length > 0;
  const body = $('devices-body'); body.replaceChildren();
  const all = [...state.devices.values()].sort((a, b) => (a.device < b.device ? -1 : 1));
  let online = 0;
  for (const row of all) {
    if (row.state === 'online') online += 1;
    const tr = document.createElement('tr'); tr.dataset.device = row.device;
    if (row.risk.atRisk) tr.className = 'risk';
    const td = document.createElement('td'); td.append(deviceLink(row.device)); tr.append(td);
    cells(tr, [row.state, fmt(row.since), row.faults.join(', ') || '-', row.privacyOn === undefined ? '-' : row.privacyOn ? 'ON' : 'off', fmt(row.lastLookAt), fmt(row.nextWindowAt), row.firmware]);
    body.append(tr);
  }
  $('summary').textContent = all.length + ' devices, ' + online + ' online, ' + risk.length + ' at risk';
  const alerts = $('alerts'); alerts.replaceChildren();
  for (const alert of state.alerts.slice(0, 20)) {
    const li = document.createElement('li'); li.dataset.device = alert.deviceId;
    li.append(text(fmt(new Date(alert.raisedAtMs).toISOString()) + ' ' + alert.text));
    alerts.append(li);
  }
}
async function showHistory(id) {
  state.selected = id;
  const response = await fetch('/api/devices/' + encodeURIComponent(id) + '/history');
  const data = await response.json();
  $('history-title').textContent = 'History of ' + id + ' (last 7 days)';
  const svg = $('timeline'); svg.replaceChildren();
  const ns = 'http://www.w3.org/2000/svg';
  const width = 700, start = data.sinceMs, span = data.nowMs - data.sinceMs;
  const x = (ms) => Math.max(0, Math.min(width, ((ms - start) / span) * width));
  let online = null;
  const segments = [];
  for (const entry of data.entries) {
    if (entry.kind === 'online') online = online ?? entry.atMs;
    if (entry.kind === 'offline') { segments.push([online ?? start, entry.atMs, 'online']); online = null; segments.push([entry.atMs, null, 'offline']); }
    if (entry.kind === 'online' && segments.length && segments[segments.length - 1][1] === null) segments[segments.length - 1][1] = entry.atMs;
  }
  if (online !== null) segments.push([online, data.nowMs, 'online']);
  // Grey: nothing known; one tick a day (local midnight is close enough for a 7-day strip).
  const background = document.createElementNS(ns, 'rect');
  background.setAttribute('x', 0); background.setAttribute('y', 4); background.setAttribute('width', width); background.setAttribute('height', 14);
  background.setAttribute('class', 'unknown'); svg.append(background);
  for (let day = 1; day < 7; day += 1) {
    const tick = document.createElementNS(ns, 'line');
    tick.setAttribute('x1', (day / 7) * width); tick.setAttribute('x2', (day / 7) * width); tick.setAttribute('y1', 0); tick.setAttribute('y2', 22);
    tick.setAttribute('class', 'tick'); svg.append(tick);
  }
  for (const seg of segments) {
    const rect = document.createElementNS(ns, 'rect');
    rect.setAttribute('x', x(seg[0])); rect.setAttribute('y', 4); rect.setAttribute('height', 14);
    rect.setAttribute('width', Math.max(1, x(seg[1] ?? data.nowMs) - x(seg[0])));
    rect.setAttribute('class', seg[2]); svg.append(rect);
  }
  for (const entry of data.entries) {
    if (entry.kind === 'online' || entry.kind === 'offline') continue;
    const mark = document.createElementNS(ns, 'circle');
    mark.setAttribute('cx', x(entry.atMs)); mark.setAttribute('cy', entry.kind === 'look' ? 30 : 26); mark.setAttribute('r', 3);
    mark.setAttribute('class', entry.kind);
    const title = document.createElementNS(ns, 'title'); title.textContent = entry.kind + (entry.detail ? ' ' + entry.detail : '') + ' ' + fmt(new Date(entry.atMs).toISOString());
    mark.append(title); svg.append(mark);
  }
  const list = $('history-list'); list.replaceChildren();
  for (const entry of data.entries.slice(-50).reverse()) {
    const li = document.createElement('li'); li.dataset.kind = entry.kind;
    li.append(text(fmt(new Date(entry.atMs).toISOString()) + '  ' + entry.kind + (entry.detail ? ' ' + entry.detail : '')));
    list.append(li);
  }
  const nights = $('looks'); nights.replaceChildren();
  for (const night of data.looksPerNight) { const li = document.createElement('li'); li.append(text(night.night + ': ' + night.looks + ' looks')); nights.append(li); }
  $('history').hidden = false;
}
const source = new EventSource('/events');
source.addEventListener('snapshot', (event) => {
  const data = JSON.parse(event.data);
  state.offsetMs = data.nowMs - Date.now();
  state.horizonMs = data.horizonMs;
  state.devices = new Map(data.devices.map((row) => [row.device, row]));
  state.alerts = data.alerts;
  $('live').textContent = 'live (instance ' + data.instance + ')';
  draw();
});
source.addEventListener('devices', (event) => {
  const data = JSON.parse(event.data);
  state.offsetMs = data.nowMs - Date.now();
  for (const row of data.rows) state.devices.set(row.device, row);
  render();
  if (state.selected && data.rows.some((row) => row.device === state.selected)) void showHistory(state.selected);
});
source.addEventListener('alert', (event) => {
  const alert = JSON.parse(event.data);
  state.alerts.unshift(alert);
  const banner = $('banner'); banner.textContent = alert.text; banner.hidden = false;
  render();
});
source.onerror = () => { $('live').textContent = 'reconnecting…'; };
setInterval(draw, 30000);
`;

const style = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #111; }
h1 { font-size: 1.3rem; margin: 0 0 .3rem; } h2 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .25rem .6rem; border-bottom: 1px solid #ddd; }
th { background: #f3f3f3; } tr.risk td { background: #fff1f0; } #at-risk td { background: #fff1f0; }
#banner { background: #b00020; color: #fff; padding: .6rem 1rem; font-weight: 600; }
#live { color: #2a7; font-size: .9rem; } .muted { color: #666; }
svg rect.online { fill: #4caf50; } svg rect.offline { fill: #e53935; } svg rect.unknown { fill: #e6e6e6; }
svg line.tick { stroke: #999; stroke-width: 1; }
svg circle { fill: #555; } svg circle.look { fill: #1e88e5; } svg circle.fault-on, svg circle.privacy-on { fill: #e53935; }
`;

export function fleetPage(): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Trygghetskamera fleet</title><style>${style}</style></head>
<body>
<h1>Trygghetskamera fleet</h1>
<div><span id="summary" class="muted">loading…</span> · <span id="live">connecting…</span></div>
<div id="banner" role="alert" hidden></div>
<h2>At risk (<span id="at-risk-count">0</span>) — send a person if it is not fixed in time</h2>
<p id="no-risk" class="muted">No check-in is at risk.</p>
<table id="at-risk"><thead><tr><th>Device</th><th>Why</th><th>Next window</th><th>Time left</th></tr></thead><tbody id="at-risk-body"></tbody></table>
<h2>Alerts</h2>
<ul id="alerts"></ul>
<section id="history" hidden>
<h2 id="history-title">History</h2>
<svg id="timeline" width="700" height="36" role="img" aria-label="last 7 days: online (green), offline (red), unknown (grey), looks (blue), faults (red dots)"></svg>
<h3>Looks per night</h3><ul id="looks"></ul>
<h3>Changes</h3><ul id="history-list"></ul>
</section>
<h2>All devices</h2>
<table id="devices"><thead><tr><th>Device</th><th>State</th><th>Since</th><th>Faults</th><th>Privacy</th><th>Last look</th><th>Next window</th><th>Firmware</th></tr></thead><tbody id="devices-body"></tbody></table>
<script>${script}</script>
</body>
</html>
`;
}
