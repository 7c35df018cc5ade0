-- Switchboard on a ClickHouse cluster (optional). Apply once with
--   clickhouse-client --multiquery < deploy/clickhouse/cluster.sql
-- after replacing the cluster name `switchboard` with yours (remote_servers in the
-- server config) and making sure the {shard} and {replica} macros are set on every node.
--
-- Local, replicated tables hold the data (*_local); Distributed tables carry the names the
-- gateway uses, so the gateway's own start-up migrations (CREATE ... IF NOT EXISTS) find
-- everything in place and change nothing. Spans are sharded by trace id, so a trace lives on
-- one shard; the rollup and trace index are filled by views on each shard's local span table.
-- Same column types as storage/clickhouse_schema.go; runs on ClickHouse 18.16 and later.

CREATE DATABASE IF NOT EXISTS switchboard ON CLUSTER switchboard;

CREATE TABLE IF NOT EXISTS switchboard.spans_local ON CLUSTER switchboard (
    start DateTime, start_ns Int64,
    trace_id FixedString(16), span_id FixedString(8), parent_span_id FixedString(8),
    layer String, name String, duration_ns Int64, status String, http_status Int32, error String,
    key_id String, key_name String, team String, org String,
    model String, provider String, deployment String, tool_server String, tool String, agent String,
    input_tokens Int64, output_tokens Int64, cached_tokens Int64, cost_nano Int64,
    retries Int32, fallbacks Int32, ttft_ns Int64,
    attr_keys Array(String), attr_values Array(String)
) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/switchboard/spans_local', '{replica}')
PARTITION BY toYYYYMM(start)
ORDER BY (toStartOfHour(start), team, trace_id, span_id);

CREATE TABLE IF NOT EXISTS switchboard.spans ON CLUSTER switchboard AS switchboard.spans_local
ENGINE = Distributed(switchboard, switchboard, spans_local, cityHash64(trace_id));

CREATE TABLE IF NOT EXISTS switchboard.spend_daily_local ON CLUSTER switchboard (
    day DateTime, team String, key_id String, layer String, model String, provider String,
    tool_server String, tool String, agent String,
    cost_nano Int64, requests UInt64, errors UInt64, input_tokens Int64, output_tokens Int64, cached_tokens Int64
) ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/switchboard/spend_daily_local', '{replica}',
    (cost_nano, requests, errors, input_tokens, output_tokens, cached_tokens))
PARTITION BY toYYYYMM(day)
ORDER BY (day, team, key_id, layer, model, provider, tool_server, tool, agent);

CREATE TABLE IF NOT EXISTS switchboard.spend_daily ON CLUSTER switchboard AS switchboard.spend_daily_local
ENGINE = Distributed(switchboard, switchboard, spend_daily_local, rand());

CREATE MATERIALIZED VIEW IF NOT EXISTS switchboard.spend_daily_mv ON CLUSTER switchboard
TO switchboard.spend_daily_local AS
SELECT toDateTime(intDiv(toUInt32(start), 86400) * 86400) AS day,
    team, key_id, layer, model, provider, tool_server, tool, agent,
    sum(cost_nano) AS cost_nano, count() AS requests, countIf(status = 'error') AS errors,
    sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cached_tokens) AS cached_tokens
FROM switchboard.spans_local
GROUP BY day, team, key_id, layer, model, provider, tool_server, tool, agent;

CREATE TABLE IF NOT EXISTS switchboard.trace_index_local ON CLUSTER switchboard (
    trace_id FixedString(16),
    start_min AggregateFunction(min, DateTime),
    start_max AggregateFunction(max, DateTime)
) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/switchboard/trace_index_local', '{replica}')
ORDER BY trace_id;

CREATE TABLE IF NOT EXISTS switchboard.trace_index ON CLUSTER switchboard AS switchboard.trace_index_local
ENGINE = Distributed(switchboard, switchboard, trace_index_local, cityHash64(trace_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS switchboard.trace_index_mv ON CLUSTER switchboard
TO switchboard.trace_index_local AS
SELECT trace_id, minState(start) AS start_min, maxState(start) AS start_max
FROM switchboard.spans_local
GROUP BY trace_id;

CREATE TABLE IF NOT EXISTS switchboard.records_local ON CLUSTER switchboard (
    kind String, id String, data String, deleted UInt8, version Int64
) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/switchboard/records_local', '{replica}', version)
ORDER BY (kind, id);

CREATE TABLE IF NOT EXISTS switchboard.records ON CLUSTER switchboard AS switchboard.records_local
ENGINE = Distributed(switchboard, switchboard, records_local, cityHash64(kind, id));
