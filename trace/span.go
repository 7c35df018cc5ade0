package trace

import (
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Layer says which part of the gateway a span belongs to.
type Layer string

// Layers of the gateway.
const (
	LayerGateway Layer = "gateway"
	LayerLLM     Layer = "llm"
	LayerTool    Layer = "tool"
	LayerAgent   Layer = "agent"
)

// Status is the outcome of a span.
type Status string

// Span outcomes.
const (
	StatusOK    Status = "ok"
	StatusError Status = "error"
)

// Attr is one free-form span attribute (task_id, context_id, A2A state
// transitions...). A slice keeps order and allows repeated keys.
type Attr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Span is one call through the gateway, written as one immutable row when it
// ends. Fields are set by the protocol package between Tracer.Start and End;
// after End the span must not be changed (the recorder holds a copy, but
// Attrs shares its backing array).
type Span struct {
	TraceID      TraceID `json:"trace_id"`
	SpanID       SpanID  `json:"span_id"`
	ParentSpanID SpanID  `json:"parent_span_id"` // zero: a root span

	Layer Layer  `json:"layer"`
	Name  string `json:"name"` // OTel GenAI style: "chat gpt-4o-mini", "tools/call weather__get_forecast"

	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration_ns"`

	Status     Status `json:"status"`
	HTTPStatus int    `json:"http_status,omitempty"`
	Error      string `json:"error,omitempty"`

	// The principal; never the secret key itself.
	KeyID   string `json:"key_id,omitempty"`
	KeyName string `json:"key_name,omitempty"`
	Team    string `json:"team,omitempty"`
	Org     string `json:"org,omitempty"`

	Model      string `json:"model,omitempty"`
	Provider   string `json:"provider,omitempty"`
	Deployment string `json:"deployment,omitempty"`
	ToolServer string `json:"tool_server,omitempty"`
	Tool       string `json:"tool,omitempty"`
	Agent      string `json:"agent,omitempty"`

	InputTokens  int64 `json:"input_tokens,omitempty"`
	OutputTokens int64 `json:"output_tokens,omitempty"`
	CachedTokens int64 `json:"cached_tokens,omitempty"`
	// CostNanoUSD is exact: spend is the sum of this over spans, so a cost
	// must sit on exactly one span of a call.
	CostNanoUSD int64 `json:"cost_nano_usd,omitempty"`

	Retries   int32         `json:"retries,omitempty"`
	Fallbacks int32         `json:"fallbacks,omitempty"`
	TTFT      time.Duration `json:"ttft_ns,omitempty"` // time to first token/byte of a stream

	Attrs []Attr `json:"attrs,omitempty"`

	// Propagation state and life cycle; not stored.
	flags      byte
	traceState string
	rec        *Recorder
	ended      uint32 // atomic; a plain integer so Span values copy without vet complaints
}

// Context is the span's context to send upstream (traceparent) and back to
// the client.
func (s *Span) Context() SpanContext {
	return SpanContext{TraceID: s.TraceID, SpanID: s.SpanID, Flags: s.flags, TraceState: s.traceState}
}

// End stamps the duration and hands a copy of the span to the recorder. Only
// the first call counts; End never blocks on storage.
func (s *Span) End() {
	if !atomic.CompareAndSwapUint32(&s.ended, 0, 1) {
		return
	}
	s.Duration = time.Since(s.Start)
	if s.rec == nil {
		return
	}
	v := *s
	v.rec, v.ended = nil, 0
	s.rec.Record(v)
}

// Tracer starts spans that end up in one Recorder.
type Tracer struct {
	rec *Recorder
}

// NewTracer returns a tracer recording into rec, which must not be nil (tests
// use a Recorder over an in-memory Sink).
func NewTracer(rec *Recorder) *Tracer {
	if rec == nil {
		panic("trace: NewTracer needs a Recorder")
	}
	return &Tracer{rec: rec}
}

// Start begins a span as a child of parent, or as the root of a new sampled
// trace when parent is invalid. Start is set to now.
func (t *Tracer) Start(parent SpanContext, layer Layer, name string) *Span {
	s := &Span{Layer: layer, Name: name, rec: t.rec}
	g := idSources.Get().(*rand.ChaCha8)
	if parent.IsValid() {
		s.TraceID, s.ParentSpanID, s.flags, s.traceState = parent.TraceID, parent.SpanID, parent.Flags, parent.TraceState
	} else {
		s.TraceID, s.flags = newTraceID(g), FlagSampled
	}
	s.SpanID = newSpanID(g)
	idSources.Put(g)
	s.Start = time.Now()
	return s
}
