// Tandem's live monitoring page: polls the operator JSON endpoints every
// couple of seconds and draws them. No framework, no build step: this file
// is embedded in the binary as is.
//
// The operator token (monitoring.token) comes from `?token=` (then removed
// from the address bar) or the login form, stays in this tab's
// sessionStorage, and is sent as `Authorization: Bearer`, never in a URL.
'use strict';

const POLL_MS = 2000;
const FETCH_TIMEOUT_MS = 5000;
const HISTORY = 150;
const TOKEN_KEY = 'tandem.monitoring.token';
const SVG = 'http://www.w3.org/2000/svg';

let token = '';
let timer = null;
const healthHistory = [];

function takeTokenFromUrl() {
  const params = new URLSearchParams(location.search);
  if (params.has('token')) {
    sessionStorage.setItem(TOKEN_KEY, params.get('token') ?? '');
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : '') + location.hash);
  }
  token = sessionStorage.getItem(TOKEN_KEY) ?? '';
}

class Unauthorized extends Error {}

async function getJson(path, needsToken) {
  const headers = { accept: 'application/json' };
  if (needsToken && token) headers.authorization = `Bearer ${token}`;
  const ctrl = new AbortController();
  const t = setTimeout(() => ctrl.abort(), FETCH_TIMEOUT_MS);
  try {
    const res = await fetch(path, { headers, signal: ctrl.signal, cache: 'no-store', credentials: 'omit' });
    if (res.status === 401) throw new Unauthorized();
    // /health/detailed answers 503 with a full body when unhealthy.
    if (!res.ok && res.status !== 503) throw new Error(`${path}: HTTP ${res.status}`);
    return await res.json();
  } finally {
    clearTimeout(t);
  }
}

function set(field, text, raw) {
  for (const el of document.querySelectorAll(`[data-field="${field}"]`)) {
    el.textContent = text;
    if (raw !== undefined) el.dataset.value = String(raw);
  }
}

function count(field, v) {
  set(field, Number.isFinite(v) ? String(v) : '–', v);
}

function ms(v) {
  if (!Number.isFinite(v)) return '–';
  if (v < 10) return v.toFixed(2);
  if (v < 100) return v.toFixed(1);
  return v.toFixed(0);
}

function pct(v) {
  return Number.isFinite(v) ? `${v.toFixed(1)}%` : '–';
}

