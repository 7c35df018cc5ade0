package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// v1Schema is the schema databases were created with before spend_daily_v2,
// trace_list, audit and rollups existed.
var v1Schema = []string{
	"CREATE DATABASE `%[1]s`",
	`CREATE TABLE %[1]s.spans (start DateTime, start_ns Int64, trace_id FixedString(16), span_id FixedString(8),
		parent_span_id FixedString(8), layer String, name String, duration_ns Int64, status String, http_status Int32,
		error String, key_id String, key_name String, team String, org String, model String, provider String,
		deployment String, tool_server String, tool String, agent String, input_tokens Int64, output_tokens Int64,
		cached_tokens Int64, cost_nano Int64, retries Int32, fallbacks Int32, ttft_ns Int64,
		attr_keys Array(String), attr_values Array(String))
	ENGINE = MergeTree PARTITION BY toYYYYMM(start) ORDER BY (toStartOfHour(start), team, trace_id, span_id)`,
	`CREATE TABLE %[1]s.spend_daily (day DateTime, team String, key_id String, layer String, model String, provider String,
		tool_server String, tool String, agent String, cost_nano Int64, requests UInt64, errors UInt64,
		input_tokens Int64, output_tokens Int64, cached_tokens Int64)
	ENGINE = SummingMergeTree((cost_nano, requests, errors, input_tokens, output_tokens, cached_tokens))
	PARTITION BY toYYYYMM(day) ORDER BY (day, team, key_id, layer, model, provider, tool_server, tool, agent)`,
	`CREATE MATERIALIZED VIEW %[1]s.spend_daily_mv TO %[1]s.spend_daily AS
	SELECT toDateTime(intDiv(toUInt32(start), 86400) * 86400) AS day, team, key_id, layer, model, provider, tool_server, tool, agent,
		sum(cost_nano) AS cost_nano, count() AS requests, countIf(status = 'error') AS errors,
		sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cached_tokens) AS cached_tokens
	FROM %[1]s.spans GROUP BY day, team, key_id, layer, model, provider, tool_server, tool, agent`,
	`CREATE TABLE %[1]s.trace_index (trace_id FixedString(16), start_min AggregateFunction(min, DateTime),
		start_max AggregateFunction(max, DateTime)) ENGINE = AggregatingMergeTree ORDER BY trace_id`,
	`CREATE MATERIALIZED VIEW %[1]s.trace_index_mv TO %[1]s.trace_index AS
	SELECT trace_id, minState(start) AS start_min, maxState(start) AS start_max FROM %[1]s.spans GROUP BY trace_id`,
	`CREATE TABLE %[1]s.records (kind String, id String, data String, deleted UInt8, version Int64)
	ENGINE = ReplacingMergeTree(version) ORDER BY (kind, id)`,
}

// olderDatabase is what an upgrade test builds an older version's database
// with: ClickHouse's address, a raw connection, a context bounding the test
// and a fresh database name, dropped afterwards.
func olderDatabase(t *testing.T, version string) (string, clickhouse.Conn, context.Context, string) {
	t.Helper()
	addr := clickHouseAddr(t)
	conn := rawConn(t, addr)
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	db := fmt.Sprintf("sbtest_%s_%d", version, time.Now().UnixNano())
	t.Cleanup(func() { dropDatabase(t, addr, db) })
	return addr, conn, ctx, db
}

