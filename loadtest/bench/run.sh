#!/usr/bin/env bash
# run.sh — the Switchboard benchmark (`make loadtest`). Everything on 127.0.0.1, every step bounded in time.
#
# It builds the gateway, the mock upstreams and the two proxy floors, starts ClickHouse, mocks with 0 ms and
# 50 ms latency, and one gateway (governance and ClickHouse tracing on) in front of both. Then it runs each
# k6 scenario against the mock directly, through the fiber floor, through the net/http floor and through the
# gateway, back to back, and writes loadtest/results/summary.md: latency per target, latency the gateway adds
# over direct, max RPS and CPU per request at saturation, the gateway's peak RSS, and spans written to
# ClickHouse against calls sent. Chat, streamed chat, MCP and A2A are also measured with loadtest/cmd/openloop,
# whose own CPU is small enough not to drown the proxies' tails.
#
# Env (all optional):
#   BENCH_DURATION  length of each constant-rate run (default 8s); BENCH_SAT_DURATION the ramp (default 15s)
#   BENCH_CHAT_RATE (1000), BENCH_RATE (500, MCP/A2A/stream/embeddings), BENCH_FLOW_RATE (20 workflows/s),
#   BENCH_SAT_MAX (20000, the rate the saturation ramp climbs to)
#   BENCH_ONLY      space-separated scenario names to run (default: all; see SCENARIOS below)
#   GATEWAY_ADDR    gateway listen address (default 127.0.0.1:18480)
#   CLICKHOUSE_PORT native port of the local ClickHouse (default 9000)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
results="$root/loadtest/results"
work="$results/run"
bin="$results/bin"
rm -rf "$work"
mkdir -p "$work/json" "$work/log" "$bin"

duration="${BENCH_DURATION:-8s}"
sat_duration="${BENCH_SAT_DURATION:-15s}"
chat_rate="${BENCH_CHAT_RATE:-1000}"
rate="${BENCH_RATE:-500}"
flow_rate="${BENCH_FLOW_RATE:-20}"
sat_max="${BENCH_SAT_MAX:-20000}"
gateway_addr="${GATEWAY_ADDR:-127.0.0.1:18480}"
ch_port="${CLICKHOUSE_PORT:-9000}"
db=loadtest
api_key="sk-sb-loadtest-00000000000000000000000000"

log_tag=bench
# shellcheck source=../processes.sh
source "$root/loadtest/processes.sh"

# Checked before anything is built or started.
duration_secs="$(secs_of "$duration")"
sat_duration_secs="$(secs_of "$sat_duration")"

stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { say "pid $pid ignored SIGTERM for 30s; killing it"; kill -KILL "$pid"; }
  wait "$pid" 2>/dev/null || true
}

# cpu_ticks PID: user+system CPU of a process in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
clk_tck="$(getconf CLK_TCK)"

# --- tools -------------------------------------------------------------------------------------------------
gobin="$(go env GOBIN)"; [[ -n "$gobin" ]] || gobin="$(go env GOPATH)/bin"
export PATH="$gobin:$PATH"
if ! command -v k6 >/dev/null; then
  say "installing k6 v1.8.1 (go install, about 2 minutes) ..."
  timeout 900 go install go.k6.io/k6@v1.8.1
fi
say "building gateway, mocks and floors ..."
CGO_ENABLED=0 go build -trimpath -o "$bin/switchboard" ./cmd/switchboard
go build -trimpath -o "$bin/mock" ./loadtest/cmd/mock
go build -trimpath -o "$bin/fiberproxy" ./loadtest/floor/fiberproxy
go build -trimpath -o "$bin/httpproxy" ./loadtest/floor/httpproxy
go build -trimpath -o "$bin/openloop" ./loadtest/cmd/openloop

say "starting ClickHouse on 127.0.0.1:$ch_port ..."
CLICKHOUSE_PORT="$ch_port" timeout 600 bash deploy/clickhouse.sh start
ch_pid="$(ss -Hltnp "sport = :$ch_port" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)"
[[ -n "$ch_pid" ]] || fail "no process listens on ClickHouse's port $ch_port"
ch() { timeout 60 clickhouse-client --host 127.0.0.1 --port "$ch_port" -q "$1"; }
ch "DROP DATABASE IF EXISTS $db"

