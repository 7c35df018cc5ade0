package trace

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// OTLPConfig sends the recorder's spans to an OpenTelemetry collector over OTLP/HTTP with the JSON encoding,
// besides the store. It is the `trace.otlp` YAML block; absent, nothing is exported.
type OTLPConfig struct {
	// Endpoint is the collector's OTLP/HTTP base URL (http://collector:4318); spans are POSTed to
	// <endpoint>/v1/traces. A URL already ending in /v1/traces is used as it is.
	Endpoint string `yaml:"endpoint" mapstructure:"endpoint"`
	// Headers are sent with every export (an API key for a hosted backend); values may be env:NAME.
	Headers map[string]string `yaml:"headers" mapstructure:"headers"`
	// Timeout bounds one POST. Default 10s.
	Timeout time.Duration `yaml:"timeout" mapstructure:"timeout"`
	// QueueSize bounds the spans waiting for export; batches that find it full are dropped (the store still
	// has them). Default 20000.
	QueueSize int `yaml:"queue_size" mapstructure:"queue_size"`
	// BatchSize is the most spans in one POST: a recorder batch is cut into POSTs of this size. Default 1000.
	BatchSize int `yaml:"batch_size" mapstructure:"batch_size"`
	// MaxRetries is how many times a POST that failed in a way worth retrying (no answer, 429, 502, 503, 504)
	// is sent again, after a backoff or the collector's Retry-After. Default 3; -1 never retries.
	MaxRetries int `yaml:"max_retries" mapstructure:"max_retries"`
}

// Defaults of OTLPConfig's zero fields.
const (
	DefaultOTLPTimeout    = 10 * time.Second
	DefaultOTLPQueueSize  = 20000
	DefaultOTLPBatchSize  = 1000
	DefaultOTLPMaxRetries = 3
)

// otlp backoff: the first retry waits about otlpBackoff, each next one twice as long; Retry-After is honoured
// up to otlpMaxRetryAfter, beyond which the batch is given up rather than hold the queue.
const (
	otlpBackoff       = 500 * time.Millisecond
	otlpMaxRetryAfter = 30 * time.Second
	otlpWarnEvery     = time.Minute
)

func (c *OTLPConfig) validate(bad func(field, msg string)) {
	u, err := url.Parse(c.Endpoint)
	switch {
	case c.Endpoint == "":
		bad("otlp.endpoint", "is required (the collector's OTLP/HTTP URL, e.g. http://collector:4318)")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		bad("otlp.endpoint", "must be an http:// or https:// URL")
	}
	for k, v := range c.Headers {
		if !validHeaderName(k) {
			bad("otlp.headers", fmt.Sprintf("%q is not a valid header name", k))
		} else if strings.ContainsAny(v, "\r\n\x00") {
			// The value may be a secret: name the header only.
			bad("otlp.headers."+k, "must not contain line breaks or NUL")
		}
	}
	if c.Timeout < 0 {
		bad("otlp.timeout", "must not be negative")
	}
	if c.QueueSize < 0 {
		bad("otlp.queue_size", "must not be negative")
	}
	if c.BatchSize < 0 {
		bad("otlp.batch_size", "must not be negative")
	}
	if c.MaxRetries < -1 {
		bad("otlp.max_retries", "must be -1 (no retries) or more")
	}
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func (c OTLPConfig) withDefaults() OTLPConfig {
	if c.Timeout == 0 {
		c.Timeout = DefaultOTLPTimeout
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultOTLPQueueSize
	}
	if c.BatchSize == 0 {
		c.BatchSize = min(DefaultOTLPBatchSize, c.QueueSize)
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultOTLPMaxRetries
	} else if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	return c
}

// tracesURL is the endpoint with the OTLP traces path, as OTEL_EXPORTER_OTLP_ENDPOINT is read.
func (c OTLPConfig) tracesURL() string {
	if strings.HasSuffix(c.Endpoint, "/v1/traces") {
		return c.Endpoint
	}
	return strings.TrimSuffix(c.Endpoint, "/") + "/v1/traces"
}

// otlpExporter sends span batches to a collector on its own goroutine. It never blocks the recorder: a batch
// that finds its queue full is dropped and counted, and a collector that keeps failing costs only the batches
// it was sent. The store, not the exporter, is where no span is lost.
type otlpExporter struct {
	cfg      OTLPConfig
	url      string
	header   http.Header
	client   *http.Client
	log      *slog.Logger
	resource []byte

	mu      sync.Mutex
	queue   [][]Span // batches of at most BatchSize spans, copies the exporter owns
	queued  int
	closed  bool
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	ctx     context.Context // cancelled when Close's deadline passes: pending POSTs and backoffs end
	cancel  context.CancelFunc
	body    []byte
	closing sync.Once

	exported, dropped, failed atomic.Int64

	warnMu                   sync.Mutex
	lastWarn                 time.Time
	unwarnedDrop, unwarnFail int64

	collectors []prometheus.Collector
}

func newOTLPExporter(cfg OTLPConfig, log *slog.Logger) *otlpExporter {
	cfg = cfg.withDefaults()
	h := http.Header{}
	for k, v := range cfg.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	ctx, cancel := context.WithCancel(context.Background())
	e := &otlpExporter{
		cfg: cfg, url: cfg.tracesURL(), header: h, log: log, resource: otlpResource(),
		client: &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A redirect would carry the configured headers (API keys) to wherever the collector points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchboard_trace_otlp_" + name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	e.collectors = []prometheus.Collector{
		counter("spans_exported_total", "Spans the OTLP collector accepted.", &e.exported),
		counter("spans_dropped_total", "Spans not exported because the OTLP queue was full or shutdown ran out of time.", &e.dropped),
		counter("spans_failed_total", "Spans the OTLP collector refused, or that were given up after retries.", &e.failed),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchboard_trace_otlp_queue_depth", Help: "Spans waiting for OTLP export."},
			func() float64 { e.mu.Lock(); defer e.mu.Unlock(); return float64(e.queued) }),
	}
	go e.loop()
	return e
}

