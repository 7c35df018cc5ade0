package storage

import "strings"

// clickHouseSchema is applied at every start; each statement is idempotent.
// It runs on Debian's ClickHouse 18.16 and on current releases: no
// DateTime64, Map, TTL or CODEC. start (DateTime) serves partitioning, the
// sort key and bucketing; start_ns keeps the exact time. Buckets are computed
// from unix seconds so they are UTC whatever the server's time zone.
//
// Table roles:
//   - spans: one row per span, sorted by hour then team so time-ranged and
//     per-team spend scans read little.
//   - spend_daily (+ spend_daily_mv): per-day sums by every spend dimension,
//     so spend over whole days never touches spans.
//   - trace_index (+ trace_index_mv): first/last start of each trace, so a
//     trace lookup reads only that time slice of spans.
//   - records: governance records; the row with the highest version wins,
//     deleted = 1 is a tombstone.
//
// deploy/clickhouse/cluster.sql creates the same objects for a cluster.
var clickHouseSchema = []string{
	`CREATE DATABASE IF NOT EXISTS {db}`,
	`CREATE TABLE IF NOT EXISTS {db}.spans (
		start DateTime,
		start_ns Int64,
		trace_id FixedString(16),
		span_id FixedString(8),
		parent_span_id FixedString(8),
		layer String,
		name String,
		duration_ns Int64,
		status String,
		http_status Int32,
		error String,
		key_id String,
		key_name String,
		team String,
		org String,
		model String,
		provider String,
		deployment String,
		tool_server String,
		tool String,
		agent String,
		input_tokens Int64,
		output_tokens Int64,
		cached_tokens Int64,
		cost_nano Int64,
		retries Int32,
		fallbacks Int32,
		ttft_ns Int64,
		attr_keys Array(String),
		attr_values Array(String)
	) ENGINE = MergeTree
	PARTITION BY toYYYYMM(start)
	ORDER BY (toStartOfHour(start), team, trace_id, span_id)`,
	`CREATE TABLE IF NOT EXISTS {db}.spend_daily (
		day DateTime,
		team String,
		key_id String,
		layer String,
		model String,
		provider String,
		tool_server String,
		tool String,
		agent String,
		cost_nano Int64,
		requests UInt64,
		errors UInt64,
		input_tokens Int64,
		output_tokens Int64,
		cached_tokens Int64
	) ENGINE = SummingMergeTree((cost_nano, requests, errors, input_tokens, output_tokens, cached_tokens))
	PARTITION BY toYYYYMM(day)
	ORDER BY (day, team, key_id, layer, model, provider, tool_server, tool, agent)`,
	`CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.spend_daily_mv TO {db}.spend_daily AS
	SELECT toDateTime(intDiv(toUInt32(start), 86400) * 86400) AS day,
		team, key_id, layer, model, provider, tool_server, tool, agent,
		sum(cost_nano) AS cost_nano, count() AS requests, countIf(status = 'error') AS errors,
		sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cached_tokens) AS cached_tokens
	FROM {db}.spans
	GROUP BY day, team, key_id, layer, model, provider, tool_server, tool, agent`,
	`CREATE TABLE IF NOT EXISTS {db}.trace_index (
		trace_id FixedString(16),
		start_min AggregateFunction(min, DateTime),
		start_max AggregateFunction(max, DateTime)
	) ENGINE = AggregatingMergeTree
	ORDER BY trace_id`,
	`CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_index_mv TO {db}.trace_index AS
	SELECT trace_id, minState(start) AS start_min, maxState(start) AS start_max
	FROM {db}.spans
	GROUP BY trace_id`,
	`CREATE TABLE IF NOT EXISTS {db}.records (
		kind String,
		id String,
		data String,
		deleted UInt8,
		version Int64
	) ENGINE = ReplacingMergeTree(version)
	ORDER BY (kind, id)`,
}

func schemaFor(db string) []string {
	out := make([]string, len(clickHouseSchema))
	for i, s := range clickHouseSchema {
		out[i] = strings.ReplaceAll(s, "{db}", "`"+db+"`")
	}
	return out
}
