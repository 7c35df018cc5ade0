package trace

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// memSink stores what it is given; it can be switched to fail or to block.
type memSink struct {
	mu      sync.Mutex
	batches [][]Span
	fail    bool
	gate    chan struct{} // when non-nil, writes wait for it to close
}

func (m *memSink) WriteSpans(ctx context.Context, batch ...[]Span) error {
	m.mu.Lock()
	gate, fail := m.gate, m.fail
	m.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail {
		return errors.New("sink down")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var spans []Span
	for _, chunk := range batch {
		spans = append(spans, chunk...)
	}
	m.batches = append(m.batches, spans)
	return nil
}

func (m *memSink) setFail(v bool) {
	m.mu.Lock()
	m.fail = v
	m.mu.Unlock()
}

func (m *memSink) spans() []Span {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Span
	for _, b := range m.batches {
		out = append(out, b...)
	}
	return out
}

func (m *memSink) batchSizes() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for _, b := range m.batches {
		out = append(out, len(b))
	}
	return out
}

// syncBuffer is a log destination safe for the recorder's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func newTestRecorder(t *testing.T, cfg RecorderConfig, sink Sink) *Recorder {
	t.Helper()
	if cfg.SpillDir == "" {
		cfg.SpillDir = t.TempDir()
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 5 * time.Millisecond
	}
	r, err := NewRecorder(cfg, sink, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func seqSpan(i int) Span {
	return Span{TraceID: TraceID{1}, SpanID: SpanID{2}, Name: "s", Start: time.Unix(1, 0).UTC(), InputTokens: int64(i)}
}

func assertInOrder(t *testing.T, spans []Span, n int) {
	t.Helper()
	if len(spans) != n {
		t.Fatalf("got %d spans, want %d", len(spans), n)
	}
	for i, s := range spans {
		if s.InputTokens != int64(i) {
			t.Fatalf("span %d has seq %d: out of order or duplicated", i, s.InputTokens)
		}
	}
}

func TestRecorderBatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       RecorderConfig
		record    int
		wantSizes []int
	}{
		{"by size", RecorderConfig{BatchSize: 10, FlushInterval: time.Hour}, 20, []int{10, 10}},
		{"by time", RecorderConfig{BatchSize: 1000, FlushInterval: 5 * time.Millisecond}, 3, []int{3}},
		{"several chunks a write", RecorderConfig{BatchSize: 3 * maxChunkSpans, FlushInterval: time.Hour}, 6 * maxChunkSpans, []int{3 * maxChunkSpans, 3 * maxChunkSpans}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sink := &memSink{}
			r := newTestRecorder(t, tc.cfg, sink)
			for i := range tc.record {
				r.Record(seqSpan(i))
			}
			waitFor(t, "batches", func() bool { return len(sink.batchSizes()) == len(tc.wantSizes) })
			got := sink.batchSizes()
			for i := range got {
				if got[i] != tc.wantSizes[i] {
					t.Fatalf("batch sizes %v, want %v", got, tc.wantSizes)
				}
			}
			assertInOrder(t, sink.spans(), tc.record)
		})
	}
}

func TestRecorderSpillsAndReplaysInOrder(t *testing.T) {
	t.Parallel()
	sink := &memSink{fail: true}
	r := newTestRecorder(t, RecorderConfig{BatchSize: 7, FlushInterval: time.Millisecond, SpillSegmentBytes: 4096}, sink)
	const n = 500
	for i := range n {
		r.Record(seqSpan(i))
	}
	waitFor(t, "spill", func() bool { return r.Stats().Spilled == n })
	if segs, _ := filepath.Glob(filepath.Join(r.cfg.SpillDir, "*"+segmentExt)); len(segs) < 2 {
		t.Fatalf("want several spill segments, got %d", len(segs))
	}
	sink.setFail(false)
	waitFor(t, "replay", func() bool { return r.Stats().Written == n })
	assertInOrder(t, sink.spans(), n)
	st := r.Stats()
	if st.Replayed != n || st.Dropped != 0 || st.Recorded != n {
		t.Fatalf("stats %+v", st)
	}
	waitFor(t, "spill emptied", func() bool {
		left, _ := os.ReadDir(r.cfg.SpillDir)
		return len(left) == 0
	})
}

func TestRecorderFullQueueNeverBlocks(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	sink := &memSink{gate: gate}
	r := newTestRecorder(t, RecorderConfig{QueueSize: 4, BatchSize: 2, FlushInterval: time.Millisecond, WriteTimeout: time.Hour}, sink)
	const n = 2000
	// The sink is stuck, so only a non-blocking Record lets this loop finish.
	for i := range n {
		r.Record(seqSpan(i))
	}
	waitFor(t, "overflow spilled", func() bool { return r.Stats().Spilled > 0 })
	close(gate)
	waitFor(t, "all written", func() bool { return r.Stats().Written == n })
	if st := r.Stats(); st.Dropped != 0 || st.Recorded != n {
		t.Fatalf("stats %+v", st)
	}
	seen := map[int64]bool{}
	for _, s := range sink.spans() {
		if seen[s.InputTokens] {
			t.Fatalf("span %d written twice", s.InputTokens)
		}
		seen[s.InputTokens] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct spans written, want %d", len(seen), n)
	}
}

