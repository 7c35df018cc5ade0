#!/usr/bin/env bash
# clickhouse.sh — a throwaway local ClickHouse for tests, the demo and load tests.
#
#   deploy/clickhouse.sh [start]   install Debian's clickhouse-server if missing, start it, wait until it answers
#   deploy/clickhouse.sh stop      stop the server this script started for $CLICKHOUSE_DIR
#   deploy/clickhouse.sh status    exit 0 if that server (or one already on $CLICKHOUSE_PORT) answers
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

[[ "$port" =~ ^[0-9]+$ && "$http_port" =~ ^[0-9]+$ && "$port" != "$http_port" ]] ||
  { echo "clickhouse.sh: error: CLICKHOUSE_PORT and CLICKHOUSE_HTTP_PORT must be two different port numbers" >&2; exit 1; }

name=clickhouse server=clickhouse-server client=clickhouse-client packages="clickhouse-server clickhouse-client"
conf="$dir/config.xml" cmdline_mark="--config-file=$dir/config.xml"
ready_timeout=60 lock_timeout=120 taken_hint="set CLICKHOUSE_PORT and CLICKHOUSE_DIR"

answers() { clickhouse-client --host "$host" --port "$port" -q 'SELECT 1' >/dev/null 2>&1; }
started() { clickhouse-client --host "$host" --port "$port" -q 'SELECT version()'; }
server_logs() { echo "$dir/log/error.log $dir/log/stdout.log"; }
# Detached from every descriptor so a CI pipe is not held open by the server.
launch() { nohup clickhouse-server --config-file="$conf" </dev/null >>"$dir/log/stdout.log" 2>&1 9>&- & }

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

# shellcheck source=local-server.sh
source "$(dirname "${BASH_SOURCE[0]}")/local-server.sh"
local_server_main "$@"
