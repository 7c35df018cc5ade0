package trace

import (
	"context"
	"testing"
	"time"
)

func TestChunkQueue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		chunkSize int
		push      int
		withOpen  bool
		wantPops  []int // batch sizes popped, in order
		wantLeft  int   // queued afterwards
	}{
		{"sealed only", 3, 7, false, []int{3, 3}, 1},
		{"sealed then open", 3, 7, true, []int{3, 3, 1}, 0},
		{"open only", 5, 2, true, []int{2}, 0},
		{"nothing open", 5, 2, false, nil, 2},
		{"exact chunks", 2, 4, true, []int{2, 2}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := chunkQueue{limit: 100, chunkSize: tc.chunkSize}
			sealed := 0
			for i := range tc.push {
				if q.push(seqSpan(i)) {
					sealed++
				}
			}
			if sealed != tc.push/tc.chunkSize || q.queued != tc.push {
				t.Fatalf("sealed %d, queued %d after %d pushes", sealed, q.queued, tc.push)
			}
			var got []Span
			var sizes []int
			for {
				b, wasOpen := q.pop(tc.withOpen)
				if b == nil {
					break
				}
				if wasOpen != (len(b) < tc.chunkSize) {
					t.Fatalf("batch of %d: wasOpen %v", len(b), wasOpen)
				}
				sizes = append(sizes, len(b))
				got = append(got, b...)
				if wasOpen {
					break
				}
			}
			if len(sizes) != len(tc.wantPops) || q.queued != tc.wantLeft {
				t.Fatalf("popped %v leaving %d, want %v leaving %d", sizes, q.queued, tc.wantPops, tc.wantLeft)
			}
			for i, n := range sizes {
				if n != tc.wantPops[i] {
					t.Fatalf("popped %v, want %v", sizes, tc.wantPops)
				}
			}
			assertInOrder(t, got, len(got))
		})
	}
}

// TestChunkQueueRecycles proves a queue that is drained as it fills keeps
// reusing the same few chunks and keeps FIFO order across compactions.
func TestChunkQueueRecycles(t *testing.T) {
	t.Parallel()
	q := chunkQueue{limit: 40, chunkSize: 4}
	chunks := map[*Span]bool{}
	next, want := 0, 0
	for round := range 200 {
		// Push three chunks' worth, take two: the backlog grows to the
		// limit, then every push that fits is matched by a pop.
		for range 12 {
			if q.queued < q.limit {
				q.push(seqSpan(next))
				next++
			}
		}
		for range 2 + round%2 {
			b, _ := q.pop(false)
			if b == nil {
				break
			}
			chunks[&b[:1][0]] = true
			for _, s := range b {
				if s.InputTokens != int64(want) {
					t.Fatalf("round %d: got span %d, want %d", round, s.InputTokens, want)
				}
				want++
			}
			q.recycle(clear0(b))
		}
	}
	// limit/chunkSize sealed, one open, one being written.
	if max := q.limit/q.chunkSize + 2; len(chunks) > max {
		t.Fatalf("%d chunks allocated, want at most %d", len(chunks), max)
	}
	if c := cap(q.sealed); c > 2*q.limit/q.chunkSize {
		t.Fatalf("sealed list grew to %d slots", c)
	}
}

// enterSink reports each write as it starts and holds it until gate closes.
type enterSink struct {
	memSink
	entered chan struct{}
	gate    chan struct{}
}

func (e *enterSink) WriteSpans(ctx context.Context, spans []Span) error {
	select {
	case e.entered <- struct{}{}:
	default:
	}
	<-e.gate
	return e.memSink.WriteSpans(ctx, spans)
}

// TestRecorderQueueBound: while a batch is being written, QueueSize more
// spans wait in memory and the rest go to the spill, all counted exactly.
func TestRecorderQueueBound(t *testing.T) {
	t.Parallel()
	sink := &enterSink{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	r := newTestRecorder(t, RecorderConfig{QueueSize: 10, BatchSize: 5, FlushInterval: time.Hour, WriteTimeout: time.Hour}, sink)
	for i := range 5 {
		r.Record(seqSpan(i))
	}
	<-sink.entered // the first chunk is being written
	for i := 5; i < 105; i++ {
		r.Record(seqSpan(i))
	}
	waitFor(t, "overflow spilled", func() bool { return r.Stats().Spilled == 90 })
	if st := r.Stats(); st.Queued != 10 || st.Recorded != 105 {
		t.Fatalf("stats while the sink is stuck %+v", st)
	}
	close(sink.gate)
	waitFor(t, "all written", func() bool { return r.Stats().Written == 105 })
	// The queued chunks may follow the overflow into the spill (to keep
	// order behind it) or be written directly if replay got there first.
	st := r.Stats()
	if st.Queued != 0 || st.Replayed != st.Spilled || st.Written-st.Replayed+st.Spilled != st.Recorded || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	seen := map[int64]bool{}
	for _, s := range sink.spans() {
		seen[s.InputTokens] = true
	}
	if len(seen) != 105 {
		t.Fatalf("%d distinct spans written, want 105", len(seen))
	}
}
