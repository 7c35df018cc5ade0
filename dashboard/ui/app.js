// Switchboard dashboard. Money is shown from the API's exact decimal strings
// (cost_usd); numbers are used only to size bars.
'use strict';

const $ = (id) => document.getElementById(id);
const PALETTE = ['#3659e3', '#f29e4c', '#2a9d8f', '#8d99ae', '#e76f51', '#9b5de5', '#00a6fb', '#f15bb5', '#6a994e', '#bc6c25'];
const LAYER_COLORS = { gateway: '#8d99ae', llm: '#3659e3', tool: '#f29e4c', agent: '#2a9d8f' };
const SVG = 'http://www.w3.org/2000/svg';

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (k === 'class') e.className = v;
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
      else e.setAttribute(k, v);
    }
  }
  for (const k of kids) if (k != null) e.append(k instanceof Node ? k : String(k));
  return e;
}

function svg(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const k of kids) e.append(k);
  return e;
}

// usd formats nano-USD held as a BigInt exactly, trimming trailing zeros.
function usd(nano) {
  const neg = nano < 0n;
  const a = neg ? -nano : nano;
  const whole = a / 1000000000n;
  let frac = (a % 1000000000n).toString().padStart(9, '0').replace(/0+$/, '');
  return (neg ? '-$' : '$') + whole.toString() + (frac ? '.' + frac : '');
}

const money = (s) => (s.startsWith('-') ? '-$' + s.slice(1) : '$' + s);
const int = (n) => Number(n).toLocaleString('en-US');
const pct = (r) => (r * 100).toFixed(r > 0 && r < 0.001 ? 3 : 1) + '%';

function dur(ns) {
  const ms = ns / 1e6;
  if (ms < 1) return (ns / 1e3).toFixed(0) + ' µs';
  if (ms < 1000) return ms.toFixed(ms < 10 ? 2 : 0) + ' ms';
  return (ms / 1000).toFixed(2) + ' s';
}

class HTTPError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

async function api(path) {
  const r = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new HTTPError(r.status, (body.error && body.error.message) || r.statusText);
  return body;
}

const state = { session: null, view: 'view-spend' };

function showError(err) {
  if (err instanceof HTTPError && err.status === 401) {
    showLogin('Your session ended: log in again.');
    return;
  }
  $('error').textContent = String(err.message || err);
}

function showLogin(msg) {
  state.session = null;
  $('main').hidden = true;
  $('login').hidden = false;
  for (const id of ['logout', 'refresh', 'range-box']) $(id).hidden = true;
  $('who').textContent = '';
  $('login-error').textContent = msg || '';
  $('key').focus();
}

function showMain(session) {
  state.session = session;
  $('login').hidden = true;
  $('main').hidden = false;
  for (const id of ['logout', 'refresh', 'range-box']) $(id).hidden = false;
  const who = session.key_name || session.key_id;
  $('who').textContent = session.admin ? 'admin · all teams' : `${who} · team ${session.team || '(none)'}`;
  refresh();
}

async function login(ev) {
  ev.preventDefault();
  $('login-error').textContent = '';
  try {
    const r = await fetch('/ui/login', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ key: $('key').value }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error((body.error && body.error.message) || r.statusText);
    $('key').value = '';
    showMain(body);
  } catch (e) {
    $('login-error').textContent = String(e.message || e);
  }
}

async function logout() {
  await fetch('/ui/logout', { method: 'POST', credentials: 'same-origin' });
  showLogin('');
}

function rangeParams() {
  const range = $('range').value;
  const hours = parseInt(range, 10);
  return { range, bucket: hours <= 48 ? 'hour' : 'day' };
}

