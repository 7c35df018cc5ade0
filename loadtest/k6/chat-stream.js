// Streamed chat completions. k6 buffers SSE, so the number that matters is time to first byte:
// http_req_waiting (timings.waiting), reported as ttfb.
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e API_KEY=sk-... -e RATE=100 -e DURATION=30s loadtest/k6/chat-stream.js
// Every setting is in lib/config.js and lib/scenario.js.
import { chat } from './lib/calls.js';
import { options as scenarioOptions } from './lib/scenario.js';
import { summarize } from './lib/summary.js';

export const options = scenarioOptions(['llm'], { 'http_req_waiting{layer:llm}': [`p(99)<${__ENV.TTFB_P99_MS || '1000'}`] });

export default function () {
  chat(null, true);
}

export function handleSummary(data) {
  return summarize('chat-stream', ['llm'], data);
}
