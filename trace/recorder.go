package trace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Sink stores span batches (storage.Store implements it). One WriteSpans
// call is one batch, handed over as the chunks the recorder queued it in,
// in order; the sink writes them as one write (one ClickHouse insert), all
// or nothing. It must not keep the spans after it returns: the recorder
// reuses the chunks.
type Sink interface {
	WriteSpans(ctx context.Context, batch ...[]Span) error
}

// Stats are the recorder's running totals (the same numbers as its metrics).
// Written counts every span the sink accepted, replayed ones included, so
// once the spill is empty Written equals Recorded.
type Stats struct {
	Recorded, Written, Spilled, Replayed, Dropped int64
	Queued                                        int
	SpillBytes                                    int64
}

// Recorder queues ended spans and writes them to a Sink in batches on its own
// goroutines. When the sink fails, or the queue is full, spans go to the
// on-disk spill and are replayed in order once the sink works again.
type Recorder struct {
	cfg   RecorderConfig
	sink  Sink
	log   *slog.Logger
	spill *spill
	m     *metrics
	otlp  *otlpExporter // nil unless cfg.OTLP is set

	// mu guards the queue, the overflow and closed. The queue is a list of
	// chunks, BatchSize spans to a few of them: Record appends to the newest,
	// and only sealing the last chunk of a batch wakes the writer, which
	// otherwise wakes on its ticker. Waking it per span (a channel send) cost
	// more than the rest of Record.
	mu       sync.Mutex
	queue    chunkQueue
	closed   bool
	closeCtx context.Context
	overflow []Span // spans that found the queue full, for spillLoop

	full       chan struct{} // a batch's worth of chunks was sealed
	overflowCh chan struct{} // overflow became non-empty
	kick       chan struct{}
	stopWriter chan struct{}
	stopSpill  chan struct{}
	stopReplay context.CancelFunc
	wg         sync.WaitGroup
	replayWG   sync.WaitGroup
	errMu      sync.Mutex
	closeErr   error
	closeOnce  sync.Once

	recorded, written, spilled, replayed, dropped atomic.Int64
}

