// Streamed chat completions. k6 buffers SSE, so the number that matters is time to first byte:
// http_req_waiting (timings.waiting), reported as ttfb.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e API_KEY=sk-... -e RATE=100 -e DURATION=30s loadtest/k6/chat-stream.js
// Every setting is in lib/config.js and lib/scenario.js.
import { chat } from './lib/calls.js';
import { envNumber } from './lib/config.js';
import { options as scenarioOptions } from './lib/scenario.js';
import { summarize } from './lib/summary.js';

const TTFB_P99_MS = envNumber('TTFB_P99_MS', 1000, 'a number of milliseconds above 0', (v) => v > 0);

export const options = scenarioOptions(['llm'], { 'http_req_waiting{layer:llm}': [`p(99)<${TTFB_P99_MS}`] });

export default function () {
  chat(null, true);
}

export function handleSummary(data) {
  return summarize('chat-stream', ['llm'], data);
}
