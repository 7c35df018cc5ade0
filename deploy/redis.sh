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

[[ "$port" =~ ^[0-9]+$ ]] || { echo "redis.sh: error: REDIS_PORT must be a port number" >&2; exit 1; }

name=redis server=redis-server client=redis-cli packages=redis-server
# redis-server renames its process to "redis-server host:port", so the config path is not on its command line.
conf="$dir/redis.conf" cmdline_mark="redis-server $host:$port"
ready_timeout=30 lock_timeout=60 taken_hint="set REDIS_PORT and REDIS_DIR"

answers() { [[ "$(redis-cli -h "$host" -p "$port" ping 2>/dev/null)" == PONG ]]; }
started() { redis-cli -h "$host" -p "$port" info server | tr -d '\r' | sed -n 's/^redis_version://p'; }
server_logs() { echo "$dir/server.log"; }
# Detached from every descriptor so a CI pipe is not held open by the server.
launch() { nohup redis-server "$conf" </dev/null >>"$dir/stdout.log" 2>&1 9>&- & }

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

# shellcheck source=local-server.sh
source "$(dirname "${BASH_SOURCE[0]}")/local-server.sh"
local_server_main "$@"
