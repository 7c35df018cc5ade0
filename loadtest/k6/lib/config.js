// Shared settings for every Switchboard k6 script, all from __ENV so the same scripts run against any
// deployment (or, for the benchmark, straight at the mock upstreams and the bare proxy floors).
//
//   BASE_URL   gateway root (default http://127.0.0.1:8080)
//   API_KEY    sent as "Authorization: Bearer <key>" (empty = no header, e.g. direct to a mock)
//   MODEL      model name for chat and embeddings (default gpt-4o-mini; embeddings: EMBED_MODEL)
//   TOOL       MCP tool as the endpoint names it (default weather__get_forecast); TOOL_ARGS a JSON object
//   AGENT      A2A agent name (default researcher)
//   LLM_URL, MCP_URL, A2A_URL   full per-layer endpoints when they are not BASE_URL/v1, BASE_URL/mcp and
//              BASE_URL/a2a/<AGENT> (the benchmark uses them to reach the upstreams directly)
//   SCENARIO   constant | ramp | soak (default constant)
//   RATE       requests (iterations) per second: the constant and soak rate, the ramp's start (default 50)
//   MAX_RATE   ramp: the rate it climbs to (default 10 x RATE)
//   DURATION   default 30s (constant), 60s (ramp), 30m (soak)
//   VUS, MAX_VUS   pre-allocated and maximum VUs (defaults follow RATE)
//   P99_MS     p99 threshold in ms on every layer (default 2000); ERROR_RATE allowed failures (default 0.01)
//   SUMMARY    where handleSummary writes its JSON (default summary-<script>.json; "" = stdout only)
//   DIRECT_SUMMARY   a JSON summary of the same script run directly against the upstream: the text summary
//              then prints the latency this deployment adds
//   LABEL      free text copied into the JSON summary (the benchmark puts target and latency there)

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const API_KEY = __ENV.API_KEY || '';
export const MODEL = __ENV.MODEL || 'gpt-4o-mini';
export const EMBED_MODEL = __ENV.EMBED_MODEL || 'text-embedding-3-small';
export const TOOL = __ENV.TOOL || 'weather__get_forecast';
export const AGENT = __ENV.AGENT || 'researcher';
export const LLM_URL = (__ENV.LLM_URL || `${BASE_URL}/v1`).replace(/\/+$/, '');
export const MCP_URL = __ENV.MCP_URL || `${BASE_URL}/mcp`;
export const A2A_URL = __ENV.A2A_URL || `${BASE_URL}/a2a/${AGENT}`;

// The mock tools take {city} (get_forecast) and {a, b} (add); anything else needs TOOL_ARGS.
export function toolArgs() {
  if (__ENV.TOOL_ARGS) {
    return JSON.parse(__ENV.TOOL_ARGS);
  }
  return TOOL.endsWith('add') ? { a: 2, b: 3 } : { city: 'Paris' };
}

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
