// Chat completions (JSON replies).
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e API_KEY=sk-... -e RATE=100 -e DURATION=30s loadtest/k6/chat.js
// Every setting is in lib/config.js and lib/scenario.js.
import { chat } from './lib/calls.js';
import { options as scenarioOptions } from './lib/scenario.js';
import { summarize } from './lib/summary.js';

export const options = scenarioOptions(['llm']);

export default function () {
  chat(null, false);
}

export function handleSummary(data) {
  return summarize('chat', ['llm'], data);
}