// enqueue copies batch into the export queue, cut into POST-sized pieces, as far as there is room, and drops
// the rest. It runs on the recorder's writer: it only copies.
func (e *otlpExporter) enqueue(batch ...[]Span) {
	var lost int64
	e.mu.Lock()
	for _, chunk := range batch {
		for len(chunk) > 0 {
			room := e.cfg.QueueSize - e.queued
			if e.closed || room <= 0 {
				lost += int64(len(chunk))
				break
			}
			n := min(len(chunk), e.cfg.BatchSize, room)
			if last := len(e.queue) - 1; last >= 0 && len(e.queue[last])+n <= e.cfg.BatchSize {
				// Top up the newest piece rather than POST a recorder's small batches one by one.
				e.queue[last] = append(e.queue[last], chunk[:n]...)
			} else {
				e.queue = append(e.queue, append(make([]Span, 0, min(e.cfg.BatchSize, max(n, len(chunk)))), chunk[:n]...))
			}
			e.queued += n
			chunk = chunk[n:]
		}
	}
	e.mu.Unlock()
	signal(e.wake)
	if lost > 0 {
		e.dropped.Add(lost)
		e.warn(lost, 0, nil)
	}
}

func (e *otlpExporter) loop() {
	defer close(e.done)
	for {
		select {
		case <-e.wake:
			e.drain()
		case <-e.stop:
			e.drain()
			return
		}
	}
}

// drain sends the queue oldest first; once Close's deadline passed, what is left is dropped.
func (e *otlpExporter) drain() {
	for {
		e.mu.Lock()
		if len(e.queue) == 0 {
			e.mu.Unlock()
			return
		}
		spans := e.queue[0]
		e.queue[0] = nil
		e.queue = e.queue[1:]
		e.mu.Unlock()
		if e.ctx.Err() != nil {
			e.dropped.Add(int64(len(spans)))
		} else {
			e.send(spans)
		}
		e.mu.Lock()
		e.queued -= len(spans)
		e.mu.Unlock()
	}
}

