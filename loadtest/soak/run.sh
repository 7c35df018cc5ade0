#!/usr/bin/env bash
# run.sh — the Switchboard soak (`make soak`). Everything on 127.0.0.1, every step bounded in time.
#
# Builds the gateway and the mock upstreams, starts ClickHouse, the mocks (20 ms latency) and one gateway with
# governance and ClickHouse tracing on, then runs five k6 loads at once for SOAK_DURATION: chat, streamed chat,
# MCP, A2A and the cross-protocol workflow. Every 10 s it samples the gateway's VmRSS/VmHWM (/proc) and
# go_goroutines (/metrics) into loadtest/results/soak.csv, and at the end writes loadtest/results/soak.md.
#
# Bound: after a warm-up (the first WARMUP samples: pools, caches and k6's VUs ramp up), RSS may grow by at
# most SOAK_MAX_RSS_GROWTH_MB (25) and goroutines by at most SOAK_MAX_GOROUTINE_GROWTH (50) from the warm-up's
# end to the run's end; more fails the run (exit 1). Growth is end − warm-up mean, so one GC cycle's peak does
# not fail it, a leak does.
#
# Env (all optional):
#   SOAK_DURATION (10m), SOAK_RATE (chat requests/s, 100; stream, MCP and A2A run at half, workflow at a tenth)
#   SOAK_WARMUP samples of 10 s (default 6 = 1 min), SOAK_MAX_RSS_GROWTH_MB (25), SOAK_MAX_GOROUTINE_GROWTH (50)
#   GATEWAY_ADDR (127.0.0.1:18490), CLICKHOUSE_PORT (9000)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
results="$root/loadtest/results"
work="$results/soak-run"
bin="$results/bin"
rm -rf "$work"
mkdir -p "$work/json" "$work/log" "$bin"

duration="${SOAK_DURATION:-10m}"
rate="${SOAK_RATE:-100}"
warmup="${SOAK_WARMUP:-6}"
max_rss_mb="${SOAK_MAX_RSS_GROWTH_MB:-25}"
max_gor="${SOAK_MAX_GOROUTINE_GROWTH:-50}"
gateway_addr="${GATEWAY_ADDR:-127.0.0.1:18490}"
ch_port="${CLICKHOUSE_PORT:-9000}"
db=soak
api_key="sk-sb-soak-000000000000000000000000000000"

log_tag=soak
# shellcheck source=../processes.sh
source "$root/loadtest/processes.sh"

# Checked before anything is built or started.
total_secs="$(secs_of "$duration")"

gobin="$(go env GOBIN)"; [[ -n "$gobin" ]] || gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"
if ! command -v k6 >/dev/null; then
  say "installing k6 v1.8.1 (go install, about 2 minutes) ..."
  timeout 900 go install go.k6.io/k6@v1.8.1
fi
say "building gateway and mocks ..."
CGO_ENABLED=0 go build -trimpath -o "$bin/switchboard" ./cmd/switchboard
go build -trimpath -o "$bin/mock" ./loadtest/cmd/mock

say "starting ClickHouse on 127.0.0.1:$ch_port ..."
CLICKHOUSE_PORT="$ch_port" timeout 600 bash deploy/clickhouse.sh start
ch() { timeout 60 clickhouse-client --host 127.0.0.1 --port "$ch_port" -q "$1"; }
ch "DROP DATABASE IF EXISTS $db"

start llm "$bin/mock" llm --listen 127.0.0.1:0 --latency 20ms; llm_url="${started_url%/v1}"
start mcp "$bin/mock" mcp --listen 127.0.0.1:0 --latency 20ms --name m; mcp_url="${started_url%/mcp}"
start a2a "$bin/mock" a2a --listen 127.0.0.1:0 --latency 20ms --name a; a2a_url="${started_url%/}"

cat >"$work/gateway.yaml" <<EOF
server: {listen: "$gateway_addr"}
log: {format: json, level: warn}
models:
  - name: mock
    deployments: [{provider: openai, base_url: "$llm_url/v1", model: gpt-4o-mini, api_key: soak-upstream-key}]
    pricing: {input_per_mtok: "0.15", output_per_mtok: "0.60"}
router: {strategy: weighted, retries: 2, allowed_fails: 3, cooldown: 30s, timeout: 60s}
mcp:
  servers:
    - {name: m, url: "$mcp_url/mcp", cost_per_call_usd: "0.001"}
# max_tasks: the task-ownership map grows by design until this bound (default 100,000, about 60 A2A tasks/s
# here); a small bound is reached during warm-up, so growth after it means a leak.
a2a:
  max_tasks: 2000
  agents:
    - {name: a, card_url: "$a2a_url/.well-known/agent-card.json", cost_per_call_usd: "0.01"}
$(gateway_policy soak '{models: ["mock"], tools: ["m__*"], agents: ["a"]}')
EOF

start_gateway "$work/gateway.yaml"

# --- load: five k6 processes side by side, each an open-model constant rate ------------------------------
half=$(( rate / 2 > 0 ? rate / 2 : 1 )); tenth=$(( rate / 10 > 0 ? rate / 10 : 1 ))
k6pids=()
load() {
  local name="$1" script="$2" r="$3"; shift 3
  env "$@" BASE_URL="$gateway" API_KEY="$api_key" MODEL=mock TOOL=m__get_forecast AGENT=a SCENARIO=soak \
    RATE="$r" DURATION="$duration" LABEL="soak/$name" SUMMARY="$work/json/$name.json" P99_MS=10000 \
    timeout "$(( total_secs + 120 ))" k6 run --quiet --no-usage-report "loadtest/k6/$script" \
    >"$work/log/k6.$name.txt" 2>&1 &
  k6pids+=("$!"); pids+=("$!")
}
say "running mixed load for $duration (chat $rate/s, stream/MCP/A2A $half/s, workflow $tenth/s) ..."
load chat chat.js "$rate"
load stream chat-stream.js "$half"
load mcp mcp.js "$half"
load a2a a2a.js "$half"
load workflow workflow.js "$tenth"

