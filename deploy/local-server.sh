# local-server.sh — what deploy/clickhouse.sh and deploy/redis.sh share; sourced, not run.
#
# The sourcing script sets: name (for messages), server (the server binary), client (its CLI), packages (Debian
# packages that provide both), host, port, dir (absolute state dir), conf (config file path), cmdline_mark (what the
# running server's command line contains), ready_timeout (s), lock_timeout (s), taken_hint (how to pick another
# port), and defines:
#   answers        exit 0 when a server answers on $host:$port
#   write_config   write $conf (and whatever else the server needs under $dir)
#   launch         start the server in the background (detached from every descriptor)
#   started        print the ready line's detail (e.g. the version)
#   server_logs    list the log files worth showing when the server dies while starting
# Then it calls `local_server_main "$@"`.

say() { echo "$name.sh: $*" >&2; }
fail() { say "error: $*"; exit 1; }

pidfile_path() { echo "$dir/pid"; }

# The pid of the server we started for this dir, if it is still that process.
running_pid() {
  local pidfile; pidfile="$(pidfile_path)"
  [[ -f "$pidfile" ]] || return 1
  local pid; pid="$(tr -dc 0-9 <"$pidfile")"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$cmdline_mark" || return 1
  echo "$pid"
}

install() {
  command -v "$server" >/dev/null && command -v "$client" >/dev/null && return 0
  [[ "$(id -u)" == 0 ]] || fail "$server is not installed; run as root (or install $packages)"
  say "installing $packages (Debian) ..."
  # A policy-rc.d answering 101 keeps the package from starting its own system-wide server.
  local policy=/usr/sbin/policy-rc.d ours=""
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >$policy; chmod 755 $policy; ours=1; fi
  local log rc=0; log="$(mktemp)"
  # shellcheck disable=SC2086 # $packages is a list
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $packages
  } >"$log" 2>&1 || rc=$?
  [[ -z "$ours" ]] || rm -f $policy
  if (( rc != 0 )); then tail -n 30 "$log" >&2; fail "apt-get install failed ($rc)"; fi
  rm -f "$log"
}

wait_until_ready() {
  local pid="$1" deadline=$((SECONDS + ready_timeout))
  until answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$(pidfile_path)"
      # shellcheck disable=SC2046 # a list of files
      tail -n 30 $(server_logs) >&2 2>/dev/null || true
      fail "$server exited while starting"
    fi
    (( SECONDS < deadline )) || { stop >/dev/null; fail "$server did not answer within ${ready_timeout}s"; }
    sleep 0.2
  done
  echo "$name ready: $host:$port ($(started))"
}

start() {
  local pid
  if command -v "$client" >/dev/null && pid="$(running_pid)"; then wait_until_ready "$pid"; return; fi
  install
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    # A server someone else started serves the tests just as well (each test keeps to its own database or keys).
    if answers; then
      echo "$name ready: $host:$port (already running, not started by this script)"
      return
    fi
    fail "port $port is taken by something that is not $name ($taken_hint)"
  fi
  write_config
  launch
  echo $! >"$(pidfile_path)"
  wait_until_ready "$!"
}

stop() {
  local pid
  pid="$(running_pid)" || { rm -f "$(pidfile_path)"; say "nothing running for $dir"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$(pidfile_path)"
  echo "$name stopped: $host:$port"
}

local_server_main() {
  # Parallel test packages may call this at once: one at a time per dir.
  mkdir -p "$dir"
  exec 9>"$dir/lock"
  flock -w "$lock_timeout" 9 || fail "timed out waiting for $dir/lock"
  case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) command -v "$client" >/dev/null && answers ;;
    *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
  esac
}