# --- upstreams -------------------------------------------------------------------------------------------
# up[KINDLAT] is a mock's base URL, up_pid[KINDLAT] its pid (for the CPU the direct runs cost).
declare -A up up_pid
for lat in 0 50; do
  start "llm-$lat" "$bin/mock" llm --listen 127.0.0.1:0 --latency "${lat}ms"
  up[llm$lat]="${started_url%/v1}"; up_pid[llm$lat]="${pids[-1]}"
  start "mcp-$lat" "$bin/mock" mcp --listen 127.0.0.1:0 --latency "${lat}ms" --name "m$lat"
  up[mcp$lat]="${started_url%/mcp}"; up_pid[mcp$lat]="${pids[-1]}"
  start "a2a-$lat" "$bin/mock" a2a --listen 127.0.0.1:0 --latency "${lat}ms" --name "a$lat"
  up[a2a$lat]="${started_url%/}"; up_pid[a2a$lat]="${pids[-1]}"
done

cat >"$work/gateway.yaml" <<EOF
server: {listen: "$gateway_addr"}
log: {format: json, level: info}
models:
  - name: mock-0ms
    deployments: [{provider: openai, base_url: "${up[llm0]}/v1", model: gpt-4o-mini, api_key: bench-upstream-key}]
    pricing: {input_per_mtok: "0.15", output_per_mtok: "0.60"}
  - name: mock-50ms
    deployments: [{provider: openai, base_url: "${up[llm50]}/v1", model: gpt-4o-mini, api_key: bench-upstream-key}]
    pricing: {input_per_mtok: "0.15", output_per_mtok: "0.60"}
router: {strategy: weighted, retries: 2, allowed_fails: 3, cooldown: 30s, timeout: 60s}
mcp:
  servers:
    - {name: m0, url: "${up[mcp0]}/mcp", cost_per_call_usd: "0.001"}
    - {name: m50, url: "${up[mcp50]}/mcp", cost_per_call_usd: "0.001"}
a2a:
  agents:
    - {name: a0, card_url: "${up[a2a0]}/.well-known/agent-card.json", cost_per_call_usd: "0.01"}
    - {name: a50, card_url: "${up[a2a50]}/.well-known/agent-card.json", cost_per_call_usd: "0.01"}
$(gateway_policy bench '{models: ["mock-*"], tools: ["m*__*"], agents: ["a*"]}')
EOF

start_gateway "$work/gateway.yaml"

# --- runs --------------------------------------------------------------------------------------------------
# cpu_mark PID: the time and the CPU ticks PID and ClickHouse have spent so far, for add_cpu.
cpu_mark() { echo "$(date +%s%N) $(cpu_ticks "$1") $(cpu_ticks "$ch_pid")"; }

# add_cpu FILE PID MARK: adds to the JSON in FILE the window since MARK (for the span count), the CPU the process
# PID spent in it and the CPU ClickHouse spent (span inserts and their merges compete for the same two cores).
add_cpu() {
  local t0 c0 h0 tmp
  read -r t0 c0 h0 <<<"$3"
  tmp="$(mktemp)"
  jq --argjson t0 "$t0" --argjson t1 "$(date +%s%N)" --argjson cpu "$(( $(cpu_ticks "$2") - c0 ))" \
    --argjson chcpu "$(( $(cpu_ticks "$ch_pid") - h0 ))" --argjson tck "$clk_tck" \
    '. + {window_ns: [$t0, $t1], cpu_ms: ($cpu * 1000 / $tck), clickhouse_cpu_ms: ($chcpu * 1000 / $tck)}' "$1" >"$tmp" &&
    mv "$tmp" "$1"
}

# k6run NAME TARGET PID ENV...: one k6 run; its JSON goes to json/NAME.TARGET.json, with add_cpu's fields.
k6run() {
  local name="$1" target="$2" pid="$3"; shift 3
  local out="$work/json/$name.$target.json" mark rc=0 secs
  secs="$(awk -v d="${DURATION_FOR_TIMEOUT}" 'BEGIN{print d+90}')"
  mark="$(cpu_mark "$pid")"
  env "$@" API_KEY="$api_key" LABEL="$name/$target" SUMMARY="$out" \
    timeout "$secs" k6 run --quiet --no-usage-report "$k6script" >"$work/log/k6.$name.$target.txt" 2>&1 || rc=$?
  # 99 = thresholds crossed: the numbers are still the result.
  if [[ $rc != 0 && $rc != 99 ]] || [[ ! -s "$out" ]]; then
    tail -n 20 "$work/log/k6.$name.$target.txt" >&2; fail "k6 $name against $target failed ($rc)"
  fi
  add_cpu "$out" "$pid" "$mark"
  sed -n '/^$/,$p' "$work/log/k6.$name.$target.txt" | grep -v '^$' | head -n 8 >&2 || true
}

