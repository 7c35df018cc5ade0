// One function per kind of call the gateway proxies. Each tags its request with the layer (llm, tool,
// agent), checks the reply in the protocol's own terms, and counts it for the span comparison.
import http from 'k6/http';
import { check } from 'k6';
import { authHeaders, LLM_URL, MCP_URL, A2A_URL, MODEL, EMBED_MODEL, TOOL, toolArgs, uniqueID } from './config.js';
import { countHold } from './scenario.js';
import { calls } from './summary.js';

// Failures are counted by the checks; the first few of each VU are also logged so a run that fails says why.
let logged = 0;

function sent(res) {
  calls.add(1);
  countHold();
  if (res.status !== 200 && logged < 3) {
    logged++;
    const body = typeof res.body === 'string' ? res.body.slice(0, 300) : '';
    console.warn(`${res.request.method} ${res.url}: status ${res.status} ${res.error || ''} ${body}`);
  }
  return res;
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
  const res = sent(http.post(`${LLM_URL}/chat/completions`, body, {
    headers: withTrace(authHeaders(), traceparent),
    tags: { layer: 'llm', call: stream ? 'chat-stream' : 'chat' },
  }));
  if (stream) {
    check(res, {
      'chat stream 200': (r) => r.status === 200,
      'chat stream ends with [DONE]': (r) => typeof r.body === 'string' && r.body.includes('data: [DONE]'),
    });
  } else {
    check(res, {
      'chat 200': (r) => r.status === 200,
      'chat has choices': (r) => r.status === 200 && (r.json('choices') || []).length > 0,
    });
  }
  return res;
}

export function embeddings(traceparent) {
  const body = JSON.stringify({ model: EMBED_MODEL, input: ['the quick brown fox', 'jumps over the lazy dog'] });
  const res = sent(http.post(`${LLM_URL}/embeddings`, body, {
    headers: withTrace(authHeaders(), traceparent),
    tags: { layer: 'llm', call: 'embeddings' },
  }));
  check(res, {
    'embeddings 200': (r) => r.status === 200,
    'embeddings has data': (r) => r.status === 200 && (r.json('data') || []).length === 2,
  });
  return res;
}

// rpcResult reads a JSON-RPC reply that may come as JSON or as one SSE event (MCP Streamable HTTP may pick
// either).
export function rpcResult(res) {
  if (res.status !== 200 || typeof res.body !== 'string') {
    return null;
  }
  let body = res.body;
  if (String(res.headers['Content-Type'] || '').startsWith('text/event-stream')) {
    const data = body.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim());
    body = data.length ? data[data.length - 1] : '';
  }
  try {
    return JSON.parse(body);
  } catch (e) {
    return null;
  }
}

const MCP_ACCEPT = 'application/json, text/event-stream';
export const MCP_STATELESS = '2026-07-28';
export const MCP_SESSION = '2025-11-25';

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
    params: { name: TOOL, arguments: toolArgs(), _meta: meta },
  });
}

function checkTool(res) {
  check(res, {
    'tools/call 200': (r) => r.status === 200,
    'tools/call result ok': (r) => {
      const m = rpcResult(r);
      return m !== null && m.result !== undefined && !m.result.isError;
    },
  });
}

// toolStateless is one tools/call in the stateless 2026-07-28 protocol: no handshake, the method and tool
// name also travel as headers so a proxy can route without parsing the body.
export function toolStateless(traceparent) {
  const res = sent(http.post(MCP_URL, toolCallBody(uniqueID('call'), MCP_STATELESS, traceparent), {
    headers: withTrace(authHeaders({
      Accept: MCP_ACCEPT,
      'MCP-Protocol-Version': MCP_STATELESS,
      'Mcp-Method': 'tools/call',
      'Mcp-Name': TOOL,
    }), traceparent),
    tags: { layer: 'tool', call: 'tools/call', protocol: MCP_STATELESS },
  }));
  checkTool(res);
  return res;
}

// The 2025-11-25 session of this VU: opened once, reused by every iteration, like a real client.
let session = '';

function openSession() {
  const init = http.post(MCP_URL, JSON.stringify({
    jsonrpc: '2.0',
    id: uniqueID('init'),
    method: 'initialize',
    params: { protocolVersion: MCP_SESSION, capabilities: {}, clientInfo: { name: 'switchboard-k6', version: '1.0.0' } },
  }), {
    headers: authHeaders({ Accept: MCP_ACCEPT }),
    tags: { layer: 'tool', call: 'initialize', protocol: MCP_SESSION },
  });
  const ok = check(init, { 'initialize 200 with session': (r) => r.status === 200 && !!r.headers['Mcp-Session-Id'] });
  if (!ok) {
    return '';
  }
  const id = init.headers['Mcp-Session-Id'];
  const note = http.post(MCP_URL, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), {
    headers: authHeaders({ Accept: MCP_ACCEPT, 'Mcp-Session-Id': id, 'MCP-Protocol-Version': MCP_SESSION }),
    tags: { layer: 'tool', call: 'initialized', protocol: MCP_SESSION },
  });
  check(note, { 'initialized accepted': (r) => r.status === 202 || r.status === 200 });
  return id;
}

// toolSession is one tools/call in the 2025-11-25 protocol over this VU's session.
export function toolSession(traceparent) {
  if (!session) {
    session = openSession();
    if (!session) {
      return null;
    }
  }
  const res = sent(http.post(MCP_URL, toolCallBody(uniqueID('call'), MCP_SESSION, traceparent), {
    headers: withTrace(authHeaders({
      Accept: MCP_ACCEPT,
      'Mcp-Session-Id': session,
      'MCP-Protocol-Version': MCP_SESSION,
    }), traceparent),
    tags: { layer: 'tool', call: 'tools/call', protocol: MCP_SESSION },
  }));
  checkTool(res);
  if (res.status === 404) {
    // The server dropped the session (restart, expiry): open a new one next time, as clients must.
    session = '';
  }
  return res;
}

// agentSend is one A2A 1.0 SendMessage; the mock agent answers with a completed task.
export function agentSend(traceparent, text) {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: uniqueID('a2a'),
    method: 'SendMessage',
    params: { message: { messageId: uniqueID('m'), role: 'ROLE_USER', parts: [{ text: text || 'hi' }] } },
  });
  const res = sent(http.post(A2A_URL, body, {
    headers: withTrace(authHeaders({ 'A2A-Version': '1.0' }), traceparent),
    tags: { layer: 'agent', call: 'SendMessage' },
  }));
  check(res, {
    'SendMessage 200': (r) => r.status === 200,
    'SendMessage result': (r) => {
      const m = rpcResult(r);
      return m !== null && m.result !== undefined;
    },
  });
  return res;
}
