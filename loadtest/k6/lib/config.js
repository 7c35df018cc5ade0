// Shared settings for every Switchboard k6 script, all from __ENV so the same scripts run against any
// deployment (or, for the benchmark, straight at the mock upstreams and the bare proxy floors). Every value is
// checked once, when the script loads: a typo stops the run at start with the variable's name instead of
// failing each iteration or quietly meaning something else.
//
//   BASE_URL   gateway root (default http://127.0.0.1:8080)
//   API_KEY    sent as "Authorization: Bearer <key>" (empty = no header, e.g. direct to a mock)
//   MODEL      model name for chat and embeddings (default gpt-4o-mini; embeddings: EMBED_MODEL)
//   TOOL       MCP tool as the endpoint names it (default weather__get_forecast); TOOL_ARGS a JSON object
//   AGENT      A2A agent name (default researcher)
//   LLM_URL, MCP_URL, A2A_URL   full per-layer endpoints when they are not BASE_URL/v1, BASE_URL/mcp and
//              BASE_URL/a2a/<AGENT> (the benchmark uses them to reach the upstreams directly)
//   TIMEOUT    how long one request may take before it counts as failed (default 10s)
//   SCENARIO   constant | ramp | soak (default constant)
//   RATE       requests (iterations) per second: the constant and soak rate, the ramp's start (default 50)
//   MAX_RATE   ramp: the rate it climbs to (default 10 x RATE)
//   DURATION   default 30s (constant), 60s (ramp), 30m (soak)
//   VUS, MAX_VUS   pre-allocated and maximum VUs (defaults follow RATE)
//   P99_MS     p99 threshold in ms on every layer (default 2000)
//   ERROR_RATE the share of failed calls allowed (default 0.01; lib/calls.js says when a call fails)
//   SUMMARY    where handleSummary writes its JSON (default summary-<script>.json; "" = stdout only)
//   DIRECT_SUMMARY   a JSON summary of the same script run directly against the upstream: the text summary
//              then prints the latency this deployment adds
//   LABEL      free text copied into the JSON summary (the benchmark puts target and latency there)

// envNumber reads a numeric setting: unset or empty gives fallback; anything else must be a number that ok
// accepts ("1%", "2s" or "abc" would otherwise turn into 1, 2 or NaN), described by what in the error.
export function envNumber(name, fallback, what, ok) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const v = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(v) || !ok(v)) {
    throw new Error(`${name} must be ${what}, got ${JSON.stringify(raw)}`);
  }
  return v;
}

// seconds parses a k6 duration such as "90s", "2m", "1h30m", "1m30s" or "500ms"; null if it is none.
export function seconds(d) {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let m;
  let matched = '';
  while ((m = re.exec(d)) !== null) {
    const v = parseFloat(m[1]);
    total += { ms: v / 1000, s: v, m: v * 60, h: v * 3600 }[m[2]];
    matched += m[0];
  }
  return matched === d && d !== '' ? total : null;
}

// envDuration reads a duration setting (unset or empty: fallback) and checks that it is one and not zero.
export function envDuration(name, fallback) {
  const d = __ENV[name] || fallback;
  const s = seconds(d);
  if (s === null || s <= 0) {
    throw new Error(`${name} must be a duration above zero such as 30s, 2m, 1h30m or 500ms, got ${JSON.stringify(d)}`);
  }
  return d;
}

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const API_KEY = __ENV.API_KEY || '';
export const MODEL = __ENV.MODEL || 'gpt-4o-mini';
export const EMBED_MODEL = __ENV.EMBED_MODEL || 'text-embedding-3-small';
export const TOOL = __ENV.TOOL || 'weather__get_forecast';
export const AGENT = __ENV.AGENT || 'researcher';
export const LLM_URL = (__ENV.LLM_URL || `${BASE_URL}/v1`).replace(/\/+$/, '');
export const MCP_URL = __ENV.MCP_URL || `${BASE_URL}/mcp`;
export const A2A_URL = __ENV.A2A_URL || `${BASE_URL}/a2a/${AGENT}`;
// Without a timeout of its own a request waits k6's 60 s, longer than a default run: a target that never answers
// would then leave no sample at all.
export const TIMEOUT = envDuration('TIMEOUT', '10s');

// The mock tools take {city} (get_forecast) and {a, b} (add); anything else needs TOOL_ARGS.
function parseToolArgs() {
  if (!__ENV.TOOL_ARGS) {
    return TOOL.endsWith('add') ? { a: 2, b: 3 } : { city: 'Paris' };
  }
  let args;
  try {
    args = JSON.parse(__ENV.TOOL_ARGS);
  } catch (e) {
    throw new Error(`TOOL_ARGS must be a JSON object such as {"city":"Paris"} (quote it for the shell): ${e.message}`);
  }
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    throw new Error(`TOOL_ARGS must be a JSON object, got ${__ENV.TOOL_ARGS}`);
  }
  return args;
}
export const TOOL_ARGS = parseToolArgs();

// authHeaders returns the headers every call carries, plus extra.
export function authHeaders(extra) {
  const h = { 'Content-Type': 'application/json' };
  if (API_KEY) {
    h.Authorization = `Bearer ${API_KEY}`;
  }
  return Object.assign(h, extra || {});
}

function hex(n) {
  let s = '';
  for (let i = 0; i < n; i++) {
    s += '0123456789abcdef'[Math.floor(Math.random() * 16)];
  }
  return s;
}

// newTraceparent starts a W3C trace the way an agent framework would: the client is the root span.
export function newTraceparent() {
  return `00-${hex(32)}-${hex(16)}-01`;
}

export function uniqueID(prefix) {
  return `${prefix}-${__VU}-${__ITER}-${hex(8)}`;
}
