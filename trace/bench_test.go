package trace

import (
	"context"
	"slices"
	"testing"
	"time"
)

type discardSink struct{}

func (discardSink) WriteSpans(context.Context, []Span) error { return nil }

// BenchmarkSpanEnd measures what a request pays for a span: Start, a few
// field writes and End. It reports the p99 of single operations besides the
// mean.
func BenchmarkSpanEnd(b *testing.B) {
	r, err := NewRecorder(RecorderConfig{SpillDir: b.TempDir(), QueueSize: 1 << 16}, discardSink{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(context.Background())
	tr := NewTracer(r)
	parent := SpanContext{TraceID: TraceID{1}, SpanID: SpanID{2}, Flags: FlagSampled}
	samples := make([]time.Duration, 0, min(b.N, 1<<20))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		s := tr.Start(parent, LayerLLM, "chat gpt-4o-mini")
		s.Model, s.InputTokens, s.CostNanoUSD, s.Status = "gpt-4o-mini", 100, 1234, StatusOK
		s.End()
		if len(samples) < cap(samples) {
			samples = append(samples, time.Since(t0))
		}
	}
	b.StopTimer()
	slices.Sort(samples)
	if n := len(samples); n > 0 {
		b.ReportMetric(float64(samples[n*99/100].Nanoseconds()), "p99-ns/op")
		b.ReportMetric(float64(samples[n/2].Nanoseconds()), "p50-ns/op")
	}
	st := r.Stats()
	b.ReportMetric(float64(st.Spilled), "spilled")
	if st.Dropped != 0 {
		b.Fatalf("dropped %d spans", st.Dropped)
	}
}

// BenchmarkSpanEndParallel is the same from every P at once.
func BenchmarkSpanEndParallel(b *testing.B) {
	r, err := NewRecorder(RecorderConfig{SpillDir: b.TempDir(), QueueSize: 1 << 16}, discardSink{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(context.Background())
	tr := NewTracer(r)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s := tr.Start(SpanContext{}, LayerTool, "tools/call x")
			s.End()
		}
	})
}
