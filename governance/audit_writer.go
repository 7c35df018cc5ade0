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
)

// AuditWriter appends audit events to a sink in batches on its own
// goroutine. Unlike the span recorder it has no disk spill: audit events are
// few unless someone floods the gateway, and then dropping (and counting)
// the excess is what keeps memory bounded.
type AuditWriter struct {
	sink    AuditSink
	log     *slog.Logger
	queue   chan AuditEvent
	dropped prometheus.Counter
	written prometheus.Counter

	// mu guards closed: Append holds it shared while it enqueues, so Close
	// can close the queue without racing a send.
	mu        sync.RWMutex
	closed    bool
	closeCtx  context.Context
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
		queue: make(chan AuditEvent, AuditQueueSize),
		done:  make(chan struct{}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_audit_events_dropped_total",
			Help: "Audit events lost: the queue was full, the store refused the batch, or the writer was closed.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_audit_events_written_total", Help: "Audit events the store accepted.",
		}),
	}
	if reg != nil {
		if err := errors.Join(reg.Register(w.dropped), reg.Register(w.written)); err != nil {
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
		w.mu.Unlock()
	})
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
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

func (w *AuditWriter) flush(batch []AuditEvent) []AuditEvent {
	if len(batch) == 0 {
		return batch
	}
	ctx := context.Background()
	w.mu.RLock()
	if w.closeCtx != nil {
		ctx = w.closeCtx
	}
	w.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, auditWriteTimeout)
	defer cancel()
	if err := w.sink.AppendAudit(ctx, batch); err != nil {
		w.dropped.Add(float64(len(batch)))
		w.log.Error("audit events lost: store refused the batch", "events", len(batch), "err", err)
	} else {
		w.written.Add(float64(len(batch)))
	}
	clear(batch)
	return batch[:0]
}