# floors UPSTREAM...: starts a fiber and a net/http floor per upstream; sets fiber_urls/http_urls/floor_pids.
floors() {
  fiber_urls=(); http_urls=(); floor_pids=()
  local u n=0
  for u in "$@"; do
    n=$((n + 1))
    start "fiber-$name-$n" "$bin/fiberproxy" --listen 127.0.0.1:0 --upstream "$u"; fiber_urls+=("$started_url"); floor_pids+=("${pids[-1]}")
    start "http-$name-$n" "$bin/httpproxy" --listen 127.0.0.1:0 --upstream "$u"; http_urls+=("$started_url"); floor_pids+=("${pids[-1]}")
  done
}
stop_floors() { local p; for p in "${floor_pids[@]}"; do stop_pid "$p"; done; }

# scenario NAME SCRIPT LAT KIND RATE ENV...: the four targets, one after the other. KIND is llm, mcp, a2a
# or flow (all three).
scenario() {
  local name="$1" script="$2" lat="$3" kind="$4" r="$5"; shift 5
  if [[ -n "${BENCH_ONLY:-}" && " $BENCH_ONLY " != *" $name "* ]]; then return 0; fi
  say "scenario $name ($script, ${lat} ms upstream, rate $r)"
  ran+=("$name")
  k6script="loadtest/k6/$script"
  local base=(RATE="$r" "$@")
  # One upstream per layer the script calls; workflow calls all three.
  local ups=() l=0 m=0 a=0 direct_pid
  case "$kind" in
    llm|mcp|a2a) ups=("${up[$kind$lat]}"); direct_pid="${up_pid[$kind$lat]}" ;;
    flow) ups=("${up[llm$lat]}" "${up[mcp$lat]}" "${up[a2a$lat]}"); m=1; a=2; direct_pid="${up_pid[llm$lat]}" ;;
  esac
  urls() { echo "LLM_URL=$1/v1" "MCP_URL=$2/mcp" "A2A_URL=$3/"; }
  # shellcheck disable=SC2046
  k6run "$name" direct "$direct_pid" "${base[@]}" MODEL=gpt-4o-mini TOOL=get_forecast \
    $(urls "${ups[$l]}" "${ups[$m]}" "${ups[$a]}")
  floors "${ups[@]}"
  # shellcheck disable=SC2046
  k6run "$name" fiber "${floor_pids[0]}" "${base[@]}" MODEL=gpt-4o-mini TOOL=get_forecast \
    $(urls "${fiber_urls[$l]}" "${fiber_urls[$m]}" "${fiber_urls[$a]}")
  # shellcheck disable=SC2046
  k6run "$name" nethttp "${floor_pids[1]}" "${base[@]}" MODEL=gpt-4o-mini TOOL=get_forecast \
    $(urls "${http_urls[$l]}" "${http_urls[$m]}" "${http_urls[$a]}")
  stop_floors
  k6run "$name" gateway "$gw_pid" "${base[@]}" BASE_URL="$gateway" MODEL="mock-${lat}ms" EMBED_MODEL="mock-${lat}ms" \
    TOOL="m${lat}__get_forecast" AGENT="a${lat}"
  grep VmHWM "/proc/$gw_pid/status" | awk '{print $2}' >"$work/json/$name.rss_kb"
}

# openloop_probe SCENARIO TARGET RATE DURATION ARGS...: one run of the open-loop probe; its summary goes to
# json/openloop.SCENARIO.TARGET.json (the gateway's is among the *.gateway.json whose calls the span count sums).
openloop_probe() {
  local scen="$1" target="$2" r="$3" d="$4"; shift 4
  local log="$work/log/openloop.$scen.$target.txt"
  timeout "$((DURATION_FOR_TIMEOUT + 90))" "$bin/openloop" --rate "$r" --duration "$d" \
    --json "$work/json/openloop.$scen.$target.json" "$@" >"$log" || say "openloop: $scen calls to $target failed"
  cat "$log" >&2
}

