#!/usr/bin/env bash
# clickhouse.sh — a throwaway local ClickHouse for tests, the demo and load tests.
#
#   deploy/clickhouse.sh [start]   install Debian's clickhouse-server if missing, start it, wait until it answers
#   deploy/clickhouse.sh stop      stop the server this script started for $CLICKHOUSE_DIR
#   deploy/clickhouse.sh status    exit 0 if that server answers
#
# Env: CLICKHOUSE_PORT (native, default 9000), CLICKHOUSE_HTTP_PORT (default 8123),
#      CLICKHOUSE_DIR (state, default /tmp/switchboard-clickhouse-$CLICKHOUSE_PORT).
# Listens on 127.0.0.1 only, user "default" without password, UTC. Several instances may run side by side
# with different ports and dirs (the storage tests stop and restart their own one).
set -euo pipefail

port="${CLICKHOUSE_PORT:-9000}"
http_port="${CLICKHOUSE_HTTP_PORT:-8123}"
dir="${CLICKHOUSE_DIR:-/tmp/switchboard-clickhouse-$port}"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac   # the server config needs absolute paths
dir="${dir%/}"
host=127.0.0.1
export PATH="$PATH:/usr/sbin:/sbin"   # clickhouse-server lives in /usr/sbin

say() { echo "clickhouse.sh: $*" >&2; }
fail() { say "error: $*"; exit 1; }

[[ "$port" =~ ^[0-9]+$ && "$http_port" =~ ^[0-9]+$ && "$port" != "$http_port" ]] ||
  fail "CLICKHOUSE_PORT and CLICKHOUSE_HTTP_PORT must be two different port numbers"

pidfile="$dir/pid"
conf="$dir/config.xml"

# The pid of the server we started for this dir, if it is still that process.
running_pid() {
  [[ -f "$pidfile" ]] || return 1
  local pid; pid="$(tr -dc 0-9 <"$pidfile")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--config-file=$conf" || return 1
  echo "$pid"
}

answers() { clickhouse-client --host "$host" --port "$port" -q 'SELECT 1' >/dev/null 2>&1; }

install() {
  command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null && return 0
  [[ "$(id -u)" == 0 ]] || fail "clickhouse-server is not installed; run as root (or install clickhouse-server clickhouse-client)"
  say "installing clickhouse-server and clickhouse-client (Debian) ..."
  # A policy-rc.d answering 101 keeps the package from starting its own system-wide server on :9000.
  local policy=/usr/sbin/policy-rc.d ours=""
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >$policy; chmod 755 $policy; ours=1; fi
  local log rc=0; log="$(mktemp)"
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold clickhouse-server clickhouse-client
  } >"$log" 2>&1 || rc=$?
  [[ -z "$ours" ]] || rm -f $policy
  if (( rc != 0 )); then tail -n 30 "$log" >&2; fail "apt-get install failed ($rc)"; fi
  rm -f "$log"
}

write_config() {
  mkdir -p "$dir"/{data,tmp,user_files,format_schemas,log}
  cat >"$conf" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$dir/log/server.log</log><errorlog>$dir/log/error.log</errorlog><size>50M</size><count>2</count></logger>
  <listen_host>$host</listen_host>
  <tcp_port>$port</tcp_port>
  <http_port>$http_port</http_port>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <max_connections>1024</max_connections>
  <max_concurrent_queries>100</max_concurrent_queries>
  <mark_cache_size>268435456</mark_cache_size>
  <max_table_size_to_drop>0</max_table_size_to_drop>
  <max_partition_size_to_drop>0</max_partition_size_to_drop>
  <mlock_executable>false</mlock_executable>
</yandex>
XML
  cat >"$dir/users.xml" <<'XML'
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage><load_balancing>random</load_balancing></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
}

wait_until_ready() {
  local pid="$1" deadline=$((SECONDS + 60))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pidfile"; tail -n 30 "$dir/log/error.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
      fail "clickhouse-server exited while starting"
    fi
    (( SECONDS < deadline )) || { stop >/dev/null; fail "clickhouse-server did not answer within 60s"; }
    sleep 0.3
  done
  echo "clickhouse ready: tcp://$host:$port ($(clickhouse-client --host $host --port "$port" -q 'SELECT version()'))"
}

start() {
  local pid
  if command -v clickhouse-client >/dev/null && pid="$(running_pid)"; then wait_until_ready "$pid"; return; fi
  install
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    # A ClickHouse someone else started serves the tests just as well (each test makes its own database).
    if answers; then
      echo "clickhouse ready: tcp://$host:$port (already running, not started by this script)"
      return
    fi
    fail "port $port is taken by something that is not ClickHouse (set CLICKHOUSE_PORT and CLICKHOUSE_DIR)"
  fi
  write_config
  # Detach every descriptor so a CI pipe is not held open by the server.
  nohup clickhouse-server --config-file="$conf" </dev/null >>"$dir/log/stdout.log" 2>&1 9>&- &
  echo $! >"$pidfile"
  wait_until_ready "$!"
}

stop() {
  local pid
  pid="$(running_pid)" || { rm -f "$pidfile"; say "nothing running for $dir"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$pidfile"
  echo "clickhouse stopped: tcp://$host:$port"
}

# Parallel test packages may call this at once: one at a time per dir.
mkdir -p "$dir"
exec 9>"$dir/lock"
flock -w 120 9 || fail "timed out waiting for $dir/lock"

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) pid="$(running_pid)" && answers ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
