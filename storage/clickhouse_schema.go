package storage

import (
	"fmt"
	"strings"
	"time"
)

// The ClickHouse schema is applied at every start; each statement is
// idempotent. It runs on Debian's ClickHouse 18.16 and on current releases:
// no DateTime64, Map, SimpleAggregateFunction or CODEC (TTL only when asked
// for, see auditTTLStatement). start (DateTime) serves partitioning, the sort
// key and bucketing; start_ns keeps the exact time. Buckets are computed from
// unix seconds so they are UTC whatever the server's time zone.
//
// Objects:
//   - spans: one row per span, sorted by hour then team so time-ranged and
//     per-team spend scans read little.
//   - spend_daily_v2 (+ _mv): per-day sums by every spend dimension, with
//     requests and errors counting calls only (see callCondition) and a
//     histogram of call latencies, so spend over whole days never reads spans.
//     It replaces spend_daily (v1 counted retry attempts as requests); v1 is
//     left in place on upgraded databases so older replicas keep working
//     during a rolling upgrade, and is no longer read.
//   - trace_index (+ _mv): first/last start of each trace, so a trace lookup
//     reads only that time slice of spans.
//   - trace_list_v2 (+ _mv): the few columns of each span that the
//     newest-traces list needs, sorted by day then trace, so the list reads
//     only the last days' rows of those columns and a trace's rows lie
//     together. It replaces trace_list, one aggregate row per trace and day:
//     the view's GROUP BY over every insert cost ClickHouse about 3 µs of CPU
//     per span, the plain copy about 0.3 µs. trace_list and its view are left
//     in place on upgraded databases, like spend_daily, and no longer read.
//   - records: governance records; the row with the highest version wins,
//     deleted = 1 is a tombstone.
//   - audit: the audit log, ordered by time.
//   - rollups: since when each rollup holds every span (see rollup.go).
//
// In cluster mode every table is a Replicated* table named <name>_local on
// each node plus a Distributed table under <name> that the gateway reads and
// writes; views read the local spans and feed the local rollups, so each
// shard rolls up its own spans. deploy/clickhouse/cluster.sql is this schema
// generated for cluster "switchboard" (a test keeps it in sync).

// latencyBucket is the histogram bucket of a span's duration: buckets grow
// by 1% (see latency.go), so merging them is a cheap sum and any percentile
// read from them is within 0.5% of the exact value.
const latencyBucket = "toUInt16(if(duration_ns <= 0, 0, round(log(duration_ns) / log(" + latencyBase + "))))"

// latencyHistogram is the (buckets, calls) pair of arrays of the call spans
// of a group, as sumMap gives it: sorted by bucket.
const latencyHistogram = "sumMap([" + latencyBucket + "], [toUInt64(" + callCondition + ")])"

// callCondition is true for spans that stand for a client call. The llm
// package records the upstream attempts of a retried or failed call as child
// spans named "attempt <deployment>" (llm/router.go) that carry no cost or
// tokens; counting those would count a retried call twice.
const callCondition = "NOT (layer = 'llm' AND substring(name, 1, 8) = 'attempt ')"

// chTable is one table of the schema.
type chTable struct {
	name    string
	columns string
	engine  string // MergeTree family name without "Replicated"
	params  string // engine parameters after the replication ones
	extra   string // PARTITION BY / ORDER BY clauses
	shardBy string // sharding key of the Distributed table in cluster mode
}

// chView is a materialized view feeding table to from the spans of from.
type chView struct {
	name, to, from, query string
}

var chTables = []chTable{
	{name: "spans", columns: `start DateTime,
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
		attr_values Array(String)`,
		engine: "MergeTree", extra: `PARTITION BY toYYYYMM(start)
	ORDER BY (toStartOfHour(start), team, trace_id, span_id)`, shardBy: "cityHash64(trace_id)"},
	{name: "spend_daily_v2", columns: `day DateTime,
		team String,
		key_id String,
		layer String,
		model String,
		provider String,
		tool_server String,
		tool String,
		agent String,
		spans UInt64,
		cost_nano Int64,
		requests UInt64,
		errors UInt64,
		input_tokens Int64,
		output_tokens Int64,
		cached_tokens Int64,
		latencyMap Nested(bucket UInt16, calls UInt64)`,
		// SummingMergeTree sums the numbers and, by its name ending in Map,
		// the calls per bucket of latencyMap.
		engine: "SummingMergeTree", extra: `PARTITION BY toYYYYMM(day)
	ORDER BY (day, team, key_id, layer, model, provider, tool_server, tool, agent)`, shardBy: "rand()"},
	{name: "trace_index", columns: `trace_id FixedString(16),
		start_min AggregateFunction(min, DateTime),
		start_max AggregateFunction(max, DateTime)`,
		engine: "AggregatingMergeTree", extra: `ORDER BY trace_id`, shardBy: "cityHash64(trace_id)"},
	{name: "trace_list_v2", columns: `day DateTime,
		trace_id FixedString(16),
		start_ns Int64,
		duration_ns Int64,
		status String,
		cost_nano Int64,
		input_tokens Int64,
		output_tokens Int64,
		name String,
		layer String,
		team String,
		key_id String,
		key_name String`,
		engine: "MergeTree", extra: `PARTITION BY toYYYYMM(day)
	ORDER BY (day, trace_id)`, shardBy: "cityHash64(trace_id)"},
	{name: "records", columns: `kind String,
		id String,
		data String,
		deleted UInt8,
		version Int64`,
		engine: "ReplacingMergeTree", params: "version", extra: `ORDER BY (kind, id)`, shardBy: "cityHash64(kind, id)"},
	{name: "audit", columns: `time DateTime,
		time_ns Int64,
		actor String,
		actor_name String,
		team String,
		action String,
		target String,
		rule String,
		status String,
		remote_addr String,
		request_id String,
		detail String`,
		engine: "MergeTree", extra: `PARTITION BY toYYYYMM(time)
	ORDER BY (time, team, actor)`, shardBy: "rand()"},
	{name: "rollups", columns: `name String,
		since_ns Int64`,
		engine: "MergeTree", extra: `ORDER BY name`, shardBy: "rand()"},
}