// TestClickHouseUpgradeFromV1 opens a database made by the previous schema
// that already holds retried calls: the new rollups start empty, so answers
// about the old spans must come from spans, counting calls, not attempts.
func TestClickHouseUpgradeFromV1(t *testing.T) {
	t.Parallel()
	addr, conn, ctx, db := olderDatabase(t, "v1")
	for _, stmt := range v1Schema {
		if err := conn.Exec(ctx, fmt.Sprintf(stmt, db)); err != nil {
			t.Fatalf("v1 schema: %v", err)
		}
	}
	base := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var old []trace.Span
	for i := range 10 {
		call := trace.Span{TraceID: trace.TraceID{9, byte(i)}, SpanID: trace.SpanID{9, byte(i)}, Layer: trace.LayerLLM, Name: "chat m",
			Start: base.Add(time.Duration(i) * time.Hour), Duration: time.Duration(i+1) * time.Second, Status: trace.StatusOK,
			Team: "t", Model: "m", CostNanoUSD: 1_000_000_007}
		attempt := call
		attempt.SpanID, attempt.ParentSpanID, attempt.Name, attempt.Status, attempt.CostNanoUSD = trace.SpanID{8, byte(i)}, call.SpanID, "attempt d#1", trace.StatusError, 0
		old = append(old, call, attempt)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO `"+db+"`.spans (start, start_ns, trace_id, span_id, parent_span_id, layer, name, duration_ns, status, team, model, cost_nano)")
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range old {
		if err := batch.Append(sp.Start, sp.Start.UnixNano(), sp.TraceID[:], sp.SpanID[:], sp.ParentSpanID[:], string(sp.Layer), sp.Name,
			int64(sp.Duration), string(sp.Status), sp.Team, sp.Model, sp.CostNanoUSD); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}

	s, err := storage.Open(ctx, storage.Config{ClickHouse: &storage.ClickHouseConfig{Addr: addr, Database: db}}, nil)
	if err != nil {
		t.Fatalf("open v1 database: %v", err)
	}
	defer s.Close()
	rows, err := s.Spend(ctx, storage.SpendQuery{GroupBy: storage.GroupModel, Bucket: storage.BucketDay})
	if err != nil {
		t.Fatal(err)
	}
	want := storage.SpendRow{Bucket: base.Truncate(24 * time.Hour), Group: "m", CostNanoUSD: 10_000_000_070, Requests: 10}
	if len(rows) != 1 {
		t.Fatalf("spend after upgrade %+v, want %+v", rows, want)
	}
	// Nearest-rank p50 of 1s..10s is 5s; ClickHouse reads it off a 1% bucket.
	if p50 := rows[0].LatencyP50; p50 < 4975*time.Millisecond || p50 > 5025*time.Millisecond {
		t.Errorf("p50 %v, want 5s ± 0.5%%", p50)
	}
	rows[0].LatencyP50, rows[0].LatencyP95, rows[0].LatencyP99 = 0, 0, 0
	if rows[0] != want {
		t.Fatalf("spend after upgrade %+v, want %+v", rows[0], want)
	}
	list, err := s.RecentTraces(ctx, storage.TraceFilter{From: base.Add(-time.Hour)})
	// Each call succeeded after a failed attempt: no error, as in Spend.
	if err != nil || len(list) != 10 || list[0].Spans != 2 || list[0].Errors != 0 || list[0].Status != trace.StatusOK {
		t.Fatalf("recent traces after upgrade: %+v %v", list, err)
	}
	if err := s.AppendAudit(ctx, []storage.AuditEvent{{Time: time.Now(), Actor: "admin", Action: "config.reload", Status: "ok"}}); err != nil {
		t.Fatalf("audit after upgrade: %v", err)
	}
	var since int64
	if err := conn.QueryRow(ctx, "SELECT min(since_ns) FROM `"+db+"`.rollups").Scan(&since); err != nil || since == 0 {
		t.Fatalf("rollups of an upgraded database must start now: %d %v", since, err)
	}
}

// traceListV1 is how the previous version kept the trace list: one row of
// aggregate states per trace and day, fed by a grouping view.
var traceListV1 = []string{
	`CREATE TABLE %[1]s.trace_list (day DateTime, trace_id FixedString(16), first_ns AggregateFunction(min, Int64),
		last_ns AggregateFunction(max, Int64), spans AggregateFunction(count), errors AggregateFunction(sum, UInt64),
		cost_nano AggregateFunction(sum, Int64), input_tokens AggregateFunction(sum, Int64), output_tokens AggregateFunction(sum, Int64),
		first_name AggregateFunction(argMin, String, Int64), first_layer AggregateFunction(argMin, String, Int64),
		first_team AggregateFunction(argMin, String, Int64), first_key_id AggregateFunction(argMin, String, Int64),
		first_key_name AggregateFunction(argMin, String, Int64), teams AggregateFunction(groupUniqArray, String),
		key_ids AggregateFunction(groupUniqArray, String), layers AggregateFunction(groupUniqArray, String))
	ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(day) ORDER BY (day, trace_id)`,
	`CREATE MATERIALIZED VIEW %[1]s.trace_list_mv TO %[1]s.trace_list AS
	SELECT toDateTime(intDiv(toUInt32(start), 86400) * 86400) AS day, trace_id,
		minState(start_ns) AS first_ns, maxState(start_ns + duration_ns) AS last_ns, countState() AS spans,
		sumState(toUInt64(status = 'error')) AS errors, sumState(cost_nano) AS cost_nano,
		sumState(input_tokens) AS input_tokens, sumState(output_tokens) AS output_tokens,
		argMinState(name, start_ns) AS first_name, argMinState(layer, start_ns) AS first_layer, argMinState(team, start_ns) AS first_team,
		argMinState(key_id, start_ns) AS first_key_id, argMinState(key_name, start_ns) AS first_key_name,
		groupUniqArrayState(team) AS teams, groupUniqArrayState(key_id) AS key_ids, groupUniqArrayState(layer) AS layers
	FROM %[1]s.spans GROUP BY day, trace_id`,
}

// TestClickHouseUpgradeFromTraceListV1 opens a database of the previous
// version, whose trace list was complete from the beginning: trace_list_v2
// starts empty, so the traces written before the upgrade are listed from
// spans, and those written after it from trace_list_v2. The old view stays,
// so a replica not yet upgraded still sees new traces.
func TestClickHouseUpgradeFromTraceListV1(t *testing.T) {
	t.Parallel()
	addr, conn, ctx, db := olderDatabase(t, "tl1")
	open := func() storage.Store {
		t.Helper()
		s, err := storage.Open(ctx, storage.Config{ClickHouse: &storage.ClickHouseConfig{Addr: addr, Database: db}}, nil)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	}
	// The previous version's database: today's schema without trace_list_v2,
	// with trace_list, and rollups complete from the beginning.
	open().Close()
	prev := []string{"DROP TABLE %[1]s.trace_list_v2_mv", "DROP TABLE %[1]s.trace_list_v2", "TRUNCATE TABLE %[1]s.rollups"}
	for _, stmt := range append(prev, traceListV1...) {
		if err := conn.Exec(ctx, fmt.Sprintf(stmt, db)); err != nil {
			t.Fatalf("previous schema: %v", err)
		}
	}
	rollups, err := conn.PrepareBatch(ctx, "INSERT INTO `"+db+"`.rollups (name, since_ns)")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"spend_daily_v2", "trace_list"} {
		if err := rollups.Append(name, int64(0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := rollups.Send(); err != nil {
		t.Fatal(err)
	}
	span := func(i int, start time.Time) trace.Span {
		return trace.Span{TraceID: trace.TraceID{7, byte(i)}, SpanID: trace.SpanID{7, byte(i)}, Layer: trace.LayerLLM, Name: "chat m",
			Start: start, Duration: time.Second, Status: trace.StatusOK, Team: "t", KeyID: "k", Model: "m", CostNanoUSD: 1_000_000_007}
	}
	old := time.Now().UTC().Add(-2 * time.Hour)
	before := open()
	if err := before.WriteSpans(ctx, []trace.Span{span(1, old), span(2, old.Add(time.Minute))}); err != nil {
		t.Fatal(err)
	}
	before.Close()

	upgraded := open()
	defer upgraded.Close()
	var since int64
	if err := conn.QueryRow(ctx, "SELECT since_ns FROM `"+db+"`.rollups WHERE name = 'trace_list_v2'").Scan(&since); err != nil || since == 0 {
		t.Fatalf("trace_list_v2 of an upgraded database must start now: %d %v", since, err)
	}
	after := time.Unix(0, since).UTC().Add(time.Second)
	if err := upgraded.WriteSpans(ctx, []trace.Span{span(3, after)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		from time.Time
		want []byte // the second byte of each trace id listed, newest first
	}{
		{"from before the upgrade: spans", old.Add(-time.Hour), []byte{3, 2, 1}},
		{"from the upgrade on: trace_list_v2", after, []byte{3}},
	}
	for _, tc := range tests {
		list, err := upgraded.RecentTraces(ctx, storage.TraceFilter{From: tc.from})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []byte
		for _, ts := range list {
			if ts.Spans != 1 || ts.CostNanoUSD != 1_000_000_007 || ts.Team != "t" || ts.KeyID != "k" || ts.Duration != time.Second {
				t.Errorf("%s: summary %+v", tc.name, ts)
			}
			got = append(got, ts.TraceID[1])
		}
		if string(got) != string(tc.want) {
			t.Errorf("%s: traces %v, want %v", tc.name, got, tc.want)
		}
	}
	var fed uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM `"+db+"`.trace_list").Scan(&fed); err != nil || fed != 3 {
		t.Fatalf("the previous version's trace_list holds %d traces (%v), want all 3", fed, err)
	}
}