// NewRecorder starts a recorder writing to sink. reg may be nil (no metrics
// registered) and log may be nil (discarded). Segments left in cfg.SpillDir by
// an earlier process are replayed first.
func NewRecorder(cfg RecorderConfig, sink Sink, reg prometheus.Registerer, log *slog.Logger) (*Recorder, error) {
	if sink == nil {
		return nil, errors.New("trace: NewRecorder needs a Sink")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	sp, err := openSpill(cfg.SpillDir, cfg.SpillSegmentBytes, log)
	if err != nil {
		return nil, err
	}
	r := &Recorder{
		cfg: cfg, sink: sink, log: log, spill: sp,
		queue:      newChunkQueue(cfg.QueueSize, cfg.BatchSize),
		full:       make(chan struct{}, 1),
		overflowCh: make(chan struct{}, 1),
		kick:       make(chan struct{}, 1),
		stopWriter: make(chan struct{}),
		stopSpill:  make(chan struct{}),
	}
	r.m = newMetrics(r)
	if cfg.OTLP != nil {
		r.otlp = newOTLPExporter(*cfg.OTLP, log)
		r.m.collectors = append(r.m.collectors, r.otlp.collectors...)
	}
	if reg != nil {
		if err := r.m.register(reg); err != nil {
			if r.otlp != nil {
				r.otlp.close(context.Background()) // its queue is empty: this only stops its goroutine
			}
			return nil, fmt.Errorf("trace: metrics: %w", err)
		}
	}
	replayCtx, cancel := context.WithCancel(context.Background())
	r.stopReplay = cancel
	r.wg.Add(2)
	go r.writeLoop()
	go r.spillLoop()
	r.replayWG.Add(1)
	go r.replayLoop(replayCtx)
	if sp.pending() {
		log.Info("trace: replaying spans spilled by an earlier run", "bytes", sp.bytes())
		r.kickReplay()
	}
	return r, nil
}

// Record queues s for writing. It never blocks on storage and never drops a
// span: when the queue is full the span goes to the spill instead.
func (r *Recorder) Record(s Span) {
	r.recorded.Add(1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.spillLate(s)
		return
	}
	if r.queue.queued < r.queue.limit {
		sealed := r.queue.push(s)
		r.mu.Unlock()
		if sealed {
			signal(r.full)
		}
		return
	}
	r.overflow = append(r.overflow, s)
	first := len(r.overflow) == 1
	r.mu.Unlock()
	if first {
		signal(r.overflowCh)
	}
}

// spillLate writes a span recorded after Close (a request finishing during
// shutdown) straight to disk for the next run.
func (r *Recorder) spillLate(s Span) {
	if err := r.spill.append([]Span{s}); err != nil {
		r.dropped.Add(1)
		r.log.Error("trace: span lost after close", "err", err)
		return
	}
	r.spilled.Add(1)
	if err := r.spill.close(); err != nil {
		r.log.Error("trace: spill", "err", err)
	}
}

// signal wakes the goroutine waiting on c unless a wake-up is pending.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Stats returns the running totals.
func (r *Recorder) Stats() Stats {
	return Stats{
		Recorded: r.recorded.Load(), Written: r.written.Load(), Spilled: r.spilled.Load(),
		Replayed: r.replayed.Load(), Dropped: r.dropped.Load(),
		Queued: r.queued(), SpillBytes: r.spill.bytes(),
	}
}

// Close stops the recorder: queued spans are written (within ctx) or
// spilled, and the spill is synced to disk. Spans still in the spill are
// replayed by the next recorder on the same SpillDir. Close is idempotent;
// spans recorded after it are spilled directly.
func (r *Recorder) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.closeCtx = ctx
		r.mu.Unlock()
		r.stopReplay()
		r.replayWG.Wait()
		close(r.stopWriter)
		close(r.stopSpill)
		r.wg.Wait()
		// After the writer's last batch, so that it is exported too, and before the spill's sync: the
		// collector gets what time is left of ctx.
		if r.otlp != nil {
			r.otlp.close(ctx)
		}
		if err := r.spill.close(); err != nil {
			r.setErr(err)
		}
	})
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.closeErr
}

func (r *Recorder) queued() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queue.queued
}

func (r *Recorder) setErr(err error) {
	r.errMu.Lock()
	r.closeErr = errors.Join(r.closeErr, err)
	r.errMu.Unlock()
}

func (r *Recorder) kickReplay() { signal(r.kick) }

func (r *Recorder) writeLoop() {
	defer r.wg.Done()
	tick := time.NewTicker(r.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.full:
			r.writeQueued(context.Background(), false)
		case <-tick.C:
			r.writeQueued(context.Background(), true)
		case <-r.stopWriter:
			// Record sees closed by now, so this empties the queue for good.
			r.writeQueued(r.closeCtx, true)
			return
		}
	}
}

// writeQueued writes the sealed chunks a batch at a time, oldest first, and
// with partial also what is left over with the chunk being filled. It takes
// one batch at a time so that, as with a channel, at most one batch beyond
// QueueSize is held in memory.
func (r *Recorder) writeQueued(ctx context.Context, partial bool) {
	var batch [][]Span
	for {
		r.mu.Lock()
		var wasOpen bool
		batch, wasOpen = r.queue.pop(partial, batch[:0])
		r.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		if wasOpen {
			// Spans arriving from now on wait for the next tick (or a full
			// batch) rather than keep this loop writing small batches.
			partial = false
		}
		r.flush(ctx, batch)
		// Clearing megabytes of spans under the mutex would hold up Record.
		for i := range batch {
			batch[i] = clear0(batch[i])
		}
		r.mu.Lock()
		for i, chunk := range batch {
			r.queue.recycle(chunk)
			batch[i] = nil
		}
		r.mu.Unlock()
	}
}