# --- sampling ----------------------------------------------------------------------------------------------
csv="$results/soak.csv"
echo "elapsed_s,vmrss_kb,vmhwm_kb,goroutines" >"$csv"
sample() {
  local rss hwm gor
  rss="$(awk '/^VmRSS/{print $2}' "/proc/$gw_pid/status")"
  hwm="$(awk '/^VmHWM/{print $2}' "/proc/$gw_pid/status")"
  gor="$(curl -fsS --max-time 5 "$gateway/metrics" | awk '$1=="go_goroutines"{print $2}')"
  echo "$1,$rss,$hwm,${gor:-}" >>"$csv"
}
t0="$(date +%s)"
sample 0
while :; do
  sleep 10
  kill -0 "$gw_pid" 2>/dev/null || fail "gateway died during the soak (see $work/log/gateway.err)"
  sample "$(( $(date +%s) - t0 ))"
  alive=0
  for p in "${k6pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
  (( alive )) || break
done
k6fail=()
for n in chat stream mcp a2a workflow; do
  p="${k6pids[0]}"; k6pids=("${k6pids[@]:1}")
  rc=0; wait "$p" || rc=$?
  # 99 = thresholds crossed: the run still counts; anything else (or no summary) is a broken run.
  if [[ $rc != 0 && $rc != 99 ]] || [[ ! -s "$work/json/$n.json" ]]; then
    tail -n 20 "$work/log/k6.$n.txt" >&2; k6fail+=("$n")
  fi
done
# Idle for two samples: what the load left behind (goroutines of finished streams, sessions) shows up here.
sleep 10; sample "$(( $(date +%s) - t0 ))"
sleep 10; sample "$(( $(date +%s) - t0 ))"

# --- report ------------------------------------------------------------------------------------------------
report="$results/soak.md"
verdict="$(awk -F, -v w="$warmup" -v mr="$max_rss_mb" -v mg="$max_gor" '
  NR == 1 { next }
  { n++; rss[n] = $2; gor[n] = $4; if ($2 > maxr) maxr = $2; if ($4 > maxg) maxg = $4; if ($3 > hwm) hwm = $3 }
  END {
    if (n <= w + 1) { print "FAIL too few samples (" n ") for a warm-up of " w; exit }
    for (i = 1; i <= w; i++) { wr += rss[i]; wg += gor[i] }
    wr /= w; wg /= w
    gr = (rss[n] - wr) / 1024; gg = gor[n] - wg
    status = (gr <= mr && gg <= mg) ? "PASS" : "FAIL"
    printf "%s|%.1f|%.1f|%.1f|%.1f|%.1f|%d|%d|%d|%.1f|%.1f\n", status, rss[1]/1024, wr/1024, rss[n]/1024, maxr/1024, gr, gor[1], gor[n], maxg, wg, gg
  }' "$csv")"
IFS='|' read -r status r_start r_warm r_end r_max r_growth g_start g_end g_max g_warm g_growth <<<"$verdict"
{
  echo "# Switchboard soak — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "$(nproc) cores, $(go version | awk '{print $3}'); mocks (20 ms), gateway (governance and ClickHouse tracing on), ClickHouse and k6 on one machine."
  echo "Load for $duration: chat $rate/s, streamed chat $half/s, MCP $half/s, A2A $half/s, workflow $tenth/s (4 calls each). Samples every 10 s in soak.csv; warm-up = first $warmup samples."
  echo
  echo "| | start | warm-up mean | end | max | growth after warm-up | bound |"
  echo "|---|---|---|---|---|---|---|"
  echo "| RSS (MB) | $r_start | $r_warm | $r_end | $r_max | $r_growth | +$max_rss_mb |"
  echo "| goroutines | $g_start | $g_warm | $g_end | $g_max | $g_growth | +$max_gor |"
  echo
  echo "Peak RSS (VmHWM): $(( $(tail -n1 "$csv" | cut -d, -f3) / 1024 )) MB. End is sampled 20 s after the load stopped."
  echo
  echo "| load | calls | error rate | p50 / p99 ms |"
  echo "|---|---|---|---|"
  for n in chat stream mcp a2a workflow; do
    f="$work/json/$n.json"
    [[ -s "$f" ]] || { echo "| $n | - | - | - |"; continue; }
    # error_rate is the share of failed calls (call_failed: HTTP status or an error in the protocol's answer); it and
    # all (the calls' latency) are null when the load made no call.
    jq -r --arg n "$n" '
      def r2: . * 100 | round / 100;
      "| \($n) | \(.calls) | \(if .error_rate == null then "-" else "\(.error_rate * 100 | r2)%" end) | " +
      "\(if .all == null then "-" else "\(.all.p50 | r2) / \(.all.p99 | r2)" end) |"' "$f"
  done
  echo
  echo "Result: **$status**${k6fail:+ (k6 failed: ${k6fail[*]})}"
} >"$report"
cat "$report"
say "wrote $report and $csv (logs in $work)"
[[ "$status" == PASS && ${#k6fail[@]} == 0 ]] || exit 1