// send POSTs one batch, retrying what the OTLP spec calls retryable, and counts the outcome.
func (e *otlpExporter) send(spans []Span) {
	b := append(e.body[:0], e.resource...)
	for i := range spans {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendOTLPSpan(b, &spans[i])
	}
	b = append(b, otlpSuffix...)
	e.body = b
	if cap(e.body) > 16<<20 {
		e.body = nil // one huge batch of attributes need not stay pinned
	}
	n := int64(len(spans))
	var err error
	for attempt := 0; ; attempt++ {
		var wait time.Duration
		var retry bool
		var rejected int64
		rejected, wait, retry, err = e.post(b)
		if err == nil {
			e.exported.Add(n - rejected)
			if rejected > 0 {
				e.failed.Add(rejected)
				e.warn(0, rejected, errors.New("the collector rejected some spans (partial success)"))
			}
			return
		}
		if !retry || attempt >= e.cfg.MaxRetries || e.ctx.Err() != nil || e.stopping() {
			// Shutting down, a collector in trouble gets one try per batch: waiting out its backoffs would
			// hold the shutdown for nothing.
			break
		}
		if wait == 0 {
			backoff := otlpBackoff << attempt
			wait = backoff/2 + rand.N(backoff) // jittered, so replicas do not retry in step
		}
		if wait > otlpMaxRetryAfter {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-e.stop:
			t.Stop()
		case <-e.ctx.Done():
			t.Stop()
		}
	}
	e.failed.Add(n)
	e.warn(0, n, err)
}

func (e *otlpExporter) stopping() bool {
	select {
	case <-e.stop:
		return true
	default:
		return false
	}
}

// post sends one request. It reports how many spans a partial success rejected, or the error, whether it is
// worth retrying, and the Retry-After the collector asked for.
func (e *otlpExporter) post(body []byte) (rejected int64, wait time.Duration, retry bool, err error) {
	ctx, cancel := context.WithTimeout(e.ctx, e.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, false, err
	}
	req.Header = e.header.Clone()
	resp, err := e.client.Do(req)
	if err != nil {
		// The error names the URL; http.Client already hides a password in it.
		return 0, 0, true, err
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return partialRejected(reply), 0, false, nil
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		retry = true
		if secs, perr := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); perr == nil && secs >= 0 {
			wait = time.Duration(secs) * time.Second
		} else if at, perr := http.ParseTime(resp.Header.Get("Retry-After")); perr == nil {
			wait = max(time.Until(at), time.Millisecond)
		}
	}
	return 0, wait, retry, fmt.Errorf("collector answered HTTP %d: %s", resp.StatusCode, e.redact(reply))
}

// partialRejected reads ExportTraceServiceResponse.partialSuccess.rejectedSpans, which protojson writes as a
// string and some collectors as a number.
func partialRejected(reply []byte) int64 {
	var r struct {
		PartialSuccess struct {
			RejectedSpans json.RawMessage `json:"rejectedSpans"`
		} `json:"partialSuccess"`
	}
	if json.Unmarshal(reply, &r) != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.Trim(string(r.PartialSuccess.RejectedSpans), `"`), 10, 64)
	return max(n, 0)
}

// redact shortens a collector's error reply for the log and blanks the configured header values, should a
// collector quote the credential it was sent.
func (e *otlpExporter) redact(reply []byte) string {
	s := strings.TrimSpace(string(reply))
	for _, v := range e.cfg.Headers {
		if len(v) >= 4 {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "..."
	}
	return s
}

// warn logs lost spans at most once per otlpWarnEvery, with the counts since the last line, so a collector
// down for hours writes a line a minute rather than one per batch.
func (e *otlpExporter) warn(dropped, failed int64, err error) {
	e.warnMu.Lock()
	e.unwarnedDrop += dropped
	e.unwarnFail += failed
	now := time.Now()
	if !e.lastWarn.IsZero() && now.Sub(e.lastWarn) < otlpWarnEvery {
		e.warnMu.Unlock()
		return
	}
	d, f := e.unwarnedDrop, e.unwarnFail
	e.lastWarn, e.unwarnedDrop, e.unwarnFail = now, 0, 0
	e.warnMu.Unlock()
	attrs := []any{"endpoint", redactedURL(e.url), "dropped_spans", d, "failed_spans", f}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	e.log.Warn("trace: spans not exported over OTLP (the store still has them)", attrs...)
}

func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}

// close sends what is queued until ctx is done, then drops the rest.
func (e *otlpExporter) close(ctx context.Context) {
	e.closing.Do(func() {
		e.mu.Lock()
		e.closed = true
		e.mu.Unlock()
		stop := context.AfterFunc(ctx, e.cancel)
		defer stop()
		close(e.stop)
		<-e.done
		e.cancel()
		e.client.CloseIdleConnections()
	})
}