// flush writes one batch (its chunks in order) to the sink, or to the spill
// while older spans wait there (keeping order, and not hammering a sink that
// is down) or when the write fails.
func (r *Recorder) flush(ctx context.Context, batch [][]Span) {
	if r.otlp != nil {
		// Before the store write, and whatever its outcome: a collector need not wait for a store that is
		// down, and spans replayed from the spill later are not sent twice.
		r.otlp.enqueue(batch...)
	}
	if r.spill.pending() || ctx.Err() != nil {
		r.toSpill(batch...)
		return
	}
	if err := r.write(ctx, batch...); err != nil {
		r.log.Warn("trace: span write failed; spilling to disk", "spans", countSpans(batch), "err", err)
		r.toSpill(batch...)
	}
}

func countSpans(batch [][]Span) int {
	n := 0
	for _, chunk := range batch {
		n += len(chunk)
	}
	return n
}

// clear0 drops references held by the batch (attrs, strings) before reuse.
func clear0(batch []Span) []Span {
	clear(batch)
	return batch[:0]
}

func (r *Recorder) write(ctx context.Context, batch ...[]Span) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.WriteTimeout)
	defer cancel()
	start := time.Now()
	err := r.sink.WriteSpans(ctx, batch...)
	r.m.writeSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		r.m.writeErrors.Inc()
		return err
	}
	r.written.Add(int64(countSpans(batch)))
	return nil
}

func (r *Recorder) toSpill(batch ...[]Span) {
	spilled := false
	for _, spans := range batch {
		if err := r.spill.append(spans); err != nil {
			r.dropped.Add(int64(len(spans)))
			r.log.Error("trace: spans lost: spill failed", "spans", len(spans), "err", err)
			r.setErr(err)
			continue
		}
		r.spilled.Add(int64(len(spans)))
		spilled = true
	}
	if spilled {
		r.kickReplay()
	}
}

// spillLoop moves spans that found the queue full to disk, off the request
// path.
func (r *Recorder) spillLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.overflowCh:
			r.drainOverflow()
		case <-r.stopSpill:
			r.drainOverflow()
			return
		}
	}
}

func (r *Recorder) drainOverflow() {
	r.mu.Lock()
	spans := r.overflow
	r.overflow = nil
	r.mu.Unlock()
	if r.otlp != nil && len(spans) > 0 {
		r.otlp.enqueue(spans)
	}
	for len(spans) > 0 {
		n := min(len(spans), r.cfg.BatchSize)
		r.toSpill(spans[:n])
		spans = spans[n:]
	}
}

// replayLoop sends spilled spans, oldest first, whenever there are some,
// pausing RetryInterval after each failure.
func (r *Recorder) replayLoop(ctx context.Context) {
	defer r.replayWG.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		for ctx.Err() == nil {
			more, err := r.replayOnce(ctx)
			if err != nil {
				r.log.Warn("trace: replay of spilled spans failed; will retry", "err", err, "retry_in", r.cfg.RetryInterval)
				select {
				case <-ctx.Done():
					return
				case <-time.After(r.cfg.RetryInterval):
				}
				continue
			}
			if !more {
				break
			}
		}
	}
}

func (r *Recorder) replayOnce(ctx context.Context) (bool, error) {
	c, err := r.spill.next(r.cfg.BatchSize)
	if err != nil || c == nil {
		return false, err
	}
	if len(c.spans) > 0 {
		if err := r.write(ctx, c.spans); err != nil {
			return true, err
		}
		r.replayed.Add(int64(len(c.spans)))
	}
	if err := r.spill.commit(c); err != nil {
		// The spans were written; failing to note it would resend them, so
		// stop replaying this run rather than loop on duplicates.
		r.log.Error("trace: cannot record spill progress", "err", err)
		return false, nil
	}
	return true, nil
}