# openloop_scenario SCENARIO RATE DURATION UPSTREAM PATH GATEWAY_URL DIRECT_NAME GATEWAY_NAME ARGS...: the probe
# against UPSTREAM+PATH, a fiber floor in front of UPSTREAM and GATEWAY_URL, one after the other. @NAME@ in ARGS
# is the model or tool as the target names it (DIRECT_NAME for the mock and the floor).
openloop_scenario() {
  local scen="$1" r="$2" d="$3" upstream="$4" path="$5" gw_url="$6" direct_name="$7" gw_name="$8" name="openloop-$1"
  shift 8
  say "$scen at $r/s for $d from the open-loop probe: direct, fiber floor, gateway"
  openloop_probe "$scen" direct "$r" "$d" --url "$upstream$path" "${@//@NAME@/$direct_name}"
  floors "$upstream"
  openloop_probe "$scen" fiber "$r" "$d" --url "${fiber_urls[0]}$path" "${@//@NAME@/$direct_name}"
  stop_floors
  openloop_probe "$scen" gateway "$r" "$openloop_gateway_duration" --url "$gw_url" --key "$api_key" --phase "$span_flush" "${@//@NAME@/$gw_name}"
}

# openloop: the gateway's latency goals, measured by the Go open-loop probe (loadtest/cmd/openloop) against the 0 ms
# mocks, a fiber floor and the gateway: chat JSON at $chat_rate, then at $rate streamed chat (time to first byte), MCP
# tools/call stateless (2026-07-28) and in one session (2025-11-25), and A2A SendMessage, each with the headers and
# body the k6 scripts send, except that every call has the same JSON-RPC ID and message ID. k6 takes about half a
# core at 1,000 requests/s; the probe a small fraction, so these latencies show what k6's own CPU hides. The direct
# and floor runs of chat last $duration, the others 5/8 of it (5 s, 2,500 calls, by default) to keep `make loadtest`
# short. Every gateway run lasts $openloop_gateway_duration, three span flushes ($span_flush apart), so each
# run pays for the same share of flushes, and histograms its slow calls by phase of the flush interval.
# The gateway's span flush interval with ClickHouse (storage.ClickHouseSpanFlushInterval): the probe's gateway runs
# last three of them and histogram slow calls by their phase.
span_flush=5s openloop_gateway_duration=15s
# The chat body of the probe's runs; @NAME@ is the model as each target names it.
probe_chat='{"model":"@NAME@","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}'
openloop_run() {
  if [[ -n "${BENCH_ONLY:-}" && " $BENCH_ONLY " != *" openloop "* && " $BENCH_ONLY " != *" chat-openloop "* ]]; then
    return 0
  fi
  local short
  short="$(awk -v d="$DURATION_FOR_TIMEOUT" 'BEGIN{ s = d * 5 / 8; print (s < 1 ? 1 : s) "s" }')"
  # The fiber floor streams an answer only when the body has "stream":true without a space, as here.
  local stream='{"model":"@NAME@","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"stream":true}'
  local stateless='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"@NAME@","arguments":{"city":"Paris"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}'
  local session='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"@NAME@","arguments":{"city":"Paris"},"_meta":{}}}'
  local init='{"jsonrpc":"2.0","id":"init-1","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"switchboard-openloop","version":"1.0.0"}}}'
  local send='{"jsonrpc":"2.0","id":"a2a-1","method":"SendMessage","params":{"message":{"messageId":"m-1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}'
  local accept='Accept: application/json, text/event-stream'
  openloop_scenario chat "$chat_rate" "$duration" "${up[llm0]}" /v1/chat/completions "$gateway/v1/chat/completions" \
    gpt-4o-mini mock-0ms --body "$probe_chat"
  openloop_scenario stream "$rate" "$short" "${up[llm0]}" /v1/chat/completions "$gateway/v1/chat/completions" \
    gpt-4o-mini mock-0ms --body "$stream" --ttfb
  openloop_scenario mcp-stateless "$rate" "$short" "${up[mcp0]}" /mcp "$gateway/mcp" get_forecast m0__get_forecast \
    --body "$stateless" --header "$accept" --header 'MCP-Protocol-Version: 2026-07-28' --header 'Mcp-Method: tools/call' \
    --header 'Mcp-Name: @NAME@'
  openloop_scenario mcp-session "$rate" "$short" "${up[mcp0]}" /mcp "$gateway/mcp" get_forecast m0__get_forecast \
    --body "$session" --header "$accept" --header 'MCP-Protocol-Version: 2025-11-25' --init-body "$init"
  openloop_scenario a2a "$rate" "$short" "${up[a2a0]}" / "$gateway/a2a/a0" - - --body "$send" --header 'A2A-Version: 1.0'
  openloop_ran=1 openloop_short="$short"
}

