# Process handling (and duration parsing) shared by loadtest/bench/run.sh and loadtest/soak/run.sh; sourced, not run.
# The sourcing script sets $work (its scratch folder, with log/ inside), $log_tag (prefix of its messages) and,
# for start_gateway, $bin (where the switchboard binary is) and $gateway_addr; for gateway_policy, $api_key, $ch_port
# and $db.

say() { echo "$log_tag: $*" >&2; }
fail() { say "error: $*"; exit 1; }

# secs_of DURATION: the whole seconds (rounded up) in a k6 duration made of h, m, s and ms parts (30s, 1h30m,
# 1m30s, 500ms), the form the k6 scripts accept; anything else stops the run.
secs_of() {
  awk -v d="$1" 'BEGIN {
    rest = d
    while (rest != "") {
      if (!match(rest, /^[0-9]+(\.[0-9]+)?(ms|h|m|s)/)) exit 1
      part = substr(rest, 1, RLENGTH); rest = substr(rest, RLENGTH + 1)
      unit = part; sub(/^[0-9.]+/, "", unit)
      total += part * (unit == "h" ? 3600 : unit == "m" ? 60 : unit == "ms" ? 0.001 : 1)
    }
    if (total <= 0) exit 1
    print (total == int(total) ? total : int(total) + 1)
  }' || fail "not a duration: \"$1\" (use h, m, s and ms parts: 30s, 2m, 1h30m, 500ms)"
}

# --- processes we start, stopped by pid on exit ---------------------------------------------------------
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# start NAME CMD... runs CMD in the background and waits (10 s at most) for the URL it prints on stdout.
started_url=""
start() {
  local name="$1"; shift
  # Removed first: the child truncates the file only after the fork, so a stale URL could be read.
  rm -f "$work/log/$name.out"
  "$@" >"$work/log/$name.out" 2>"$work/log/$name.err" &
  local pid=$!
  pids+=("$pid")
  local i
  for i in $(seq 100); do
    if [[ -s "$work/log/$name.out" ]]; then
      started_url="$(head -n1 "$work/log/$name.out")"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$work/log/$name.err" >&2; fail "$name exited"; }
    sleep 0.1
  done
  fail "$name printed no URL within 10s"
}

# start_gateway CONFIG runs the gateway on $gateway_addr and waits (15 s at most) until /readyz answers; it sets
# gw_pid and gateway (the base URL).
start_gateway() {
  say "starting the gateway on $gateway_addr ..."
  "$bin/switchboard" serve --config "$1" >"$work/log/gateway.out" 2>"$work/log/gateway.err" &
  gw_pid=$!
  pids+=("$gw_pid")
  gateway="http://$gateway_addr"
  local i
  for i in $(seq 150); do
    curl -fsS "$gateway/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$gw_pid" 2>/dev/null || { tail -n 20 "$work/log/gateway.err" >&2; fail "gateway exited"; }
    sleep 0.1
  done
  fail "gateway not ready within 15s"
}

# gateway_policy NAME ALLOW prints the governance, trace and storage blocks of the benchmark's and the soak's gateway
# config: one team and one key, both called NAME, the key ($api_key) allowed ALLOW (a YAML flow map). Every kind of
# limit and budget is on, so the run pays for checking them, and all are set too high to refuse anything. Spans go
# to the ClickHouse on $ch_port, database $db, spilling under $work.
gateway_policy() {
  cat <<EOF
governance:
  secret: "$1-hmac-secret-0000000000000000"
  admin_key: "sk-sb-$1-admin-000000000000000000000"
  teams:
    - {name: $1, budget: {usd: "1000000", period: daily}, limits: {rpm: 50000000}}
  keys:
    - name: $1
      key: "$api_key"
      team: $1
      allow: $2
      limits: {rpm: 50000000, tpm: 50000000, max_parallel: 100000, tool_rpm: 50000000, agent_rpm: 50000000}
      budget: {usd: "1000000", period: daily}
trace: {spill_dir: "$work/spill"}
storage:
  clickhouse: {addr: "127.0.0.1:$ch_port", database: $db}
EOF
}
