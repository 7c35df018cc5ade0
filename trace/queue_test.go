package trace

import (
	"context"
	"testing"
	"time"
)

func TestChunkQueue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		chunkSize, perWrite int
		push                int
		withOpen            bool
		wantWrites          []int // spans per write, in order
		wantLeft            int   // queued afterwards
	}{
		{"sealed only", 3, 1, 7, false, []int{3, 3}, 1},
		{"sealed then open", 3, 1, 7, true, []int{3, 3, 1}, 0},
		{"open only", 5, 1, 2, true, []int{2}, 0},
		{"nothing open", 5, 1, 2, false, nil, 2},
		{"exact chunks", 2, 1, 4, true, []int{2, 2}, 0},
		{"two chunks a write", 3, 2, 13, false, []int{6, 6}, 1},
		{"a short write waits for the tick", 3, 2, 5, false, nil, 5},
		{"the tick takes sealed and open together", 3, 2, 5, true, []int{5}, 0},
		{"full writes, then the rest", 3, 2, 11, true, []int{6, 5}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q := chunkQueue{limit: 100, chunkSize: tc.chunkSize, chunksPerWrite: tc.perWrite}
			signals := 0
			for i := range tc.push {
				if q.push(seqSpan(i)) {
					signals++
				}
			}
			// Every seal from the perWrite-th chunk on completes a write.
			if want := max(0, tc.push/tc.chunkSize-tc.perWrite+1); signals != want || q.queued != tc.push {
				t.Fatalf("%d write signals (want %d), queued %d after %d pushes", signals, want, q.queued, tc.push)
			}
			var got []Span
			var sizes []int
			for {
				w, wasOpen := q.pop(tc.withOpen, nil)
				if len(w) == 0 {
					break
				}
				if len(w) > tc.perWrite {
					t.Fatalf("write of %d chunks, want at most %d", len(w), tc.perWrite)
				}
				if last := w[len(w)-1]; wasOpen != (len(last) < tc.chunkSize) {
					t.Fatalf("write ending in a chunk of %d: wasOpen %v", len(last), wasOpen)
				}
				n := 0
				for _, c := range w {
					n += len(c)
					got = append(got, c...)
				}
				sizes = append(sizes, n)
				if wasOpen {
					break
				}
			}
			if len(sizes) != len(tc.wantWrites) || q.queued != tc.wantLeft {
				t.Fatalf("wrote %v leaving %d, want %v leaving %d", sizes, q.queued, tc.wantWrites, tc.wantLeft)
			}
			for i, n := range sizes {
				if n != tc.wantWrites[i] {
					t.Fatalf("wrote %v, want %v", sizes, tc.wantWrites)
				}
			}
			assertInOrder(t, got, len(got))
		})
	}
}

func TestNewChunkQueue(t *testing.T) {
	t.Parallel()
	tests := []struct{ batch, wantChunk, wantPerWrite int }{
		{10, 10, 1},
		{maxChunkSpans, maxChunkSpans, 1},
		{maxChunkSpans + 1, maxChunkSpans/2 + 1, 2},
		{DefaultBatchSize, DefaultBatchSize / 4, 4},
		{7000, 3500, 2},
	}
	for _, tc := range tests {
		q := newChunkQueue(100, tc.batch)
		if q.chunkSize != tc.wantChunk || q.chunksPerWrite != tc.wantPerWrite {
			t.Errorf("batch %d: chunks of %d, %d a write; want %d, %d", tc.batch, q.chunkSize, q.chunksPerWrite, tc.wantChunk, tc.wantPerWrite)
		}
		if q.chunkSize*q.chunksPerWrite < tc.batch || q.chunkSize > maxChunkSpans {
			t.Errorf("batch %d: chunks of %d, %d a write do not hold it", tc.batch, q.chunkSize, q.chunksPerWrite)
		}
	}
}

// TestChunkQueueRecycles proves a queue that is drained as it fills keeps
// reusing the same few chunks and keeps FIFO order across compactions.
func TestChunkQueueRecycles(t *testing.T) {
	t.Parallel()
	for _, perWrite := range []int{1, 2} {
		q := chunkQueue{limit: 40, chunkSize: 4, chunksPerWrite: perWrite}
		chunks := map[*Span]bool{}
		next, want := 0, 0
		for round := range 200 {
			// Push three chunks' worth, take two or three: the backlog
			// grows to the limit, then every push that fits is matched by
			// a pop.
			for range 12 {
				if q.queued < q.limit {
					q.push(seqSpan(next))
					next++
				}
			}
			for range (2 + round%2) / perWrite {
				w, _ := q.pop(false, nil)
				if len(w) == 0 {
					break
				}
				for _, c := range w {
					chunks[&c[:1][0]] = true
					for _, s := range c {
						if s.InputTokens != int64(want) {
							t.Fatalf("%d a write, round %d: got span %d, want %d", perWrite, round, s.InputTokens, want)
						}
						want++
					}
					q.recycle(clear0(c))
				}
			}
		}
		// limit/chunkSize sealed, one open, one write's worth being written.
		if max := q.limit/q.chunkSize + 1 + perWrite; len(chunks) > max {
			t.Fatalf("%d a write: %d chunks allocated, want at most %d", perWrite, len(chunks), max)
		}
		if c := cap(q.sealed); c > 2*q.limit/q.chunkSize {
			t.Fatalf("%d a write: sealed list grew to %d slots", perWrite, c)
		}
	}
}

// enterSink reports each write as it starts and holds it until gate closes.
type enterSink struct {
	memSink
	entered chan struct{}
	gate    chan struct{}
}

func (e *enterSink) WriteSpans(ctx context.Context, batch ...[]Span) error {
	select {
	case e.entered <- struct{}{}:
	default:
	}
	<-e.gate
	return e.memSink.WriteSpans(ctx, batch...)
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
