// A2A 1.0 SendMessage to one agent (AGENT, or A2A_URL for a direct endpoint).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e API_KEY=sk-... -e RATE=100 -e DURATION=30s loadtest/k6/a2a.js
// Every setting is in lib/config.js and lib/scenario.js.
import { agentSend } from './lib/calls.js';
import { options as scenarioOptions } from './lib/scenario.js';
import { summarize } from './lib/summary.js';

export const options = scenarioOptions(['agent']);

export default function () {
  agentSend(null);
}

export function handleSummary(data) {
  return summarize('a2a', ['agent'], data);
}
