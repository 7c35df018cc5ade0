// One function per kind of call the gateway proxies. Each tags its request with the layer (llm, tool,
// agent), checks the reply in the protocol's own terms, and records it with record(): a call fails on a wrong
// HTTP status and also on an error inside a 200 (a JSON-RPC error, an MCP tool result with isError, an A2A task
// that failed), which only the body tells.
import http from 'k6/http';
import {
  authHeaders, LLM_URL, MCP_URL, A2A_URL, MODEL, EMBED_MODEL, TOOL, TOOL_ARGS, TIMEOUT, uniqueID,
} from './config.js';
import { countHold } from './scenario.js';
import { calls, callFailed, callDuration } from './summary.js';

// post sends one request with the run's TIMEOUT rather than k6's 60 s default (see lib/config.js).
function post(url, body, headers, tags) {
  return http.post(url, body, { headers, tags, timeout: TIMEOUT });
}

// The first few failures of each VU are logged with their reason, so a run that fails says why without
// flooding the output.
let logged = 0;

function logFailure(res, reason) {
  if (logged < 3) {
    logged++;
    console.warn(`${res.request.method} ${res.url}: ${reason}`);
  }
}

function short(s, n) {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

// httpFailure is the reason a reply's status is not one of ok (a timeout or a refused connection is status 0),
// or null.
function httpFailure(res, ...ok) {
  if (ok.includes(res.status)) {
    return null;
  }
  const body = typeof res.body === 'string' ? short(res.body, 300) : '';
  return `status ${res.status}${res.error ? ` (${res.error})` : ''} ${body}`.trim();
}

// record counts one call the gateway answers with a span; reason says why it failed, null if it did not.
function record(res, layer, reason) {
  calls.add(1);
  countHold();
  callDuration.add(res.timings.duration, { layer });
  callFailed.add(reason !== null, { layer });
  if (reason !== null) {
    logFailure(res, reason);
  }
}

function parseJSON(s) {
  try {
    return JSON.parse(s);
  } catch (e) {
    return null;
  }
}

function withTrace(headers, traceparent) {
  if (traceparent) {
    headers.traceparent = traceparent;
  }
  return headers;
}

// chat sends a chat completion; with stream the reply is SSE, which k6 buffers, so the time to first byte
// is the request's timings.waiting (http_req_waiting).
export function chat(traceparent, stream, content) {
  const body = JSON.stringify({
    model: MODEL,
    messages: [{ role: 'user', content: content || 'Say hello in one short sentence.' }],
    max_tokens: 32,
    stream: !!stream,
  });
  const res = post(`${LLM_URL}/chat/completions`, body, withTrace(authHeaders(), traceparent),
    { layer: 'llm', call: stream ? 'chat-stream' : 'chat' });
  let reason = httpFailure(res, 200);
  if (reason === null && stream && !String(res.body).includes('data: [DONE]')) {
    reason = 'the stream did not end with data: [DONE]';
  }
  if (reason === null && !stream && ((parseJSON(res.body) || {}).choices || []).length === 0) {
    reason = `no choices in the reply: ${short(String(res.body), 300)}`;
  }
  record(res, 'llm', reason);
  return res;
}

export function embeddings(traceparent) {
  const body = JSON.stringify({ model: EMBED_MODEL, input: ['the quick brown fox', 'jumps over the lazy dog'] });
  const res = post(`${LLM_URL}/embeddings`, body, withTrace(authHeaders(), traceparent),
    { layer: 'llm', call: 'embeddings' });
  let reason = httpFailure(res, 200);
  if (reason === null && ((parseJSON(res.body) || {}).data || []).length !== 2) {
    reason = `not two embeddings in the reply: ${short(String(res.body), 300)}`;
  }
  record(res, 'llm', reason);
  return res;
}

// rpcResult reads a JSON-RPC reply that may come as JSON or as one SSE event (MCP Streamable HTTP may pick
// either).
function rpcResult(res) {
  if (res.status !== 200 || typeof res.body !== 'string') {
    return null;
  }
  let body = res.body;
  if (String(res.headers['Content-Type'] || '').startsWith('text/event-stream')) {
    const data = body.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim());
    body = data.length ? data[data.length - 1] : '';
  }
  return parseJSON(body);
}

// rpcFailure is the reason a 200 reply carries no JSON-RPC result, or null; check, when given, looks at the
// result in the protocol's terms.
function rpcFailure(res, check) {
  const m = rpcResult(res);
  if (m === null) {
    return `no JSON-RPC message in the reply: ${short(String(res.body), 300)}`;
  }
  if (m.error !== undefined) {
    const e = m.error || {};
    return `JSON-RPC error ${e.code}: ${short(String(e.message), 300)}`;
  }
  if (m.result === undefined || m.result === null) {
    return 'JSON-RPC reply without a result';
  }
  return check ? check(m.result) : null;
}

// partsText joins the text parts of MCP content or of an A2A message (both put it in .text).
function partsText(parts) {
  return short((parts || []).map((p) => p.text).filter((t) => t).join(' ').replace(/\s+/g, ' '), 200);
}

const MCP_ACCEPT = 'application/json, text/event-stream';
export const MCP_STATELESS = '2026-07-28';
const MCP_SESSION = '2025-11-25';

