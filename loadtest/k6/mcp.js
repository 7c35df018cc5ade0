// MCP tools/call over Streamable HTTP. MCP_PROTOCOL picks the protocol version:
//   2026-07-28 (default)  stateless: every POST stands alone, method and tool name also in headers
//   2025-11-25            each VU opens a session once (initialize + notifications/initialized) and reuses
//                         its Mcp-Session-Id; only the tools/call requests count as calls
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e API_KEY=sk-... -e TOOL=weather__get_forecast \
//          -e MCP_PROTOCOL=2025-11-25 -e RATE=200 loadtest/k6/mcp.js
// The summary is summary-mcp-stateless.json or summary-mcp-session.json, by protocol.
import { tool, MCP_PROTOCOL, MCP_STATELESS } from './lib/calls.js';
import { options as scenarioOptions } from './lib/scenario.js';
import { summarize } from './lib/summary.js';

const SCRIPT = MCP_PROTOCOL === MCP_STATELESS ? 'mcp-stateless' : 'mcp-session';

// The handshake requests carry no layer tag (call:initialize/initialized): the tool layer's latency and
// threshold are on tools/call only.
export const options = scenarioOptions(['tool']);

export default function () {
  tool(null);
}

export function handleSummary(data) {
  return summarize(SCRIPT, ['tool'], data);
}