# saturation_probe: chat JSON from the probe's closed loop (--workers: each worker sends its next call as soon as
# the last one answered), $sat_probe_duration per run: the mock and the net/http floor once, then the fiber floor
# and the gateway in turn, $sat_probe_rounds times each, so that the machine's drift (on a shared box, the same
# floor's maximum moves by a fifth between minutes) falls on both alike and each round gives one ratio. k6's ramp
# above runs out of its own CPU near the fiber floor's limit on a small machine (the mock alone then answers no
# faster than the floor), so this is where the proxies' own maximum shows. CPU is the target process's and
# ClickHouse's user+system time over each run.
sat_probe_duration=6s sat_probe_workers=64 sat_probe_rounds=3
saturation_probe() {
  if [[ -n "${BENCH_ONLY:-}" && " $BENCH_ONLY " != *" saturation "* && " $BENCH_ONLY " != *" saturation-probe "* ]]; then
    return 0
  fi
  say "saturation from the closed-loop probe ($sat_probe_workers workers, $sat_probe_duration each): direct, net/http floor, then fiber floor and gateway in turn $sat_probe_rounds times"
  local run target url pid model mark out name=saturation-probe
  floors "${up[llm0]}"
  local runs=(1:direct 1:nethttp) round
  for round in $(seq "$sat_probe_rounds"); do runs+=("$round:fiber" "$round:gateway"); done
  for run in "${runs[@]}"; do
    round="${run%%:*}" target="${run#*:}"
    case "$target" in
      direct) url="${up[llm0]}"; pid="${up_pid[llm0]}"; model=gpt-4o-mini ;;
      fiber) url="${fiber_urls[0]}"; pid="${floor_pids[0]}"; model=gpt-4o-mini ;;
      nethttp) url="${http_urls[0]}"; pid="${floor_pids[1]}"; model=gpt-4o-mini ;;
      gateway) url="$gateway"; pid="$gw_pid"; model=mock-0ms ;;
    esac
    # json/*.gateway.json is every run's gateway calls, for the span count: rounds keep that suffix.
    out="$work/json/satprobe-$round.$target.json"
    mark="$(cpu_mark "$pid")"
    timeout "$(( $(secs_of "$sat_probe_duration") + 60 ))" "$bin/openloop" --url "$url/v1/chat/completions" \
      --key "$api_key" --workers "$sat_probe_workers" --duration "$sat_probe_duration" --body "${probe_chat/@NAME@/$model}" \
      --json "$out" >&2 || say "saturation probe: calls to $target failed"
    [[ -s "$out" ]] && add_cpu "$out" "$pid" "$mark"
  done
  stop_floors
  sat_probe_ran=1
}

ran=()
openloop_ran="" sat_probe_ran=""
DURATION_FOR_TIMEOUT="$duration_secs"
common=(SCENARIO=constant DURATION="$duration")
# SCENARIOS (names for BENCH_ONLY): chat chat-50ms stream embeddings mcp-stateless mcp-session a2a workflow
# openloop (the whole open-loop probe: chat, stream, MCP and A2A; chat-openloop is the same) saturation (k6's ramp
# and the closed-loop probe's; saturation-probe runs only the latter)
scenario chat chat.js 0 llm "$chat_rate" "${common[@]}"
scenario chat-50ms chat.js 50 llm "$chat_rate" "${common[@]}"
scenario stream chat-stream.js 0 llm "$rate" "${common[@]}"
scenario embeddings embeddings.js 0 llm "$rate" "${common[@]}"
scenario mcp-stateless mcp.js 0 mcp "$rate" "${common[@]}" MCP_PROTOCOL=2026-07-28
scenario mcp-session mcp.js 0 mcp "$rate" "${common[@]}" MCP_PROTOCOL=2025-11-25
scenario a2a a2a.js 0 a2a "$rate" "${common[@]}"
scenario workflow workflow.js 50 flow "$flow_rate" "${common[@]}"
openloop_run
DURATION_FOR_TIMEOUT="$sat_duration_secs"
scenario saturation chat.js 0 llm 500 SCENARIO=ramp DURATION="$sat_duration" MAX_RATE="$sat_max" MAX_VUS=256 \
  P99_MS=60000
