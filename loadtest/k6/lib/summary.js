// handleSummary for every script: a short text report on stdout and a compact JSON file that the benchmark
// (loadtest/bench/run.sh) turns into its table. With DIRECT_SUMMARY pointing at the JSON of the same script
// run directly against the upstream, the text report also prints the latency this deployment adds.
import { Counter, Rate, Trend } from 'k6/metrics';
import { SCENARIO, RATE, MAX_RATE, DURATION, HOLD_SECONDS } from './scenario.js';

// calls counts requests the gateway answers with a span (handshakes such as MCP initialize are not calls);
// call_failed is, per call, whether it failed (lib/calls.js says when); call_duration is the calls'
// http_req_duration without the handshakes.
export const calls = new Counter('calls');
export const callFailed = new Rate('call_failed');
export const callDuration = new Trend('call_duration', true);

// open() resolves a relative path against this file's folder, but DIRECT_SUMMARY is written from where k6 runs
// (the SUMMARY of the direct run lands there). k6 tells that folder only through the shell's PWD in __ENV.
function fromWorkingDir(path) {
  if (path.startsWith('/') || /^[A-Za-z]:[\\/]/.test(path)) {
    return path;
  }
  if (!__ENV.PWD) {
    throw new Error(`DIRECT_SUMMARY ${JSON.stringify(path)} is relative and PWD is not set: give an absolute path`);
  }
  return `${__ENV.PWD}/${path}`;
}

const directPath = __ENV.DIRECT_SUMMARY || '';
const direct = directPath ? JSON.parse(open(fromWorkingDir(directPath))) : null;

// trend is a latency trend's percentiles in ms, or null when it has no samples (k6 reports zeros for those).
function trend(data, name) {
  const m = data.metrics[name];
  if (!m || !m.values || !m.values.count) {
    return null;
  }
  return { p50: m.values.med, p90: m.values['p(90)'], p99: m.values['p(99)'], avg: m.values.avg, max: m.values.max };
}

function count(data, name) {
  const m = data.metrics[name];
  return m && m.values ? m.values.count || 0 : 0;
}

// failedShare is call_failed's rate, or null when no call was made (its threshold keeps the metric in the
// summary, with a rate of 0, even then).
function failedShare(data) {
  const m = data.metrics.call_failed;
  return m && m.values && m.values.passes + m.values.fails > 0 ? m.values.rate : null;
}

// compact reduces k6's summary to what the benchmark table needs; latencies are in ms.
function compact(script, layers, data) {
  const seconds = data.state.testRunDurationMs / 1000;
  const out = {
    script,
    label: __ENV.LABEL || '',
    scenario: SCENARIO,
    rate: RATE,
    max_rate: SCENARIO === 'ramp' ? MAX_RATE : RATE,
    duration: DURATION,
    run_seconds: seconds,
    requests: count(data, 'http_reqs'),
    calls: count(data, 'calls'),
    rps: count(data, 'http_reqs') / seconds,
    error_rate: failedShare(data),
    dropped_iterations: count(data, 'dropped_iterations'),
    all: trend(data, 'call_duration'),
    layers: {},
  };
  for (const layer of layers) {
    out.layers[layer] = trend(data, `http_req_duration{layer:${layer}}`);
  }
  const ttfb = trend(data, 'http_req_waiting{layer:llm}');
  if (script === 'chat-stream' && ttfb) {
    out.ttfb = ttfb;
  }
  if (SCENARIO === 'ramp') {
    out.max_rps = count(data, 'hold_reqs') / HOLD_SECONDS;
  }
  return out;
}

function fmt(v) {
  return v === null || v === undefined ? '-' : v.toFixed(2);
}

function line(name, t, base) {
  if (!t) {
    return `  ${name.padEnd(14)} no samples\n`;
  }
  let s = `  ${name.padEnd(14)} p50 ${fmt(t.p50)} ms  p99 ${fmt(t.p99)} ms  max ${fmt(t.max)} ms`;
  if (base) {
    s += `   added p50 ${fmt(t.p50 - base.p50)} ms  p99 ${fmt(t.p99 - base.p99)} ms`;
  }
  return s + '\n';
}

function text(r) {
  let s = `\n${r.script} ${r.label ? `[${r.label}] ` : ''}${r.scenario} rate=${r.rate}` +
    `${r.scenario === 'ramp' ? `..${r.max_rate}` : ''}/s duration=${r.duration}\n`;
  const errors = r.error_rate === null ? '-' : `${(r.error_rate * 100).toFixed(2)}%`;
  s += `  requests ${r.requests} (${r.rps.toFixed(1)}/s), calls ${r.calls}, errors ${errors}, ` +
    `dropped iterations ${r.dropped_iterations}\n`;
  if (r.max_rps !== undefined) {
    s += `  max rps (hold phase) ${r.max_rps.toFixed(0)}\n`;
  }
  for (const [layer, t] of Object.entries(r.layers)) {
    s += line(layer, t, direct && direct.layers ? direct.layers[layer] : null);
  }
  if (r.ttfb) {
    s += line('ttfb', r.ttfb, direct ? direct.ttfb : null);
  }
  return s;
}

// summarize is what each script's handleSummary returns.
export function summarize(script, layers, data) {
  const r = compact(script, layers, data);
  const files = { stdout: text(r) };
  const path = __ENV.SUMMARY === undefined ? `summary-${script}.json` : __ENV.SUMMARY;
  if (path) {
    files[path] = JSON.stringify(r, null, 2);
  }
  return files;
}