async function refresh() {
  $('error').textContent = '';
  if (state.view === 'view-audit') {
    await loadAudit().catch(showError);
    return;
  }
  const { range, bucket } = rangeParams();
  // Budgets are fetched once and shared by the team and key tables, which
  // take their key names from them too.
  const budgets = api('/admin/budgets').then(indexBudgets);
  budgets.catch(() => {}); // reported through the tables that await it
  try {
    await Promise.all([
      loadTotals(range),
      loadChart(range, bucket),
      loadLatency(range),
      ...['team', 'key', 'model', 'tool', 'agent'].map((g) => loadTable(g, range, budgets)),
      loadTraces(),
    ]);
  } catch (e) {
    showError(e);
  }
}

// indexBudgets maps team names and key ids to their budget rows.
function indexBudgets(r) {
  const idx = { team: new Map(), key: new Map() };
  for (const b of r.budgets) idx[b.scope].set(b.id, b);
  return idx;
}

const hasLatency = (rows) => rows.some((g) => g && g.latency_p50_ns !== undefined);
const latency = (ns) => (ns === undefined ? '–' : dur(ns));

async function loadTotals(range) {
  const r = await api(`/admin/spend?range=${range}`);
  $('total-cost').textContent = money(r.total.cost_usd);
  $('total-cost').dataset.nano = String(r.total.cost_nano_usd);
  $('total-requests').textContent = int(r.total.requests);
  $('total-errors').textContent = `${int(r.total.errors)} (${pct(r.total.error_rate)})`;
  $('total-tokens').textContent = `${int(r.total.input_tokens)} / ${int(r.total.output_tokens)}`;
  const lat = hasLatency([r.total]);
  $('latency-card').hidden = !lat;
  if (lat) {
    $('total-latency').textContent =
      `${latency(r.total.latency_p50_ns)} / ${latency(r.total.latency_p95_ns)} / ${latency(r.total.latency_p99_ns)}`;
  }
}

function groupLabel(row, dim) {
  if (row.other) return 'other';
  if (row.group === '') return dim === 'layer' ? '(none)' : `(no ${dim})`;
  return row.group;
}

// spendColumns are the range's columns of a spend table; the latency
// columns appear once the store reports percentiles.
function spendColumns(rows) {
  const cols = [
    ['cost', (g) => money(g.cost_usd)],
    ['requests', (g) => int(g.requests)],
    ['errors', (g) => int(g.errors)],
    ['error rate', (g) => pct(g.error_rate)],
  ];
  if (hasLatency(rows)) {
    cols.push(['p50', (g) => latency(g.latency_p50_ns)], ['p95', (g) => latency(g.latency_p95_ns)],
      ['p99', (g) => latency(g.latency_p99_ns)]);
  }
  cols.push(['tokens in / out', (g) => `${int(g.input_tokens)} / ${int(g.output_tokens)}`]);
  return cols;
}

function budgetLimit(b) {
  if (!b.limit_usd) return 'no cap';
  return b.period === 'none' ? money(b.limit_usd) : `${money(b.limit_usd)} / ${PERIOD_NOUN[b.period]}`;
}

const PERIOD_NOUN = { daily: 'day', weekly: 'week', monthly: 'month' };

// budgetCells are the budget columns of a team or key row: the limit, the
// spend of the budget's current period (not the chosen range) and a bar.
function budgetCells(b) {
  if (!b) return [el('td', { class: 'none', colspan: '3' }, 'no budget')];
  const since = b.period_start ? `since ${b.period_start.slice(0, 10)}` : 'since start-up';
  const spent = el('td', { class: 'num budget-spent', title: `${since}; ${money(b.held_usd)} held in flight` },
    money(b.spent_usd));
  const used = el('td', { class: 'used' });
  if (b.used_ratio !== undefined) {
    const r = b.used_ratio;
    const bar = el('span', { class: 'meter-fill' + (r >= 1 ? ' over' : r >= 0.8 ? ' near' : '') });
    bar.style.width = Math.min(r * 100, 100).toFixed(1) + '%';
    const resets = b.period_end ? `; resets ${b.period_end.replace('T', ' ').slice(0, 16)} UTC` : '';
    used.title = `${money(b.spent_usd)} of ${money(b.limit_usd)}${resets}`;
    used.append(el('div', { class: 'used-box' }, el('span', { class: 'meter' }, bar), el('span', { class: 'used-pct' }, pct(r))));
  } else {
    used.append(el('span', { class: 'none' }, '–'));
  }
  return [el('td', { class: 'num budget-limit' }, budgetLimit(b)), spent, used];
}

