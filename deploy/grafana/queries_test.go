package grafana

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

const clickHouseEnv = "SWITCHBOARD_TEST_CLICKHOUSE"

// day is the fixed UTC day the sample spans and the dashboards' range cover.
var day = time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)

// sampleSpans is one workflow of team platform (agent → model → tool, and a
// failed model call) and one model call of team research, so that every
// panel, the error ones included, has rows to show.
func sampleSpans() (spans []trace.Span, workflow trace.TraceID) {
	workflow = trace.TraceID{0x0a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	other := trace.TraceID{0x0b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	at := day.Add(10 * time.Hour)
	platform := trace.Span{KeyID: "key-ci", KeyName: "ci-agent", Team: "platform"}
	span := func(base trace.Span, tid trace.TraceID, id, parent byte, offset time.Duration, s trace.Span) trace.Span {
		s.TraceID, s.SpanID, s.ParentSpanID = tid, trace.SpanID{id}, trace.SpanID{}
		if parent != 0 {
			s.ParentSpanID = trace.SpanID{parent}
		}
		s.Start = at.Add(offset)
		s.KeyID, s.KeyName, s.Team = base.KeyID, base.KeyName, base.Team
		if s.Status == "" {
			s.Status = trace.StatusOK
		}
		return s
	}
	spans = []trace.Span{
		span(platform, workflow, 1, 0, 0, trace.Span{Layer: trace.LayerAgent, Name: "invoke_agent researcher", Agent: "researcher",
			Duration: 900 * time.Millisecond, HTTPStatus: 200, CostNanoUSD: 10_000_000}),
		span(platform, workflow, 2, 1, 10*time.Millisecond, trace.Span{Layer: trace.LayerLLM, Name: "chat gpt-4o-mini", Model: "gpt-4o-mini",
			Provider: "openai", Deployment: "gpt-4o-mini", Duration: 400 * time.Millisecond, HTTPStatus: 200, InputTokens: 1200,
			OutputTokens: 300, CostNanoUSD: 360_000, TTFT: 120 * time.Millisecond}),
		span(platform, workflow, 3, 1, 450*time.Millisecond, trace.Span{Layer: trace.LayerTool, Name: "tools/call weather__get_forecast",
			ToolServer: "weather", Tool: "get_forecast", Duration: 80 * time.Millisecond, HTTPStatus: 200, CostNanoUSD: 1_000_000}),
		span(platform, workflow, 4, 1, 600*time.Millisecond, trace.Span{Layer: trace.LayerLLM, Name: "chat claude-haiku", Model: "claude-haiku",
			Provider: "anthropic", Duration: 200 * time.Millisecond, Status: trace.StatusError, HTTPStatus: 502, Error: "upstream: 502 Bad Gateway"}),
		span(trace.Span{KeyID: "key-lab", KeyName: "lab-notebook", Team: "research"}, other, 1, 0, 5*time.Minute,
			trace.Span{Layer: trace.LayerLLM, Name: "chat gpt-4o", Model: "gpt-4o", Provider: "openai", Duration: 700 * time.Millisecond,
				HTTPStatus: 200, InputTokens: 500, OutputTokens: 100, CostNanoUSD: 2_250_000}),
	}
	return spans, workflow
}

// TestPanelsRunOnClickHouse fills every dashboard query's macros and
// variables and runs it against the gateway's real schema, once with the
// team variable on All and once on one team.
func TestPanelsRunOnClickHouse(t *testing.T) {
	addr := os.Getenv(clickHouseEnv)
	if addr == "" {
		t.Skipf("%s is not set: dashboard queries not run (make test starts ClickHouse and sets it)", clickHouseEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 6)
	rand.Read(suffix)
	db := "sbgrafana_" + hex.EncodeToString(suffix)
	// Registered before the store opens, so a failed migration leaves no database behind.
	t.Cleanup(func() {
		drop, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(drop, "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
		conn.Close()
	})
	store, err := storage.Open(ctx, storage.Config{ClickHouse: &storage.ClickHouseConfig{Addr: addr, Database: db, DialTimeout: 2 * time.Second}}, nil)
	if err != nil {
		t.Fatalf("open ClickHouse at %s: %v", addr, err)
	}
	t.Cleanup(func() { store.Close() })
	spans, workflow := sampleSpans()
	if err := store.WriteSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	runDashboardQueries(ctx, t, conn, db, workflow)
}

func runDashboardQueries(ctx context.Context, t *testing.T, conn clickhouse.Conn, db string, workflow trace.TraceID) {
	base := fill{from: day, to: day.Add(24 * time.Hour), interval: 5 * time.Minute}
	allTeams := base
	allTeams.vars = map[string][]string{
		"database": {db},
		"team":     {"platform", "research"},
		"trace_id": {hex.EncodeToString(workflow[:])},
	}
	allTeams.all = map[string]bool{"team": true}
	oneTeam := base
	oneTeam.vars = map[string][]string{"database": {db}, "team": {"platform"}, "trace_id": allTeams.vars["trace_id"]}

	for _, d := range loadDashboards(t) {
		for _, q := range d.queries() {
			for _, sc := range []struct {
				name string
				f    fill
			}{{"team=All", allTeams}, {"team=platform", oneTeam}} {
				sql, err := sc.f.expand(q.sql)
				if err != nil {
					t.Errorf("%s [%s]: %v", q.where, sc.name, err)
					continue
				}
				n, err := countRows(ctx, conn, sql)
				switch {
				case err != nil:
					t.Errorf("%s [%s]: %v\n%s", q.where, sc.name, err, sql)
				case n == 0:
					t.Errorf("%s [%s]: no rows over the sample spans\n%s", q.where, sc.name, sql)
				}
			}
		}
	}
}

func countRows(ctx context.Context, conn clickhouse.Conn, sql string) (int, error) {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}
