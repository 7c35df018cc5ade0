package trace

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestTracerStart(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	tr := NewTracer(newTestRecorder(t, RecorderConfig{FlushInterval: time.Millisecond}, sink))
	parent, _ := ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	parent.TraceState = "a=b"
	tests := []struct {
		name   string
		parent SpanContext
	}{
		{"fresh trace", SpanContext{}},
		{"child of client", parent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tr.Start(tc.parent, LayerTool, "tools/call weather__get_forecast")
			sc := s.Context()
			if !sc.IsValid() || s.Start.IsZero() {
				t.Fatalf("span context %+v", sc)
			}
			if tc.parent.IsValid() {
				if s.TraceID != tc.parent.TraceID || s.ParentSpanID != tc.parent.SpanID || sc.Flags != 0 || sc.TraceState != "a=b" {
					t.Fatalf("child does not continue parent: %+v", sc)
				}
			} else if !s.ParentSpanID.IsZero() || sc.Flags != FlagSampled {
				t.Fatalf("fresh trace has parent %s flags %d", s.ParentSpanID, sc.Flags)
			}
			back, ok := ParseTraceparent(sc.Traceparent())
			if !ok || back.TraceID != s.TraceID || back.SpanID != s.SpanID {
				t.Fatal("traceparent does not describe the span")
			}
		})
	}
}

func TestSpanEndOnce(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	r := newTestRecorder(t, RecorderConfig{FlushInterval: time.Hour}, sink)
	tr := NewTracer(r)
	s := tr.Start(SpanContext{}, LayerLLM, "chat m")
	s.CostNanoUSD = 42
	s.End()
	s.End()
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := sink.spans()
	if len(got) != 1 || got[0].CostNanoUSD != 42 || got[0].SpanID != s.SpanID || got[0].Duration != s.Duration {
		t.Fatalf("recorded %+v", got)
	}
	if got[0].rec != nil || got[0].ended != 0 {
		t.Fatal("recorded span carries life-cycle state")
	}
}

func TestSpanIDsUnique(t *testing.T) {
	t.Parallel()
	tr := NewTracer(newTestRecorder(t, RecorderConfig{}, &memSink{}))
	const workers, per = 8, 5000
	ids := make([][]SpanID, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range per {
				s := tr.Start(SpanContext{}, LayerGateway, "x")
				if s.SpanID.IsZero() || s.TraceID.IsZero() {
					t.Error("zero id")
				}
				ids[w] = append(ids[w], s.SpanID)
			}
		})
	}
	wg.Wait()
	all := slices.Concat(ids...)
	slices.SortFunc(all, func(a, b SpanID) int { return slices.Compare(a[:], b[:]) })
	if len(slices.Compact(all)) != workers*per {
		t.Fatal("duplicate span ids")
	}
}
