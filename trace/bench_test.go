package trace

import (
	"context"
	"runtime"
	"slices"
	"testing"
	"time"
)

type discardSink struct{}

func (discardSink) WriteSpans(context.Context, ...[]Span) error { return nil }

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

// BenchmarkRecordParallel is what recording costs per span, the writer's
// share included: a Record of a ready span from every P at once into a sink
// that takes no time. Producers that never paused would outrun any writer
// on a small machine, overflow the queue and measure the spill instead, so
// every 1024 spans a producer yields until the queue is at most half full,
// as request handlers waiting on the network would leave the writer room.
// ns/op is then the machine's time per span recorded and written. The share
// of spans spilled anyway is reported.
func BenchmarkRecordParallel(b *testing.B) {
	const queue = 1 << 16
	r, err := NewRecorder(RecorderConfig{SpillDir: b.TempDir(), QueueSize: queue}, discardSink{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	s := Span{TraceID: TraceID{1}, SpanID: SpanID{2}, Layer: LayerLLM, Name: "chat gpt-4o-mini", Start: time.Now(),
		Model: "gpt-4o-mini", InputTokens: 100, CostNanoUSD: 1234, Status: StatusOK}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			r.Record(s)
			if i%1024 == 1023 {
				for r.Stats().Queued > queue/2 {
					runtime.Gosched()
				}
			}
		}
	})
	b.StopTimer()
	if err := r.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	st := r.Stats()
	b.ReportMetric(float64(st.Spilled)/float64(st.Recorded), "spilled/op")
	if st.Dropped != 0 || st.Written-st.Replayed+st.Spilled != st.Recorded {
		b.Fatalf("stats %+v", st)
	}
}
