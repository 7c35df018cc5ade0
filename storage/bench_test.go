package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/trace"
)

// BenchmarkClickHouseWrite pushes spans through the recorder into a real
// ClickHouse and reports spans/s actually written (Close waits for the last
// batch). The queue holds the whole run, so this is the direct path.
func BenchmarkClickHouseWrite(b *testing.B) {
	for _, batch := range []int{1000, trace.DefaultBatchSize, 10000} {
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
