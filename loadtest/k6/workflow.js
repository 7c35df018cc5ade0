// A mixed agent workflow under one traceparent, as an agent framework would run it: the model plans, a tool
// is called, another agent is asked, and the model answers. Through the gateway the four spans form one
// trace tree. Each iteration is four sequential calls, so RATE is workflows per second.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e API_KEY=sk-... -e TOOL=weather__get_forecast \
//          -e AGENT=researcher -e RATE=20 loadtest/k6/workflow.js
// MCP_PROTOCOL as in mcp.js (default 2026-07-28).
import { chat, tool, agentSend } from './lib/calls.js';
import { newTraceparent } from './lib/config.js';
import { options as scenarioOptions } from './lib/scenario.js';
import { summarize } from './lib/summary.js';
import { Trend } from 'k6/metrics';

const LAYERS = ['llm', 'tool', 'agent'];
const workflow = new Trend('workflow_duration', true);

export const options = scenarioOptions(LAYERS);

export default function () {
  const tp = newTraceparent();
  const started = Date.now();
  chat(tp, false, 'Plan: which tool and which agent do I need for the weather in Paris?');
  tool(tp);
  agentSend(tp, 'Summarise the forecast for Paris.');
  chat(tp, false, 'Write the final answer from the tool result and the agent summary.');
  workflow.add(Date.now() - started);
}

export function handleSummary(data) {
  return summarize('workflow', LAYERS, data);
}