func TestRecorderCloseFlushes(t *testing.T) {
	t.Parallel()
	sink := &memSink{}
	r := newTestRecorder(t, RecorderConfig{BatchSize: 100, FlushInterval: time.Hour}, sink)
	for i := range 5 {
		r.Record(seqSpan(i))
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertInOrder(t, sink.spans(), 5)
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestRecorderCloseSpillsAndNextRunReplays(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	down := &memSink{fail: true}
	r := newTestRecorder(t, RecorderConfig{BatchSize: 3, FlushInterval: time.Hour, SpillDir: dir}, down)
	for i := range 10 {
		r.Record(seqSpan(i))
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Record(seqSpan(10)) // after Close: straight to disk
	if st := r.Stats(); st.Spilled != 11 || st.Dropped != 0 {
		t.Fatalf("stats after close %+v", st)
	}

	up := &memSink{}
	r2 := newTestRecorder(t, RecorderConfig{SpillDir: dir, FlushInterval: time.Hour}, up)
	waitFor(t, "replay on start", func() bool { return r2.Stats().Replayed == 11 })
	assertInOrder(t, up.spans(), 11)
}

func TestRecorderSkipsCorruptTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := newTestRecorder(t, RecorderConfig{BatchSize: 4, FlushInterval: time.Hour, SpillDir: dir}, &memSink{fail: true})
	for i := range 8 {
		r.Record(seqSpan(i))
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if len(segs) != 1 {
		t.Fatalf("want one segment, got %v", segs)
	}
	// A torn write: a header promising more bytes than follow.
	f, err := os.OpenFile(segs[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 5, 6})
	f.Close()

	logs := &syncBuffer{}
	up := &memSink{}
	r2, err := NewRecorder(RecorderConfig{SpillDir: dir, FlushInterval: time.Hour, RetryInterval: 5 * time.Millisecond}, up, nil,
		slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close(context.Background())
	waitFor(t, "replay", func() bool {
		left, _ := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
		return len(left) == 0
	})
	assertInOrder(t, up.spans(), 8)
	if !strings.Contains(logs.String(), "corrupt spill data skipped") || r2.spill.corruptRecords() != 1 {
		t.Fatalf("corrupt tail not reported; log: %s", logs.String())
	}
}

func TestRecorderMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	sink := &memSink{}
	r, err := NewRecorder(RecorderConfig{SpillDir: t.TempDir(), BatchSize: 2, FlushInterval: time.Hour}, sink, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		r.Record(seqSpan(i))
	}
	waitFor(t, "written", func() bool { return r.Stats().Written == 4 })
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"switchboard_trace_spans_recorded_total": 4,
		"switchboard_trace_spans_written_total":  4,
		"switchboard_trace_spans_spilled_total":  0,
		"switchboard_trace_spans_replayed_total": 0,
		"switchboard_trace_spans_dropped_total":  0,
		"switchboard_trace_queue_depth":          0,
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
		if v, ok := want[f.GetName()]; ok {
			m := f.GetMetric()[0]
			val := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			if val != v {
				t.Errorf("%s = %v, want %v", f.GetName(), val, v)
			}
		}
	}
	for name := range want {
		if !got[name] {
			t.Errorf("metric %s missing", name)
		}
	}
	if !got["switchboard_trace_write_duration_seconds"] {
		t.Errorf("write latency histogram missing")
	}
	if _, err := NewRecorder(RecorderConfig{SpillDir: t.TempDir()}, sink, reg, nil); err == nil {
		t.Error("registering twice in one registry must fail")
	}
}

func TestRecorderConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  RecorderConfig
		want string
	}{
		{"zero is fine", RecorderConfig{}, ""},
		{"negative queue", RecorderConfig{QueueSize: -1}, "trace.queue_size"},
		{"batch above queue", RecorderConfig{QueueSize: 10, BatchSize: 11}, "trace.batch_size"},
		{"batch above the most", RecorderConfig{QueueSize: 2 * MaxBatchSize, BatchSize: MaxBatchSize + 1}, "trace.batch_size"},
		{"negative interval", RecorderConfig{FlushInterval: -time.Second}, "trace.flush_interval"},
		{"tiny segment", RecorderConfig{SpillSegmentBytes: 10}, "trace.spill_segment_bytes"},
		{"negative retry", RecorderConfig{RetryInterval: -1}, "trace.retry_interval"},
		{"negative timeout", RecorderConfig{WriteTimeout: -1}, "trace.write_timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want mention of %q", err, tc.want)
			}
		})
	}
}