async function loadTable(dim, range, budgets) {
  const [r, idx] = await Promise.all([api(`/admin/spend?range=${range}&group_by=${dim}&top=15`),
    dim === 'team' || dim === 'key' ? budgets : null]);
  const own = idx && idx[dim];
  const rows = r.others ? [...r.groups, r.others] : r.groups;
  // Teams and keys with a budget but no spend in the range still show their
  // budget, unless top folded groups into "other", which may hold them.
  const quiet = own && !r.others ? [...own.values()].filter((b) => !rows.some((g) => g.group === b.id)) : [];
  const cols = spendColumns(rows);
  const t = $('by-' + dim);
  t.replaceChildren();
  const head = el('tr', null, el('th', null, dim), ...cols.map(([h]) => el('th', { class: 'num' }, h)));
  if (own) {
    head.append(el('th', { class: 'num budget-first' }, 'budget'), el('th', { class: 'num' }, 'spent this period'),
      el('th', null, 'used'));
  }
  t.append(el('thead', null, head));
  const body = el('tbody');
  const width = 1 + cols.length + (own ? 3 : 0);
  if (rows.length + quiet.length === 0) {
    body.append(el('tr', null, el('td', { class: 'empty', colspan: String(width) }, 'no spend in this range')));
  }
  const nameCell = (g, b) => {
    const none = g.group === '' || g.other;
    if (dim === 'key' && b && b.name) return el('td', { title: g.group }, b.name);
    return el('td', { class: none ? 'none' : '' }, groupLabel(g, dim));
  };
  for (const g of rows) {
    const b = own && !g.other ? own.get(g.group) : undefined;
    const tr = el('tr', b ? { 'data-budget': b.id } : null, nameCell(g, b),
      ...cols.map(([, f]) => el('td', { class: 'num' }, f(g))));
    if (own) {
      if (g.other) tr.append(el('td', { colspan: '3' }));
      else tr.append(...budgetCells(b));
    }
    body.append(tr);
  }
  for (const b of quiet) {
    body.append(el('tr', { 'data-budget': b.id, class: 'quiet' }, nameCell({ group: b.id }, b),
      el('td', { class: 'num none', colspan: String(cols.length) }, 'no spend in this range'), ...budgetCells(b)));
  }
  t.append(body);
}

// loadLatency draws p50, p95 and p99 per group as nested bars on one scale.
async function loadLatency(range) {
  const dim = $('latency-by').value;
  const r = await api(`/admin/spend?range=${range}&group_by=${dim}&top=12`);
  const box = $('latency');
  box.replaceChildren();
  const rows = r.groups.filter((g) => g.latency_p99_ns !== undefined);
  $('latency-panel').hidden = !hasLatency(r.groups) && !hasLatency([r.total]);
  if (rows.length === 0) {
    box.append(el('p', { class: 'empty' }, 'no latency in this range'));
    return;
  }
  box.append(el('div', { class: 'head' }, dim), el('div', { class: 'head' }, 'p50 · p95 · p99'),
    el('div', { class: 'head num' }, 'p50'), el('div', { class: 'head num' }, 'p95'),
    el('div', { class: 'head num' }, 'p99'), el('div', { class: 'head num' }, 'requests'));
  const max = Math.max(...rows.map((g) => g.latency_p99_ns), 1);
  const w = (ns) => (100 * ns / max).toFixed(2) + '%';
  for (const g of rows) {
    const track = el('div', { class: 'lat-track', title: `p50 ${latency(g.latency_p50_ns)} · p95 ${latency(g.latency_p95_ns)} · p99 ${latency(g.latency_p99_ns)}` });
    for (const [cls, ns] of [['p99', g.latency_p99_ns], ['p95', g.latency_p95_ns], ['p50', g.latency_p50_ns]]) {
      const bar = el('div', { class: 'lat-bar lat-' + cls });
      bar.style.width = w(ns);
      track.append(bar);
    }
    box.append(el('div', { class: 'lat-name' }, groupLabel(g, dim)), track,
      el('div', { class: 'num' }, latency(g.latency_p50_ns)), el('div', { class: 'num' }, latency(g.latency_p95_ns)),
      el('div', { class: 'num' }, latency(g.latency_p99_ns)), el('div', { class: 'num' }, int(g.requests)));
  }
}

