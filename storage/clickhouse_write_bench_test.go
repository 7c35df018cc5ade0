package storage_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/trace"
)

// BenchmarkClickHouseWriteSpans is one WriteSpans of a recorder-sized batch
// (trace.DefaultBatchSize spans, one in four with attributes, as A2A spans carry them) into a
// real ClickHouse. ns/op includes the server's insert; the client's own cost
// is allocs/op, B/op and cpu-ns/op (this process's CPU time, which the
// server's does not count in).
func BenchmarkClickHouseWriteSpans(b *testing.B) {
	store, _ := openClickHouse(b, clickHouseAddr(b))
	spans := make([]trace.Span, trace.DefaultBatchSize)
	start := time.Now().UTC()
	for i := range spans {
		spans[i] = trace.Span{
			TraceID: trace.TraceID{1, byte(i >> 8), byte(i)}, SpanID: trace.SpanID{2, byte(i >> 8), byte(i)},
			Layer: trace.LayerLLM, Name: "chat gpt-4o-mini", Start: start.Add(time.Duration(i) * time.Millisecond),
			Duration: time.Duration(i) * time.Microsecond, Status: trace.StatusOK, HTTPStatus: 200,
			KeyID: "key_01", KeyName: "bench", Team: fmt.Sprint("team-", i%5), Org: "acme",
			Model: "gpt-4o-mini", Provider: "openai", Deployment: "openai/gpt-4o-mini",
			InputTokens: int64(100 + i), OutputTokens: 40, CostNanoUSD: 33_000, TTFT: time.Millisecond,
		}
		if i%4 == 0 {
			spans[i].Attrs = []trace.Attr{{Key: "task_id", Value: fmt.Sprint("t-", i)}, {Key: "state", Value: "completed"}}
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	cpu0 := processCPU(b)
	for b.Loop() {
		if err := store.WriteSpans(ctx, spans); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(b.N*len(spans))/b.Elapsed().Seconds(), "spans/s")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
