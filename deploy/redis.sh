#!/usr/bin/env bash
# redis.sh — a throwaway local Redis for the multi-replica tests, the demo and load tests.
#
#   deploy/redis.sh [start]   install Debian's redis-server if missing, start it, wait until it answers PING
#   deploy/redis.sh stop      stop the server this script started for $REDIS_DIR
#   deploy/redis.sh status    exit 0 if that server (or one already on $REDIS_PORT) answers
#
# Env: REDIS_PORT (default 6379), REDIS_DIR (state, default .cache/redis-$REDIS_PORT under the repo).
# Listens on 127.0.0.1 only, no password, no persistence (tests own their keys by prefix).
# Tests read SWITCHBOARD_TEST_REDIS=127.0.0.1:$REDIS_PORT.
set -euo pipefail

port="${REDIS_PORT:-6379}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${REDIS_DIR:-$root/.cache/redis-$port}"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
dir="${dir%/}"
host=127.0.0.1
export PATH="$PATH:/usr/sbin:/sbin"

say() { echo "redis.sh: $*" >&2; }
fail() { say "error: $*"; exit 1; }

[[ "$port" =~ ^[0-9]+$ ]] || fail "REDIS_PORT must be a port number"

pidfile="$dir/pid"
conf="$dir/redis.conf"

# The pid of the server we started for this dir, if it is still that process.
running_pid() {
  [[ -f "$pidfile" ]] || return 1
  local pid; pid="$(tr -dc 0-9 <"$pidfile")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "redis-server" || return 1
  echo "$pid"
}

answers() { [[ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null)" == PONG ]]; }

install() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  [[ "$(id -u)" == 0 ]] || fail "redis-server is not installed; run as root (or install redis-server)"
  say "installing redis-server (Debian) ..."
  # A policy-rc.d answering 101 keeps the package from starting its own system-wide server on :6379.
  local policy=/usr/sbin/policy-rc.d ours=""
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >$policy; chmod 755 $policy; ours=1; fi
  local log rc=0; log="$(mktemp)"
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold redis-server
  } >"$log" 2>&1 || rc=$?
  [[ -z "$ours" ]] || rm -f $policy
  if (( rc != 0 )); then tail -n 30 "$log" >&2; fail "apt-get install failed ($rc)"; fi
  rm -f "$log"
}

write_config() {
  mkdir -p "$dir/data"
  cat >"$conf" <<CONF
bind $host
port $port
protected-mode yes
daemonize no
dir $dir/data
logfile $dir/server.log
save ""
appendonly no
maxclients 4096
CONF
}

wait_until_ready() {
  local pid="$1" deadline=$((SECONDS + 30))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pidfile"; tail -n 30 "$dir/server.log" >&2 2>/dev/null || true
      fail "redis-server exited while starting"
    fi
    (( SECONDS < deadline )) || { stop >/dev/null; fail "redis-server did not answer within 30s"; }
    sleep 0.1
  done
  echo "redis ready: $host:$port ($(redis-cli -h $host -p "$port" info server | tr -d '\r' | sed -n 's/^redis_version://p'))"
}

start() {
  local pid
  if command -v redis-cli >/dev/null && pid="$(running_pid)"; then wait_until_ready "$pid"; return; fi
  install
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    # A Redis someone else started serves the tests just as well (each test uses its own key prefix).
    if answers; then
      echo "redis ready: $host:$port (already running, not started by this script)"
      return
    fi
    fail "port $port is taken by something that is not Redis (set REDIS_PORT and REDIS_DIR)"
  fi
  write_config
  # Detach every descriptor so a CI pipe is not held open by the server.
  nohup redis-server "$conf" </dev/null >>"$dir/stdout.log" 2>&1 9>&- &
  echo $! >"$pidfile"
  wait_until_ready "$!"
}

stop() {
  local pid
  pid="$(running_pid)" || { rm -f "$pidfile"; say "nothing running for $dir"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "redis stopped: $host:$port"
}

# Parallel test packages may call this at once: one at a time per dir.
mkdir -p "$dir"
exec 9>"$dir/lock"
flock -w 60 9 || fail "timed out waiting for $dir/lock"

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) command -v redis-cli >/dev/null && answers ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
