package governance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AuditSink stores audit events (the app adapts storage.Store to it).
// AppendAudit must not keep the slice after it returns.
type AuditSink interface {
	AppendAudit(ctx context.Context, events []AuditEvent) error
}

// Bounds of the audit writer. The queue holds at most AuditQueueSize events
// (a few hundred bytes each: under 4 MB), so a flood of wrong keys costs a
// fixed amount of memory; beyond it events are dropped and counted.
const (
	AuditQueueSize    = 10000
	auditBatchSize    = 1000
	auditLinger       = 500 * time.Millisecond
	auditWriteTimeout = 10 * time.Second
	// A batch the store refuses is tried again, with backoff, for this long:
	// long enough to ride out a store restart, short enough that a batch the
	// store can never take does not hold up every later event.
	auditRetryFor      = 2 * time.Minute
	auditRetryMinDelay = 100 * time.Millisecond
	auditRetryMaxDelay = 5 * time.Second
)

// AuditWriter appends audit events to a sink in batches on its own
// goroutine. Unlike the span recorder it has no disk spill: audit events are
// few unless someone floods the gateway, and then dropping (and counting)
// the excess is what keeps memory bounded. A store outage shorter than
// auditRetryFor loses nothing as long as the queue holds what arrives
// meanwhile.
type AuditWriter struct {
	sink     AuditSink
	log      *slog.Logger
	queue    chan AuditEvent
	dropped  prometheus.Counter
	written  prometheus.Counter
	failures prometheus.Counter

	// mu guards closed: Append holds it shared while it enqueues, so Close
	// can close the queue without racing a send.
	mu        sync.RWMutex
	closed    bool
	closeCtx  context.Context
	closing   chan struct{} // closed by Close: a retry stops waiting
	done      chan struct{}
	closeOnce sync.Once
}

// NewAuditWriter starts a writer. reg may be nil (metrics not registered),
// log may be nil (discarded).
func NewAuditWriter(sink AuditSink, reg prometheus.Registerer, log *slog.Logger) (*AuditWriter, error) {
	if sink == nil {
		return nil, errors.New("governance: NewAuditWriter needs a sink")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &AuditWriter{
		sink: sink, log: log,
		queue:   make(chan AuditEvent, AuditQueueSize),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_audit_events_dropped_total",
			Help: "Audit events lost: the queue was full, the store refused the batch, or the writer was closed.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_audit_events_written_total", Help: "Audit events the store accepted.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_audit_write_failures_total", Help: "Audit batch writes the store refused (each batch is tried again).",
		}),
	}
	if reg != nil {
		if err := errors.Join(reg.Register(w.dropped), reg.Register(w.written), reg.Register(w.failures)); err != nil {
			return nil, fmt.Errorf("governance: audit metrics: %w", err)
		}
	}
	go w.run()
	return w, nil
}

// Append queues e; it never blocks. A full queue drops e.
func (w *AuditWriter) Append(e AuditEvent) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropped.Inc()
		return
	}
	select {
	case w.queue <- e:
	default:
		w.dropped.Inc()
	}
}

// Close writes what is queued (within ctx) and stops the writer. It is
// idempotent.
func (w *AuditWriter) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		w.closed, w.closeCtx = true, ctx
		close(w.queue)
		close(w.closing)
		w.mu.Unlock()
	})
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
	}
	// A ctx that ended before Close was called makes both cases ready at once, and select picks at random: a
	// writer that finished is not "still queued" (events it lost were logged when it dropped them).
	select {
	case <-w.done:
		return nil
	default:
		return fmt.Errorf("governance: audit events still queued: %w", ctx.Err())
	}
}

// run batches events: after the first one it lingers briefly so a burst goes
// in one insert (ClickHouse wants few, large inserts), and writes at once
// when the batch is full.
func (w *AuditWriter) run() {
	defer close(w.done)
	batch := make([]AuditEvent, 0, auditBatchSize)
	timer := time.NewTimer(auditLinger)
	timer.Stop()
	for {
		select {
		case e, ok := <-w.queue:
			if !ok {
				w.flush(batch)
				return
			}
			if len(batch) == 0 {
				timer.Reset(auditLinger)
			}
			batch = append(batch, e)
			if len(batch) < auditBatchSize {
				continue
			}
			timer.Stop()
		case <-timer.C:
		}
		batch = w.flush(batch)
	}
}

// flush writes batch, trying again while the store refuses it: for up to
// auditRetryFor, or until the writer is closed and its Close context ends.
// Meanwhile new events wait in the bounded queue.
func (w *AuditWriter) flush(batch []AuditEvent) []AuditEvent {
	if len(batch) == 0 {
		return batch
	}
	giveUp := time.Now().Add(auditRetryFor)
	delay := auditRetryMinDelay
	closing := w.closing
	for attempt := 1; ; attempt++ {
		closeCtx := w.closeContext()
		err := w.write(closeCtx, batch)
		if err == nil {
			w.written.Add(float64(len(batch)))
			if attempt > 1 {
				w.log.Info("audit store accepted the batch again", "events", len(batch), "attempts", attempt)
			}
			break
		}
		w.failures.Inc()
		if (closeCtx != nil && closeCtx.Err() != nil) || time.Now().After(giveUp) {
			w.dropped.Add(float64(len(batch)))
			w.log.Error("audit events lost: store refused the batch", "events", len(batch), "attempts", attempt, "err", err)
			break
		}
		if attempt == 1 {
			w.log.Warn("audit store refused a batch; retrying", "events", len(batch), "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-closing:
			// Close wants what is queued now: one more try at once, then the
			// usual backoff under its context.
			t.Stop()
			closing = nil
		}
		delay = min(2*delay, auditRetryMaxDelay)
	}
	clear(batch)
	return batch[:0]
}

// closeContext is the context Close was given, nil while the writer is open.
func (w *AuditWriter) closeContext() context.Context {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.closeCtx
}

func (w *AuditWriter) write(closeCtx context.Context, batch []AuditEvent) error {
	ctx := closeCtx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, auditWriteTimeout)
	defer cancel()
	return w.sink.AppendAudit(ctx, batch)
}
