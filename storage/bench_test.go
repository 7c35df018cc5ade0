package storage_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// BenchmarkClickHouseWrite pushes spans through the recorder into a real
// ClickHouse and reports spans/s actually written (Close waits for the last
// batch). The queue holds the whole run, so this is the direct path.
func BenchmarkClickHouseWrite(b *testing.B) {
	for _, batch := range []int{1000, 5000, trace.DefaultBatchSize} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchmarkWrite(b, max(b.N, batch), batch) })
	}
}

// BenchmarkClickHouseWriteSpillPath uses a small queue: a burst overflows to
// the spill and reaches ClickHouse through replay.
func BenchmarkClickHouseWriteSpillPath(b *testing.B) {
	benchmarkWrite(b, 1000, 1000)
}

func benchmarkWrite(b *testing.B, queue, batch int) {
	store, _ := openClickHouse(b, clickHouseAddr(b))
	rec, err := trace.NewRecorder(trace.RecorderConfig{QueueSize: queue, BatchSize: batch, FlushInterval: 200 * time.Millisecond, SpillDir: b.TempDir()}, store, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	tracer := trace.NewTracer(rec)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		s := tracer.Start(trace.SpanContext{}, trace.LayerLLM, "chat gpt-4o-mini")
		s.KeyID, s.Team, s.Model, s.Provider = "k1", "platform", "gpt-4o-mini", "openai"
		s.InputTokens, s.OutputTokens, s.CostNanoUSD, s.Status = 120, 40, 33_000, trace.StatusOK
		s.End()
	}
	// Spans still spilled at the end are part of the work: wait for replay.
	for st := rec.Stats(); st.Written < int64(b.N); st = rec.Stats() {
		time.Sleep(time.Millisecond)
	}
	if err := rec.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	st := rec.Stats()
	b.ReportMetric(float64(st.Written)/elapsed.Seconds(), "spans/s")
	b.ReportMetric(float64(st.Spilled), "spilled")
	if st.Dropped != 0 {
		b.Fatalf("dropped %d", st.Dropped)
	}
}

