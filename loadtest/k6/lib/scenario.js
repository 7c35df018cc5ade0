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
import { envNumber, envDuration, seconds, TIMEOUT } from './config.js';

const whole = (v) => Number.isInteger(v) && v >= 1;
const WHOLE = 'a whole number of at least 1';

export const SCENARIO = __ENV.SCENARIO || 'constant';
const DEFAULT_DURATION = { constant: '30s', ramp: '60s', soak: '30m' };
if (!DEFAULT_DURATION[SCENARIO]) {
  throw new Error(`SCENARIO must be constant, ramp or soak, got ${JSON.stringify(SCENARIO)}`);
}
export const RATE = envNumber('RATE', 50, WHOLE, whole);
export const MAX_RATE = envNumber('MAX_RATE', RATE * 10, WHOLE, whole);
export const DURATION = envDuration('DURATION', DEFAULT_DURATION[SCENARIO]);
const P99_MS = envNumber('P99_MS', 2000, 'a number of milliseconds above 0', (v) => v > 0);
const ERROR_RATE = envNumber('ERROR_RATE', 0.01, 'a share of failed calls from 0 to 1 (0.01 = 1%)',
  (v) => v >= 0 && v <= 1);
const VUS = envNumber('VUS', null, WHOLE, whole);
const MAX_VUS = envNumber('MAX_VUS', null, WHOLE, whole);

const totalSeconds = seconds(DURATION);
const rampSeconds = Math.max(1, Math.round((totalSeconds * 2) / 3));
export const HOLD_SECONDS = Math.max(1, Math.round(totalSeconds) - rampSeconds);

function vus(rate) {
  // Enough VUs to keep the rate with ~100 ms responses; k6 adds more up to MAX_VUS when the target slows.
  return VUS || Math.max(5, Math.ceil(rate / 10));
}

function executor() {
  const peak = SCENARIO === 'ramp' ? MAX_RATE : RATE;
  const maxVUs = MAX_VUS || Math.max(50, vus(peak) * 4);
  // gracefulStop is the request timeout: a request still in flight when the rate stops ends with its answer or its
  // timeout, and is counted, instead of being cut off without a sample.
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
        gracefulStop: TIMEOUT,
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
        gracefulStop: TIMEOUT,
      };
  }
}

// options returns the k6 options for a script whose requests carry the given layer tags.
export function options(layers, extraThresholds) {
  const thresholds = {
    // A call fails on a wrong HTTP status or an error in the protocol's answer (lib/calls.js).
    call_failed: [`rate<=${ERROR_RATE}`],
    // k6 passes thresholds on metrics without samples: a run that completed no call at all (a target that never
    // answers, an error thrown in every iteration) would pass every other threshold.
    calls: ['count>0'],
    // Declared so the summary carries the sub-metric even with no threshold of interest.
    hold_reqs: ['count>=0'],
  };
  for (const layer of layers) {
    thresholds[`http_req_duration{layer:${layer}}`] = [`p(99)<${P99_MS}`];
  }
  return {
    scenarios: { [SCENARIO]: executor() },
    thresholds: Object.assign(thresholds, extraThresholds || {}),
    // count tells an empty trend (no samples) from one whose values are 0.
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
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
