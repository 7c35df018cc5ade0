package storage_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/trace"
)

// TestClickHouseConcurrentSpanWrites: writes share column buffers between
// calls (the recorder's writer and its replay can write at once), so each
// of several concurrent batches, of differing sizes and attributes, must
// arrive whole and unmixed.
func TestClickHouseConcurrentSpanWrites(t *testing.T) {
	t.Parallel()
	s, _ := openClickHouse(t, clickHouseAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	batches := make([][]trace.Span, 6)
	for w := range batches {
		n := 50 + 40*w
		for i := range n {
			sp := trace.Span{
				TraceID: trace.TraceID{9, byte(w)}, SpanID: trace.SpanID{9, byte(w), byte(i >> 8), byte(i)},
				Layer: trace.LayerAgent, Name: fmt.Sprint("w", w), Start: base.Add(time.Duration(i)*time.Millisecond + time.Duration(w)),
				Duration: time.Duration(i+1) * time.Microsecond, Status: trace.StatusOK, Team: fmt.Sprint("team-", w),
				InputTokens: int64(i), CostNanoUSD: int64(w*1000 + i),
			}
			if i > 0 {
				sp.ParentSpanID = trace.SpanID{9, byte(w), 0, 0}
			}
			for a := range (i + w) % 4 {
				sp.Attrs = append(sp.Attrs, trace.Attr{Key: fmt.Sprint("k", a), Value: fmt.Sprint(w, "/", i, "/", a)})
			}
			batches[w] = append(batches[w], sp)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(batches))
	for w, b := range batches {
		wg.Go(func() { errs[w] = s.WriteSpans(ctx, b) })
	}
	wg.Wait()
	for w, want := range batches {
		if errs[w] != nil {
			t.Fatalf("batch %d: %v", w, errs[w])
		}
		nodes, err := s.Trace(ctx, want[0].TraceID)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 1 {
			t.Fatalf("batch %d: %d roots, want 1", w, len(nodes))
		}
		got := []trace.Span{nodes[0].Span}
		for _, c := range nodes[0].Children {
			got = append(got, c.Span)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("batch %d differs after the round trip:\n got %+v\nwant %+v", w, got, want)
		}
	}
}