// BenchmarkClickHouseQueries1M measures the dashboard's questions over a
// million spans (SWITCHBOARD_BENCH_SPANS overrides the count) spread over the
// 30 days before now, in traces of five spans (agent → model call with one
// retried attempt → tool → model call). "rollup" reads a database whose
// rollups hold every span; "spans" reads the same data as a database
// upgraded today would, whose rollups start now, so every answer comes from
// the spans table (RecentTraces there is the query used before trace_list).
func BenchmarkClickHouseQueries1M(b *testing.B) {
	addr := clickHouseAddr(b)
	n := 1_000_000
	if v := os.Getenv("SWITCHBOARD_BENCH_SPANS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 5 {
			b.Fatalf("SWITCHBOARD_BENCH_SPANS=%q: want an integer of at least 5", v)
		}
	}
	ctx := context.Background()
	rollup, db := openClickHouse(b, addr)
	now := time.Now().UTC()
	writeQuerySpans(ctx, b, rollup, n, now)
	conn := rawConn(b, addr)
	defer conn.Close()
	if err := conn.Exec(ctx, "TRUNCATE TABLE `"+db+"`.rollups"); err != nil {
		b.Fatal(err)
	}
	// A store opened on a database that already has spans records its rollups
	// as complete from now on.
	spans, err := storage.Open(ctx, storage.Config{ClickHouse: &storage.ClickHouseConfig{Addr: addr, Database: db}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer spans.Close()
	month := storage.SpendQuery{From: now.Add(-30 * 24 * time.Hour), To: now, GroupBy: storage.GroupTeam, Bucket: storage.BucketDay}
	queries := []struct {
		name string
		run  func(s storage.Store) error
	}{
		{"spend/30d-by-team-per-day", func(s storage.Store) error { _, err := s.Spend(ctx, month); return err }},
		{"spend/7d-by-model", func(s storage.Store) error {
			_, err := s.Spend(ctx, storage.SpendQuery{From: now.Add(-7 * 24 * time.Hour), To: now, GroupBy: storage.GroupModel})
			return err
		}},
		{"traces/24h", func(s storage.Store) error {
			_, err := s.RecentTraces(ctx, storage.TraceFilter{From: now.Add(-24 * time.Hour), To: now})
			return err
		}},
		{"traces/3d", func(s storage.Store) error {
			_, err := s.RecentTraces(ctx, storage.TraceFilter{From: now.Add(-3 * 24 * time.Hour), To: now})
			return err
		}},
		{"traces/7d", func(s storage.Store) error {
			_, err := s.RecentTraces(ctx, storage.TraceFilter{From: now.Add(-7 * 24 * time.Hour), To: now})
			return err
		}},
		{"traces/24h-team-errors", func(s storage.Store) error {
			_, err := s.RecentTraces(ctx, storage.TraceFilter{From: now.Add(-24 * time.Hour), To: now, Team: "team-3", Status: trace.StatusError})
			return err
		}},
		{"traces/all", func(s storage.Store) error {
			_, err := s.RecentTraces(ctx, storage.TraceFilter{})
			return err
		}},
		{"traces/30d-min-cost", func(s storage.Store) error {
			_, err := s.RecentTraces(ctx, storage.TraceFilter{From: now.Add(-30 * 24 * time.Hour), To: now, MinCostNanoUSD: 50_000_000})
			return err
		}},
	}
	for _, q := range queries {
		for _, st := range []struct {
			name  string
			store storage.Store
		}{{"rollup", rollup}, {"spans", spans}} {
			b.Run(q.name+"/"+st.name, func(b *testing.B) {
				for b.Loop() {
					if err := q.run(st.store); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func writeQuerySpans(ctx context.Context, b *testing.B, store storage.Store, n int, now time.Time) {
	b.Helper()
	models := []string{"gpt-4o-mini", "gpt-4o", "claude-haiku", "claude-sonnet", "llama-3-70b", "mistral-large"}
	start := now.Add(-30 * 24 * time.Hour)
	step := 30 * 24 * time.Hour / time.Duration(n)
	id := func(i int) trace.SpanID { return trace.SpanID{2, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)} }
	spans := make([]trace.Span, 0, 50_000)
	for i := range n {
		tr, k := i/5, i%5
		sp := trace.Span{
			TraceID: trace.TraceID{1, byte(tr >> 24), byte(tr >> 16), byte(tr >> 8), byte(tr)}, SpanID: id(i),
			Start: start.Add(time.Duration(i) * step), Duration: time.Duration(50+i%400) * time.Millisecond, Status: trace.StatusOK,
			Team: fmt.Sprintf("team-%d", tr%5), KeyID: fmt.Sprintf("key_%02d", tr%50), KeyName: "bench",
		}
		if k > 0 {
			sp.ParentSpanID = id(i - k)
		}
		switch k {
		case 0:
			sp.Layer, sp.Name, sp.Agent = trace.LayerAgent, "invoke_agent planner", "planner"
		case 1, 4:
			sp.Layer, sp.Model, sp.Provider = trace.LayerLLM, models[(tr+k)%len(models)], "openai"
			sp.Name, sp.Deployment = "chat "+sp.Model, "openai/"+sp.Model
			sp.InputTokens, sp.OutputTokens, sp.CostNanoUSD = int64(100+i%900), int64(20+i%300), int64(10_000+i%90_000)
			if tr%23 == 0 {
				sp.Status = trace.StatusError
			}
		case 2:
			sp.Layer, sp.Model, sp.Provider = trace.LayerLLM, models[(tr+1)%len(models)], "openai"
			sp.Name, sp.Deployment, sp.ParentSpanID, sp.Status = "attempt openai/"+sp.Model, "openai/"+sp.Model, id(i-1), trace.StatusError
		case 3:
			sp.Layer, sp.Name, sp.ToolServer, sp.Tool = trace.LayerTool, "tools/call weather__forecast", "weather", "forecast"
		}
		spans = append(spans, sp)
		if len(spans) == cap(spans) || i == n-1 {
			if err := store.WriteSpans(ctx, spans); err != nil {
				b.Fatal(err)
			}
			spans = spans[:0]
		}
	}
}