saturation_probe

# --- spans -------------------------------------------------------------------------------------------------
rss_kb="$(grep VmHWM "/proc/$gw_pid/status" | awk '{print $2}')"
say "stopping the gateway (it flushes its spans on SIGTERM) ..."
stop_pid "$gw_pid"
# A call leaves one span for itself, plus one child per upstream attempt when an llm call needed more than one or
# its attempt failed; the table compares the calls' own spans with the calls k6 sent and shows any attempt spans
# next to them.
spans_in() {
  ch "SELECT countIf(name NOT LIKE 'attempt %'), countIf(name LIKE 'attempt %') FROM $db.spans
      WHERE start_ns >= $1 AND start_ns <= $2" | awk '{ printf "%s", $1; if ($2 > 0) printf " (+%s attempt spans)", $2 }'
}
ch "SELECT layer, name, count() FROM $db.spans GROUP BY layer, name ORDER BY layer, name" >"$work/spans-by-name.tsv"

# --- table -------------------------------------------------------------------------------------------------
ms() { jq -r "$1 // empty | . * 100 | round / 100" "$2" 2>/dev/null; }
# pct, for jq: a summary's error_rate (the share of failed calls, call_failed) as a percentage; "-" when the run made
# no call (null).
pct='def pct: if . == null then "-" else . * 10000 | round / 100 | tostring + "%" end;'
summary="$results/summary.md"
{
  echo "# Switchboard load test — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "$(nproc) cores, $(go version | awk '{print $3}'), k6 $(k6 version 2>/dev/null | awk 'NR==1{print $2}'); mocks, floors, gateway, ClickHouse and k6 on one machine, all on 127.0.0.1."
  echo "Gateway: governance (key, ACL globs, rpm/tpm/parallel limits, budgets) and tracing to ClickHouse on; log level info."
  echo "Latencies in ms (p50 / p99 of http_req_duration, streamed chat: time to first byte). Added = gateway − direct; the fiber floor's added latency (floor − direct) is the cost of any proxy hop on this machine. Gateway errors = the share of calls that failed, on their HTTP status or in the protocol's answer (JSON-RPC error, MCP isError, failed A2A task)."
  echo
  echo "| scenario | upstream | rate/s | direct p50/p99 | fiber floor p50/p99 | net/http floor p50/p99 | gateway p50/p99 | added p50/p99 | fiber floor added p50/p99 | gateway errors | gateway CPU ms/call | ClickHouse CPU ms/call | gateway peak RSS | call spans / calls sent |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for name in "${ran[@]}"; do
    f="$work/json/$name.gateway.json"
    [[ "$name" == saturation ]] && continue
    sel='.all'; [[ "$(jq -r .script "$f")" == chat-stream ]] && sel='.ttfb'
    # A run that made no call has null latencies: its cells show "-".
    pair() {
      local j="$work/json/$name.$1.json"
      [[ -s "$j" && "$(jq "$sel != null" "$j")" == true ]] || { echo "-"; return; }
      echo "$(ms "$sel.p50" "$j") / $(ms "$sel.p99" "$j")"
    }
    # over TARGET: TARGET's p50 / p99 minus direct's.
    over() {
      local j="$work/json/$name.$1.json" d="$work/json/$name.direct.json"
      [[ -s "$j" ]] || { echo "-"; return; }
      jq -rn --slurpfile g "$j" --slurpfile d "$d" "def r2: . * 100 | round / 100;
        (\$g[0]$sel) as \$x | (\$d[0]$sel) as \$y |
        if \$x == null or \$y == null then \"-\" else \"\\(\$x.p50 - \$y.p50 | r2) / \\(\$x.p99 - \$y.p99 | r2)\" end"
    }
    w0="$(jq '.window_ns[0]' "$f")"; w1="$(jq '.window_ns[1]' "$f")"
    spans="$(spans_in "$w0" "$w1")"
    upstream=0ms; [[ "$name" == *50ms || "$name" == workflow ]] && upstream=50ms
    echo "| $name | $upstream | $(jq -r .rate "$f") | $(pair direct) | $(pair fiber) | $(pair nethttp) | $(pair gateway) | $(over gateway) | $(over fiber) |" \
      "$(jq -r "$pct"' .error_rate | pct' "$f") |" \
      "$(jq -r 'if .calls > 0 then .cpu_ms / .calls * 1000 | round / 1000 else "-" end' "$f") |" \
      "$(jq -r 'if .calls > 0 then .clickhouse_cpu_ms / .calls * 1000 | round / 1000 else "-" end' "$f") |" \
      "$(( $(cat "$work/json/$name.rss_kb") / 1024 )) MB |" \
      "$spans / $(jq -r .calls "$f") |"
  done
  if [[ -n "$openloop_ran" ]]; then
    echo
    echo "The gateway's latency goals, measured by \`loadtest/cmd/openloop\`, a Go open-loop client that needs a small fraction of k6's CPU: latency in ms from each call's scheduled start (streamed chat: to the first body byte); added = that run − direct, in the same benchmark; 0 ms mocks. Direct and floor runs last $duration for chat, $openloop_short for the others; every gateway run lasts $openloop_gateway_duration (three span flushes)."
    echo
    echo "| scenario | rate/s | goal (gateway added) | direct p50 / p99 | fiber floor p50 / p99 | gateway p50 / p99 | fiber floor added p50 / p99 | gateway added p50 / p99 | gateway p99.9 / max | errors direct / floor / gateway |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    declare -A goal=([chat]="p50 ≤ 0.3, p99 ≤ 1" [stream]="TTFB p99 ≤ 1" [mcp-stateless]="p99 ≤ 2" [mcp-session]="p99 ≤ 2" [a2a]="p99 ≤ 2")
    # or_null FILE: the JSON in FILE, or null when the run wrote none (it could not start, such as a failed initialize).
    or_null() { if [[ -s "$1" ]]; then cat "$1"; else echo null; fi; }
    for scen in chat stream mcp-stateless mcp-session a2a; do
      jq -rn --arg s "$scen" --arg goal "${goal[$scen]}" \
        --argjson d "$(or_null "$work/json/openloop.$scen.direct.json")" \
        --argjson f "$(or_null "$work/json/openloop.$scen.fiber.json")" \
        --argjson g "$(or_null "$work/json/openloop.$scen.gateway.json")" '
        def r2: . * 100 | round / 100;
        def pair(x): if x == null then "-" else "\(x.p50 | r2) / \(x.p99 | r2)" end;
        def added(x): if x == null or $d == null then "-" else "\((x.p50 - $d.p50) | r2) / \((x.p99 - $d.p99) | r2)" end;
        def errs(x): if x == null then "-" else x.errors | tostring end;
        "| \($s) | \([$d, $f, $g] | map(select(. != null)) | first // {rate: "-"} | .rate) | \($goal) | " +
        "\(pair($d)) | \(pair($f)) | \(pair($g)) | \(added($f)) | \(added($g)) | " +
        "\(if $g == null then "-" else "\($g.p999 | r2) / \($g.max | r2)" end) | \(errs($d)) / \(errs($f)) / \(errs($g)) |"'
    done
    echo
    echo "Gateway calls over 3 ms by start time modulo $span_flush (the span flush interval with ClickHouse), in 20 buckets:"
    echo
    for scen in chat stream mcp-stateless mcp-session a2a; do
      echo "- $scen: $(sed -n 's/.*in 20 buckets: //p' "$work/log/openloop.$scen.gateway.txt" 2>/dev/null)"
    done
  fi
  if [[ -s "$work/json/saturation.gateway.json" ]]; then
    echo
    echo "Saturation (chat JSON, 0 ms upstream, arrival rate ramped to $sat_max/s over ${sat_duration}; max RPS = completed requests/s in the final third; CPU = the proxy process's user+system time per request over the whole run; ClickHouse CPU = the ClickHouse server's, which only the gateway's spans give work):"
    echo
    echo "| target | max RPS | % of fiber floor | CPU ms/req | × fiber floor CPU | ClickHouse CPU ms/req | p50/p99 at saturation | errors |"
    echo "|---|---|---|---|---|---|---|---|"
    fib="$work/json/saturation.fiber.json"
    for t in direct fiber nethttp gateway; do
      j="$work/json/saturation.$t.json"
      [[ -s "$j" ]] || continue
      jq -r --slurpfile f "$fib" --arg t "$t" "$pct"'
        def r2: . * 100 | round / 100;
        def cpu(x): if ($t == "direct") then null else (x.cpu_ms / x.requests) end;
        "| \($t) | \(.max_rps | round) | \((.max_rps / $f[0].max_rps * 100) | round)% | " +
        "\(if $t == "direct" then "(mock)" else (cpu(.) | . * 1000 | round / 1000 | tostring) end) | " +
        "\(if $t == "direct" then "-" else ((cpu(.) / cpu($f[0])) | r2 | tostring) end) | " +
        "\(.clickhouse_cpu_ms / .requests | . * 1000 | round / 1000) | " +
        "\(if .all == null then "-" else "\(.all.p50 | r2) / \(.all.p99 | r2)" end) | \(.error_rate | pct) |"' "$j"
    done
  fi
  if [[ -n "$sat_probe_ran" && -s "$work/json/satprobe-1.fiber.json" ]]; then
    echo
    echo "Saturation from the closed-loop probe (\`openloop --workers $sat_probe_workers\`, chat JSON, 0 ms upstream, $sat_probe_duration per run; the fiber floor and the gateway ran in turn, $sat_probe_rounds rounds each; max RPS = calls answered per second, the median of the rounds, with each round's in brackets; % of fiber floor = the median of each round's ratio to the fiber floor's run in the same round; CPU = the process's user+system time per call over all its runs; the direct row is the mock alone):"
    echo
    echo "| target | max RPS (rounds) | % of fiber floor (rounds) | CPU ms/req | × fiber floor CPU | ClickHouse CPU ms/req | p50/p99 (median round) | errors |"
    echo "|---|---|---|---|---|---|---|---|"
    # Each run's JSON with its round and target, for one jq over all of them.
    tagged=()
    for f in "$work"/json/satprobe-*.json; do
      n="${f##*/satprobe-}" && n="${n%.json}"
      jq -c --argjson round "${n%%.*}" --arg target "${n#*.}" '. + {round: $round, target: $target}' "$f" >"$f.tagged" &&
        tagged+=("$f.tagged")
    done
    for t in direct fiber nethttp gateway; do
      compgen -G "$work/json/satprobe-*.$t.json" >/dev/null || continue
      jq -rs --arg t "$t" '
        def r2: . * 100 | round / 100;
        def median: sort | .[length / 2 | floor];
        def cpu: (map(.cpu_ms) | add) / (map(.calls) | add);
        (map(select(.target == "fiber"))) as $f | (map(select(.target == $t)) | sort_by(.round)) as $r |
        ($r | map(.rps) | median) as $rps | ($r | sort_by(.rps) | .[length / 2 | floor]) as $mid |
        ($r | map(.round as $n | .rps / ($f[] | select(.round == $n) | .rps) * 100 | round)) as $pct |
        "| \($t) | \($rps | round) (\($r | map(.rps | round | tostring) | join(", "))) | " +
        "\($pct | median)% (\($pct | map(tostring + "%") | join(", "))) | \($r | cpu | . * 1000 | round / 1000) | " +
        "\(if $t == "direct" then "-" else (($r | cpu) / ($f | cpu) | r2 | tostring) end) | " +
        "\(($r | map(.clickhouse_cpu_ms) | add) / ($r | map(.calls) | add) | . * 1000 | round / 1000) | " +
        "\($mid.p50 | r2) / \($mid.p99 | r2) | \($r | map(.errors) | add) |"' "${tagged[@]}"
    done
  fi
  echo
  echo "Gateway peak RSS (VmHWM) over the whole run: $(( rss_kb / 1024 )) MB."
  total_calls="$(jq -s 'map(.calls) | add' "$work"/json/*.gateway.json)"
  total_spans="$(spans_in 0 9223372036854775807)"
  echo "Call spans in ClickHouse after the gateway's shutdown flush: $total_spans; calls sent to the gateway: $total_calls."
  echo
  echo "Spans by layer and name:"
  echo
  echo '```'
  cat "$work/spans-by-name.tsv"
  echo '```'
} >"$summary"
cat "$summary"
say "wrote $summary (raw k6 summaries and logs in $work)"
