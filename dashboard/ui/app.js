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

const state = { session: null };

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
  const { range, bucket } = rangeParams();
  try {
    await Promise.all([
      loadTotals(range),
      loadChart(range, bucket),
      ...['team', 'key', 'model', 'tool', 'agent'].map((g) => loadTable(g, range)),
      loadTraces(),
    ]);
  } catch (e) {
    showError(e);
  }
}

async function loadTotals(range) {
  const r = await api(`/admin/spend?range=${range}`);
  $('total-cost').textContent = money(r.total.cost_usd);
  $('total-cost').dataset.nano = String(r.total.cost_nano_usd);
  $('total-requests').textContent = int(r.total.requests);
  $('total-errors').textContent = `${int(r.total.errors)} (${pct(r.total.error_rate)})`;
  $('total-tokens').textContent = `${int(r.total.input_tokens)} / ${int(r.total.output_tokens)}`;
}

function groupLabel(row, dim) {
  if (row.other) return 'other';
  if (row.group === '') return dim === 'layer' ? '(none)' : `(no ${dim})`;
  return row.group;
}

async function loadTable(dim, range) {
  const r = await api(`/admin/spend?range=${range}&group_by=${dim}&top=15`);
  const t = $('by-' + dim);
  t.replaceChildren();
  t.append(el('thead', null, el('tr', null, el('th', null, dim), el('th', { class: 'num' }, 'cost'),
    el('th', { class: 'num' }, 'requests'), el('th', { class: 'num' }, 'errors'),
    el('th', { class: 'num' }, 'tokens in'), el('th', { class: 'num' }, 'tokens out'))));
  const body = el('tbody');
  const rows = r.others ? [...r.groups, r.others] : r.groups;
  if (rows.length === 0) body.append(el('tr', null, el('td', { class: 'empty', colspan: '6' }, 'no spend in this range')));
  for (const g of rows) {
    body.append(el('tr', null,
      el('td', { class: g.group === '' || g.other ? 'none' : '' }, groupLabel(g, dim)),
      el('td', { class: 'num' }, money(g.cost_usd)), el('td', { class: 'num' }, int(g.requests)),
      el('td', { class: 'num' }, `${int(g.errors)} (${pct(g.error_rate)})`),
      el('td', { class: 'num' }, int(g.input_tokens)), el('td', { class: 'num' }, int(g.output_tokens))));
  }
  t.append(body);
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

async function start() {
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', logout);
  $('refresh').addEventListener('click', refresh);
  $('range').addEventListener('change', refresh);
  $('stack').addEventListener('change', () => { const { range, bucket } = rangeParams(); loadChart(range, bucket).catch(showError); });
  $('trace-filters').addEventListener('submit', (ev) => { ev.preventDefault(); loadTraces().catch(showError); });
  $('trace-close').addEventListener('click', () => { $('trace-view').hidden = true; });
  try {
    const s = await api('/ui/session');
    if (s.authenticated) showMain(s);
    else showLogin(s.error || '');
  } catch (e) {
    showLogin(String(e.message || e));
  }
}

document.addEventListener('DOMContentLoaded', start);