var chViews = []chView{
	{name: "spend_daily_v2_mv", to: "spend_daily_v2", from: "spans", query: `SELECT toDateTime(intDiv(toUInt32(start), 86400) * 86400) AS day,
		team, key_id, layer, model, provider, tool_server, tool, agent,
		count() AS spans, sum(cost_nano) AS cost_nano,
		countIf(` + callCondition + `) AS requests,
		countIf(status = 'error' AND ` + callCondition + `) AS errors,
		sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cached_tokens) AS cached_tokens,
		tupleElement(` + latencyHistogram + ", 1) AS `latencyMap.bucket`, tupleElement(" + latencyHistogram + ", 2) AS `latencyMap.calls`"},
	{name: "trace_index_mv", to: "trace_index", from: "spans", query: `SELECT trace_id, minState(start) AS start_min, maxState(start) AS start_max`},
	{name: "trace_list_v2_mv", to: "trace_list_v2", from: "spans", query: `SELECT toDateTime(intDiv(toUInt32(start), 86400) * 86400) AS day, trace_id,
		start_ns, duration_ns, status, cost_nano, input_tokens, output_tokens, name, layer, team, key_id, key_name`},
}

// viewGroupBy is the GROUP BY of each view that aggregates, kept apart so
// the query above reads as the columns it produces.
var viewGroupBy = map[string]string{
	"spend_daily_v2_mv": "day, team, key_id, layer, model, provider, tool_server, tool, agent",
	"trace_index_mv":    "trace_id",
}

// chSchema renders the schema for database db; cluster "" is a single node.
// Both names have passed the identifier check.
func chSchema(db, cluster string) []string {
	q := func(name string) string { return "`" + db + "`.`" + name + "`" }
	on := ""
	if cluster != "" {
		on = " ON CLUSTER `" + cluster + "`"
	}
	out := []string{"CREATE DATABASE IF NOT EXISTS `" + db + "`" + on}
	local := func(name string) string {
		if cluster == "" {
			return name
		}
		return name + "_local"
	}
	for _, t := range chTables {
		engine, params := t.engine, t.params
		if cluster != "" {
			engine = "Replicated" + engine
			// The database name is spelled out rather than left to the
			// {database} macro, which older servers do not expand.
			repl := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s', '{replica}'", db, local(t.name))
			params = strings.TrimSuffix(repl+", "+params, ", ")
		}
		if params != "" {
			engine += "(" + params + ")"
		}
		out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s (\n\t\t%s\n\t) ENGINE = %s\n\t%s",
			q(local(t.name)), on, t.columns, engine, t.extra))
		if cluster != "" {
			out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s\n\tENGINE = Distributed(`%s`, `%s`, `%s`, %s)",
				q(t.name), on, q(local(t.name)), cluster, db, local(t.name), t.shardBy))
		}
	}
	for _, v := range chViews {
		stmt := fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s AS\n\t%s\n\tFROM %s",
			q(v.name), on, q(local(v.to)), v.query, q(local(v.from)))
		if by, ok := viewGroupBy[v.name]; ok {
			stmt += "\n\tGROUP BY " + by
		}
		out = append(out, stmt)
	}
	return out
}

// auditTTLStatement sets the audit log's retention. TTL needs ClickHouse
// 19.6 or later (18.16 rejects it), so it is only issued when configured.
func auditTTLStatement(db, cluster string, ttl time.Duration) string {
	table, on := "`"+db+"`.`audit`", ""
	if cluster != "" {
		table, on = "`"+db+"`.`audit_local`", " ON CLUSTER `"+cluster+"`"
	}
	return fmt.Sprintf("ALTER TABLE %s%s MODIFY TTL time + INTERVAL %d SECOND", table, on, int64(ttl/time.Second))
}