// MCP_PROTOCOL picks how tool() speaks MCP (mcp.js and workflow.js).
export const MCP_PROTOCOL = __ENV.MCP_PROTOCOL || MCP_STATELESS;
if (MCP_PROTOCOL !== MCP_STATELESS && MCP_PROTOCOL !== MCP_SESSION) {
  throw new Error(`MCP_PROTOCOL must be ${MCP_STATELESS} or ${MCP_SESSION}, got ${JSON.stringify(MCP_PROTOCOL)}`);
}

function toolCallBody(id, protocol, traceparent) {
  const meta = {};
  if (protocol === MCP_STATELESS) {
    meta['io.modelcontextprotocol/protocolVersion'] = MCP_STATELESS;
    meta['io.modelcontextprotocol/clientCapabilities'] = {};
  }
  if (traceparent) {
    meta.traceparent = traceparent;
  }
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: TOOL, arguments: TOOL_ARGS, _meta: meta },
  });
}

function recordTool(res) {
  record(res, 'tool', httpFailure(res, 200) || rpcFailure(res,
    (result) => (result.isError ? `tool error: ${partsText(result.content)}` : null)));
}

// toolStateless is one tools/call in the stateless 2026-07-28 protocol: no handshake, the method and tool
// name also travel as headers so a proxy can route without parsing the body.
function toolStateless(traceparent) {
  const res = post(MCP_URL, toolCallBody(uniqueID('call'), MCP_STATELESS, traceparent), withTrace(authHeaders({
    Accept: MCP_ACCEPT,
    'MCP-Protocol-Version': MCP_STATELESS,
    'Mcp-Method': 'tools/call',
    'Mcp-Name': TOOL,
  }), traceparent), { layer: 'tool', call: 'tools/call', protocol: MCP_STATELESS });
  recordTool(res);
  return res;
}

// The 2025-11-25 session of this VU: opened once, reused by every iteration, like a real client.
let session = '';

// openSession runs the handshake and returns the session ID, or '' after logging why it failed. Its requests
// carry no layer tag: they are not calls, so they stay out of the layer's latency and threshold.
function openSession() {
  const init = post(MCP_URL, JSON.stringify({
    jsonrpc: '2.0',
    id: uniqueID('init'),
    method: 'initialize',
    params: {
      protocolVersion: MCP_SESSION, capabilities: {}, clientInfo: { name: 'switchboard-k6', version: '1.0.0' },
    },
  }), authHeaders({ Accept: MCP_ACCEPT }), { call: 'initialize', protocol: MCP_SESSION });
  let reason = httpFailure(init, 200) || rpcFailure(init);
  const id = init.headers['Mcp-Session-Id'];
  if (reason === null && !id) {
    reason = 'no Mcp-Session-Id header';
  }
  if (reason !== null) {
    logFailure(init, `initialize: ${reason}`);
    return '';
  }
  const note = post(MCP_URL, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    authHeaders({ Accept: MCP_ACCEPT, 'Mcp-Session-Id': id, 'MCP-Protocol-Version': MCP_SESSION }),
    { call: 'initialized', protocol: MCP_SESSION });
  reason = httpFailure(note, 202, 200);
  if (reason !== null) {
    logFailure(note, `notifications/initialized: ${reason}`);
    return '';
  }
  return id;
}

// toolSession is one tools/call in the 2025-11-25 protocol over this VU's session. When the session cannot be
// opened the call is not sent, and counts as failed.
function toolSession(traceparent) {
  if (!session) {
    session = openSession();
    if (!session) {
      callFailed.add(true, { layer: 'tool' });
      return null;
    }
  }
  const res = post(MCP_URL, toolCallBody(uniqueID('call'), MCP_SESSION, traceparent), withTrace(authHeaders({
    Accept: MCP_ACCEPT,
    'Mcp-Session-Id': session,
    'MCP-Protocol-Version': MCP_SESSION,
  }), traceparent), { layer: 'tool', call: 'tools/call', protocol: MCP_SESSION });
  recordTool(res);
  if (res.status === 404) {
    // The server dropped the session (restart, expiry): open a new one next time, as clients must.
    session = '';
  }
  return res;
}

// tool is one tools/call in MCP_PROTOCOL.
export function tool(traceparent) {
  return MCP_PROTOCOL === MCP_STATELESS ? toolStateless(traceparent) : toolSession(traceparent);
}

// A task that ended in one of these states is a failed call (A2A 1.0 names, then the 0.3 ones).
const FAILED_TASK_STATES = [
  'TASK_STATE_FAILED', 'TASK_STATE_REJECTED', 'TASK_STATE_CANCELED',
  'failed', 'rejected', 'canceled',
];

// taskFailure is the reason a SendMessage result is a failed task, or null. A 1.0 result wraps the task
// ({task} or, for a direct answer, {message}); a 0.3 result is the task or message itself.
function taskFailure(result) {
  const task = result.task || result;
  const status = task.status || {};
  if (!FAILED_TASK_STATES.includes(status.state)) {
    return null;
  }
  return `task ${status.state}: ${partsText((status.message || {}).parts) || '(no status message)'}`;
}

// agentSend is one A2A 1.0 SendMessage; the mock agent answers with a completed task.
export function agentSend(traceparent, text) {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: uniqueID('a2a'),
    method: 'SendMessage',
    params: { message: { messageId: uniqueID('m'), role: 'ROLE_USER', parts: [{ text: text || 'hi' }] } },
  });
  const res = post(A2A_URL, body, withTrace(authHeaders({ 'A2A-Version': '1.0' }), traceparent),
    { layer: 'agent', call: 'SendMessage' });
  record(res, 'agent', httpFailure(res, 200) || rpcFailure(res, taskFailure));
  return res;
}
