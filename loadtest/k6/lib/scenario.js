// Builds k6 options from SCENARIO/RATE/DURATION and the per-layer thresholds, so every script shares one
// load model:
//   constant  constant-arrival-rate at RATE for DURATION (open model: a slow target shows up as latency and
//             dropped_iterations, not as a politely lower rate)
//   ramp      ramping-arrival-rate from RATE to MAX_RATE over the first two thirds of DURATION, then holds
//             MAX_RATE; requests in the hold third are counted in hold_reqs, and the summary reports their
//             rate as max_rps (the saturation throughput when MAX_RATE is above what the target can do)
//   soak      constant-arrival-rate at RATE for a long DURATION (default 30m)
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';

export const SCENARIO = __ENV.SCENARIO || 'constant';
export const RATE = parseInt(__ENV.RATE || '50', 10);
export const MAX_RATE = parseInt(__ENV.MAX_RATE || String(RATE * 10), 10);
const DEFAULT_DURATION = { constant: '30s', ramp: '60s', soak: '30m' };
export const DURATION = __ENV.DURATION || DEFAULT_DURATION[SCENARIO] || '30s';
const P99_MS = parseFloat(__ENV.P99_MS || '2000');
const ERROR_RATE = parseFloat(__ENV.ERROR_RATE || '0.01');

// seconds parses a k6 duration such as "90s", "2m", "1h30m" or "1m30s".
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
  if (matched !== d) {
    throw new Error(`DURATION: cannot parse ${JSON.stringify(d)} (use e.g. 30s, 2m, 1h)`);
  }
  return total;
}

const totalSeconds = seconds(DURATION);
const rampSeconds = Math.max(1, Math.round((totalSeconds * 2) / 3));
export const HOLD_SECONDS = Math.max(1, Math.round(totalSeconds) - rampSeconds);

function vus(rate) {
  // Enough VUs to keep the rate with ~100 ms responses; k6 adds more up to MAX_VUS when the target slows.
  return parseInt(__ENV.VUS || String(Math.max(5, Math.ceil(rate / 10))), 10);
}

function executor() {
  const peak = SCENARIO === 'ramp' ? MAX_RATE : RATE;
  const maxVUs = parseInt(__ENV.MAX_VUS || String(Math.max(50, vus(peak) * 4)), 10);
  switch (SCENARIO) {
    case 'constant':
    case 'soak':
      return {
        executor: 'constant-arrival-rate',
        rate: RATE,
        timeUnit: '1s',
        duration: DURATION,
        preAllocatedVUs: vus(RATE),
        maxVUs: Math.max(maxVUs, vus(RATE)),
        gracefulStop: '5s',
      };
    case 'ramp':
      return {
        executor: 'ramping-arrival-rate',
        startRate: RATE,
        timeUnit: '1s',
        stages: [
          { target: MAX_RATE, duration: `${rampSeconds}s` },
          { target: MAX_RATE, duration: `${HOLD_SECONDS}s` },
        ],
        preAllocatedVUs: vus(RATE),
        maxVUs: maxVUs,
        gracefulStop: '5s',
      };
    default:
      throw new Error(`SCENARIO must be constant, ramp or soak, got ${JSON.stringify(SCENARIO)}`);
  }
}

// options returns the k6 options for a script whose requests carry the given layer tags.
export function options(layers, extraThresholds) {
  const thresholds = {
    http_req_failed: [`rate<${ERROR_RATE}`],
    checks: [`rate>${1 - ERROR_RATE}`],
    // Declared so the summary carries the sub-metric even with no threshold of interest.
    hold_reqs: ['count>=0'],
  };
  for (const layer of layers) {
    thresholds[`http_req_duration{layer:${layer}}`] = [`p(99)<${P99_MS}`];
  }
  return {
    scenarios: { [SCENARIO]: executor() },
    thresholds: Object.assign(thresholds, extraThresholds || {}),
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max'],
  };
}

const holdReqs = new Counter('hold_reqs');

// countHold counts one request if the ramp is in its hold phase.
export function countHold() {
  if (SCENARIO !== 'ramp') {
    return;
  }
  const elapsed = (Date.now() - exec.scenario.startTime) / 1000;
  if (elapsed >= rampSeconds && elapsed < rampSeconds + HOLD_SECONDS) {
    holdReqs.add(1);
  }
}