function duration(seconds) {
  if (!Number.isFinite(seconds)) return '–';
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function drawConnections(c) {
  const by = c.connections_by_transport ?? {};
  const dist = c.connection_distribution ?? {};
  count('websocket_connections', by.websocket);
  count('sse_connections', by.sse);
  count('dual_connection_players', dist.dual_connection_players);
  count('total_players', dist.total_players);
  count('websocket_only_players', dist.websocket_only_players);
  count('sse_only_players', dist.sse_only_players);
  count('sessions', c.sessions);
}

function drawHealth(h) {
  const overall = h.overall_health ?? {};
  const trends = h.health_trends ?? {};
  const now = overall.health_percentage;
  set('health_percentage', pct(now), now);
  set('last_hour_health_percentage', pct(trends.last_hour_health_percentage), trends.last_hour_health_percentage);
  set('last_24_hours_health_percentage', pct(trends.last_24_hours_health_percentage), trends.last_24_hours_health_percentage);
  count('healthy_connections', overall.healthy_connections);
  count('total_connections', overall.total_connections);
  const trend = document.querySelector('[data-field="health_trend"]');
  const delta = now - trends.last_hour_health_percentage;
  if (trend && Number.isFinite(delta)) {
    trend.classList.remove('up', 'down');
    if (Math.abs(delta) < 0.05) {
      trend.textContent = '→ steady vs last hour';
    } else if (delta > 0) {
      trend.textContent = `▲ ${delta.toFixed(1)} pts vs last hour`;
      trend.classList.add('up');
    } else {
      trend.textContent = `▼ ${Math.abs(delta).toFixed(1)} pts vs last hour`;
      trend.classList.add('down');
    }
  }
  if (Number.isFinite(now)) {
    healthHistory.push(now);
    if (healthHistory.length > HISTORY) healthHistory.shift();
  }
  drawLine(document.getElementById('health-chart'), healthHistory, 0, 100);
}

function drawLine(svg, values, min, max) {
  if (!svg) return;
  svg.replaceChildren();
  const w = 300;
  const h = 60;
  svg.append(svgEl('line', { class: 'axis', x1: 0, y1: h - 0.5, x2: w, y2: h - 0.5 }));
  if (values.length < 2) return;
  // The history fills the width as it grows, up to HISTORY polls.
  const x = (i) => (i * w) / (values.length - 1);
  const y = (v) => h - 2 - ((Math.min(Math.max(v, min), max) - min) / (max - min)) * (h - 4);
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  svg.append(svgEl('polygon', { class: 'area', points: `0,${h} ${points.join(' ')} ${w},${h}` }));
  svg.append(svgEl('polyline', { class: 'line', points: points.join(' ') }));
}

function drawPerformance(p) {
  const d = p.message_delivery ?? {};
  const e = p.connection_establishment ?? {};
  for (const q of ['p50', 'p95', 'p99']) {
    set(`${q}_delivery_time_ms`, ms(d[`${q}_delivery_time_ms`]), d[`${q}_delivery_time_ms`]);
    for (const t of ['websocket', 'sse']) {
      const key = `${q}_${t}_establishment_ms`;
      set(key, ms(e[key]), e[key]);
    }
  }
  set('delivery_success_rate', pct(d.delivery_success_rate), d.delivery_success_rate);
  count('successful_deliveries', d.successful_deliveries);
  count('failed_deliveries', d.failed_deliveries);
}

function drawErrors(e) {
  count('total_errors_last_hour', e.total_errors_last_hour);
  set('error_rate_per_minute', Number.isFinite(e.error_rate_per_minute) ? e.error_rate_per_minute.toFixed(2) : '–', e.error_rate_per_minute);
  const svg = document.getElementById('errors-chart');
  const minutes = Array.isArray(e.per_minute) ? e.per_minute : [];
  if (svg) {
    svg.replaceChildren();
    const w = 600;
    const h = 80;
    const max = Math.max(1, ...minutes.map((m) => m.count ?? 0));
    const slot = w / Math.max(minutes.length, 1);
    minutes.forEach((m, i) => {
      const n = m.count ?? 0;
      const bh = n ? Math.max(2, (n / max) * (h - 4)) : 1;
      const bar = svgEl('rect', { class: n ? 'bar' : 'bar zero', x: (i * slot + 1).toFixed(1), y: (h - bh).toFixed(1), width: Math.max(slot - 2, 1).toFixed(1), height: bh.toFixed(1) });
      const title = svgEl('title', {});
      title.textContent = `${new Date(m.minute * 1000).toLocaleTimeString()}: ${n}`;
      bar.append(title);
      svg.append(bar);
    });
    svg.dataset.bars = String(minutes.length);
    svg.dataset.total = String(minutes.reduce((s, m) => s + (m.count ?? 0), 0));
  }
  const body = document.getElementById('recent-errors');
  if (body) {
    body.replaceChildren();
    const recent = Array.isArray(e.recent_errors) ? e.recent_errors.slice(0, 10) : [];
    if (!recent.length) {
      const tr = document.createElement('tr');
      const td = document.createElement('td');
      td.colSpan = 4;
      td.className = 'empty';
      td.textContent = 'No errors in the last hour.';
      tr.append(td);
      body.append(tr);
    }
    for (const err of recent) {
      const tr = document.createElement('tr');
      tr.className = 'error-row';
      const cells = [
        new Date(err.timestamp * 1000).toLocaleTimeString(),
        err.type,
        err.severity,
        err.message,
      ];
      cells.forEach((text, i) => {
        const td = document.createElement('td');
        td.textContent = text ?? '';
        if (i === 2) td.className = `sev-${err.severity}`;
        tr.append(td);
      });
      body.append(tr);
    }
  }
}

function drawComponents(h) {
  const status = h.status ?? 'unknown';
  const pill = document.getElementById('status');
  if (pill) {
    pill.className = `pill ${status}`;
    pill.textContent = status;
  }
  set('version', h.version ?? '–');
  set('uptime', duration(h.uptime), h.uptime);
  const list = document.getElementById('components');
  if (!list) return;
  list.replaceChildren();
  for (const [name, c] of Object.entries(h.components ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    const li = document.createElement('li');
    li.dataset.component = name;
    const label = document.createElement('span');
    label.textContent = name;
    const st = document.createElement('span');
    st.className = `dot status-${c.status}`;
    st.textContent = c.status;
    li.append(label, st);
    list.append(li);
  }
}

function showLogin(refused) {
  document.getElementById('board').hidden = true;
  document.getElementById('login').hidden = false;
  document.getElementById('login-error').hidden = !refused;
  document.getElementById('token').focus();
}

async function refresh() {
  timer = null;
  try {
    const [connections, health, performance, errors, detailed] = await Promise.all([
      getJson('/monitoring/connections', true),
      getJson('/monitoring/connection-health', true),
      getJson('/monitoring/performance', true),
      getJson('/monitoring/errors', true),
      getJson('/health/detailed', false),
    ]);
    document.getElementById('board').hidden = false;
    document.getElementById('login').hidden = true;
    drawConnections(connections);
    drawHealth(health);
    drawPerformance(performance);
    drawErrors(errors);
    drawComponents(detailed);
    set('updated', new Date().toLocaleTimeString());
    document.body.dataset.updates = String(Number(document.body.dataset.updates ?? 0) + 1);
    document.getElementById('fetch-error').textContent = '';
  } catch (err) {
    if (err instanceof Unauthorized) {
      showLogin(token !== '');
      return;
    }
    document.getElementById('fetch-error').textContent = `Last update failed: ${err.message}`;
  }
  timer = setTimeout(refresh, POLL_MS);
}

document.addEventListener('DOMContentLoaded', () => {
  takeTokenFromUrl();
  document.getElementById('login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = document.getElementById('token').value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    if (timer) clearTimeout(timer);
    refresh();
  });
  refresh();
});