async function loadChart(range, bucket) {
  const dim = $('stack').value;
  const r = await api(`/admin/spend?range=${range}&bucket=${bucket}&group_by=${dim}&top=8`);
  drawChart(r, dim, bucket);
}

function drawChart(r, dim, bucket) {
  const box = $('chart');
  const legend = $('legend');
  box.replaceChildren();
  legend.replaceChildren();
  const step = bucket === 'hour' ? 3600e3 : 86400e3;
  const end = Date.parse(r.to);
  const first = Math.floor(Date.parse(r.from) / step) * step;
  const buckets = [];
  for (let t = first; t < end && buckets.length < 2500; t += step) buckets.push(t);
  const groups = r.groups.map((g) => groupLabel(g, dim));
  if (r.others) groups.push('other');
  const color = (name, i) => (dim === 'layer' && LAYER_COLORS[name]) || PALETTE[i % PALETTE.length];
  const cells = new Map(); // bucket ms -> [{group, nano, usd}]
  for (const s of r.series || []) {
    const k = Date.parse(s.bucket);
    if (!cells.has(k)) cells.set(k, []);
    cells.get(k).push({ name: groupLabel(s, dim), nano: BigInt(s.cost_nano_usd), usd: s.cost_usd });
  }
  let top = 0n;
  for (const list of cells.values()) {
    const sum = list.reduce((a, c) => a + c.nano, 0n);
    if (sum > top) top = sum;
  }
  const tick = top > 0n ? niceStep(top) : 250000000n; // an empty chart reads $0 to $1
  const max = tick * 4n;
  const W = 900, H = 260, L = 80, B = 24, T = 10;
  const plotW = W - L - 10, plotH = H - B - T;
  const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `spend per ${bucket} by ${dim}` });
  for (let i = 0; i <= 4; i++) {
    const y = T + plotH - (plotH * i) / 4;
    s.append(svg('line', { x1: L, x2: W - 10, y1: y, y2: y, class: 'grid' }));
    s.append(svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' }, usd(tick * BigInt(i))));
  }
  const bw = plotW / Math.max(buckets.length, 1);
  const scale = max > 0n ? plotH / Number(max) : 0;
  buckets.forEach((t, i) => {
    let y = T + plotH;
    const list = (cells.get(t) || []).slice().sort((a, b) => groups.indexOf(a.name) - groups.indexOf(b.name));
    for (const c of list) {
      const h = Number(c.nano) * scale;
      y -= h;
      const rect = svg('rect', { x: L + i * bw + 1, y, width: Math.max(bw - 2, 1), height: h, fill: color(c.name, groups.indexOf(c.name)) },
        svg('title', {}, `${c.name} · ${new Date(t).toISOString().slice(0, 16).replace('T', ' ')} UTC · ${money(c.usd)}`));
      s.append(rect);
    }
    const every = Math.ceil(buckets.length / 8);
    if (i % every === 0) {
      const d = new Date(t);
      const label = bucket === 'hour' ? d.toISOString().slice(11, 16) : d.toISOString().slice(5, 10);
      s.append(svg('text', { x: L + i * bw + bw / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis' }, label));
    }
  });
  box.append(s);
  if (groups.length === 0) legend.append(el('span', { class: 'empty' }, 'no spend in this range'));
  groups.forEach((g, i) => {
    const sw = el('span', { class: 'swatch' });
    sw.style.background = color(g, i);
    legend.append(el('span', null, sw, g));
  });
}

// niceStep is the smallest 1, 2 or 5 × 10^k nano-USD step of which four
// cover top, so axis ticks read $0.5, $1, $1.5 rather than cuts of the maximum.
function niceStep(top) {
  for (let p = 1n; ; p *= 10n) {
    for (const m of [1n, 2n, 5n]) if (m * p * 4n >= top) return m * p;
  }
}

function traceQuery() {
  const p = new URLSearchParams({ limit: '50' });
  const add = (k, id) => { const v = $(id).value.trim(); if (v) p.set(k, v); };
  add('layer', 'f-layer');
  add('status', 'f-status');
  add('min_cost_usd', 'f-min-cost');
  add('min_duration', 'f-min-duration');
  return p.toString();
}

async function loadTraces() {
  const r = await api('/admin/traces?' + traceQuery());
  const t = $('traces');
  t.replaceChildren();
  t.append(el('thead', null, el('tr', null, el('th', null, 'started (UTC)'), el('th', null, 'trace'),
    el('th', null, 'team'), el('th', null, 'key'), el('th', { class: 'num' }, 'spans'),
    el('th', { class: 'num' }, 'duration'), el('th', { class: 'num' }, 'cost'), el('th', null, 'status'))));
  const body = el('tbody');
  if (r.traces.length === 0) body.append(el('tr', null, el('td', { class: 'empty', colspan: '8' }, 'no traces match')));
  for (const tr of r.traces) {
    const row = el('tr', { 'data-trace': tr.trace_id, on: { click: () => openTrace(tr.trace_id) } },
      el('td', null, tr.start.replace('T', ' ').slice(0, 19)),
      el('td', null, tr.name, el('span', { class: 'tag' }, tr.layer)),
      el('td', null, tr.team || '–'), el('td', null, tr.key_name || tr.key_id || '–'),
      el('td', { class: 'num' }, int(tr.spans)), el('td', { class: 'num' }, dur(tr.duration_ns)),
      el('td', { class: 'num' }, money(tr.cost_usd)),
      el('td', { class: 'status-' + tr.status }, tr.status));
    body.append(row);
  }
  t.append(body);
}

async function openTrace(id) {
  try {
    const r = await api('/admin/traces/' + encodeURIComponent(id));
    drawTrace(r);
  } catch (e) {
    showError(e);
  }
}

function drawTrace(r) {
  $('trace-view').hidden = false;
  $('trace-title').textContent = 'Trace ' + r.trace_id;
  $('trace-total').textContent = `${r.spans} spans · ${dur(r.duration_ns)} · total ${money(r.cost_usd)} · ` +
    `${int(r.input_tokens)} tokens in / ${int(r.output_tokens)} out` + (r.errors ? ` · ${r.errors} failed` : '');
  $('trace-total').dataset.nano = String(r.cost_nano_usd);
  const w = $('waterfall');
  w.replaceChildren(el('div', { class: 'head' }, 'span'), el('div', { class: 'head' }, 'timeline'),
    el('div', { class: 'head num' }, 'duration'), el('div', { class: 'head num' }, 'cost'),
    el('div', { class: 'head num' }, 'tokens in / out'));
  const total = Math.max(r.duration_ns, 1);
  const visit = (n, depth) => {
    const sp = n.span;
    const name = el('div', { class: 'name span-row', title: sp.error || sp.name }, '\u00a0'.repeat(depth * 3) + sp.name);
    name.append(el('span', { class: 'tag' }, [sp.layer, sp.team, sp.key_name].filter(Boolean).join(' · ')));
    const bar = el('div', { class: `bar layer-${sp.layer}${sp.status === 'error' ? ' failed' : ''}`, title: dur(sp.duration_ns) });
    bar.style.left = (100 * n.offset_ns / total).toFixed(3) + '%';
    bar.style.width = (100 * sp.duration_ns / total).toFixed(3) + '%';
    w.append(name, el('div', { class: 'track' }, bar), el('div', { class: 'num' }, dur(sp.duration_ns)),
      el('div', { class: 'num span-cost' }, money(n.cost_usd)),
      el('div', { class: 'num' }, `${int(sp.input_tokens || 0)} / ${int(sp.output_tokens || 0)}`));
    for (const c of n.children || []) visit(c, depth + 1);
  };
  for (const root of r.roots) visit(root, 0);
  $('trace-view').scrollIntoView({ block: 'start' });
}

// showView switches tabs; each tab loads its data when shown.
function showView(id) {
  state.view = id;
  for (const b of document.querySelectorAll('#tabs button')) {
    const on = b.dataset.view === id;
    b.setAttribute('aria-selected', String(on));
    $(b.dataset.view).hidden = !on;
  }
  refresh();
}

function auditQuery() {
  const p = new URLSearchParams({ range: $('range').value, limit: '200' });
  const add = (k, id) => { const v = $(id).value.trim(); if (v) p.set(k, v); };
  add('action', 'a-action');
  add('actor', 'a-actor');
  add('team', 'a-team');
  return p.toString();
}

async function loadAudit() {
  const r = await api('/admin/audit?' + auditQuery());
  const t = $('audit');
  t.replaceChildren();
  const cols = ['time (UTC)', 'action', 'status', 'actor', 'team', 'target', 'rule', 'from', 'request id', 'detail'];
  t.append(el('thead', null, el('tr', null, ...cols.map((c) => el('th', null, c)))));
  const body = el('tbody');
  if (r.events.length === 0) {
    body.append(el('tr', null, el('td', { class: 'empty', colspan: String(cols.length) }, 'no audit events match')));
  }
  const cell = (v, cls) => el('td', v ? (cls ? { class: cls } : null) : { class: 'none' }, v || '–');
  for (const e of r.events) {
    const actor = e.actor ? (e.actor_name && e.actor_name !== e.actor ? `${e.actor_name} (${e.actor})` : e.actor) : '';
    body.append(el('tr', { 'data-action': e.action },
      el('td', null, e.time.replace('T', ' ').slice(0, 19)), el('td', null, e.action),
      el('td', { class: 'status-' + e.status }, e.status), cell(actor || (e.status === 'denied' ? 'unauthenticated' : '')),
      cell(e.team), cell(e.target), cell(e.rule), cell(e.remote_addr), cell(e.request_id), cell(e.detail, 'detail')));
  }
  t.append(body);
}

async function start() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('refresh').addEventListener('click', refresh);
  $('range').addEventListener('change', refresh);
  $('stack').addEventListener('change', () => { const { range, bucket } = rangeParams(); loadChart(range, bucket).catch(showError); });
  $('latency-by').addEventListener('change', () => loadLatency(rangeParams().range).catch(showError));
  $('trace-filters').addEventListener('submit', (ev) => { ev.preventDefault(); loadTraces().catch(showError); });
  $('trace-close').addEventListener('click', () => { $('trace-view').hidden = true; });
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => showView(b.dataset.view));
  $('audit-filters').addEventListener('submit', (ev) => { ev.preventDefault(); loadAudit().catch(showError); });
  try {
    const s = await api('/ui/session');
    if (s.authenticated) showMain(s);
    else showLogin(s.error || '');
  } catch (e) {
    showLogin(String(e.message || e));
  }
}

document.addEventListener('DOMContentLoaded', start);
