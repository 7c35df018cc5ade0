package trace

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// collector is an OTLP/HTTP receiver: it keeps every request and answers with what reply returns.
type collector struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	heads  []http.Header
	reply  func(n int) (status int, header map[string]string)
}

func startCollector(t *testing.T, reply func(n int) (int, map[string]string)) *collector {
	t.Helper()
	c := &collector{reply: reply}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		n := len(c.bodies)
		if r.URL.Path == "/v1/traces" {
			c.bodies = append(c.bodies, body)
			c.heads = append(c.heads, r.Header.Clone())
		}
		c.mu.Unlock()
		if r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		status, h := http.StatusOK, map[string]string(nil)
		if c.reply != nil {
			status, h = c.reply(n)
		}
		for k, v := range h {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *collector) requests() ([][]byte, []http.Header) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.bodies...), append([]http.Header(nil), c.heads...)
}

// decode parses an export request with the official OTLP schema; protojson refuses unknown or mistyped fields.
// OTLP JSON differs from protojson in one point: ids are hex, not base64, so they are checked and converted first.
func decode(t *testing.T, body []byte) *tracepb.TracesData {
	t.Helper()
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("export request is not JSON: %v\n%s", err, body)
	}
	var convert func(v any)
	convert = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "traceId" || k == "spanId" || k == "parentSpanId" {
					raw, err := hex.DecodeString(x.(string))
					if err != nil || x.(string) != strings.ToLower(x.(string)) {
						t.Fatalf("%s %q is not lowercase hex", k, x)
					}
					v[k] = base64.StdEncoding.EncodeToString(raw)
					continue
				}
				convert(x)
			}
		case []any:
			for _, x := range v {
				convert(x)
			}
		}
	}
	convert(doc)
	pj, _ := json.Marshal(doc)
	var td tracepb.TracesData
	if err := protojson.Unmarshal(pj, &td); err != nil {
		t.Fatalf("export request is not OTLP JSON: %v\n%s", err, body)
	}
	return &td
}

func exportedSpans(t *testing.T, bodies [][]byte) []*tracepb.Span {
	var out []*tracepb.Span
	for _, b := range bodies {
		for _, rs := range decode(t, b).ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				out = append(out, ss.Spans...)
			}
		}
	}
	return out
}

func otlpAttrs(sp *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range sp.Attributes {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = strconv.FormatInt(v.IntValue, 10)
		default:
			m[kv.Key] = "unexpected type: " + kv.Value.String()
		}
	}
	return m
}

func newOTLPRecorder(t *testing.T, sink Sink, otlp OTLPConfig, reg prometheus.Registerer, log *slog.Logger) *Recorder {
	t.Helper()
	r, err := NewRecorder(RecorderConfig{FlushInterval: 20 * time.Millisecond, SpillDir: t.TempDir(), OTLP: &otlp}, sink, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The spans the recorder writes reach the collector as OTLP JSON the official schema reads, with the GenAI
// attributes, kinds, parents and status a tracing backend shows.
func TestOTLPExportIsOTLPJSON(t *testing.T) {
	t.Parallel()
	col := startCollector(t, nil)
	sink := &memSink{}
	r := newOTLPRecorder(t, sink, OTLPConfig{Endpoint: col.URL, Headers: map[string]string{"X-Api-Key": "collector-secret"}}, nil, nil)

	start := time.Unix(1_700_000_000, 123_456_789)
	call := Span{TraceID: TraceID{1, 2, 3}, SpanID: SpanID{1}, Layer: LayerLLM, Name: "chat gpt-4o-mini", Start: start,
		Duration: 1500 * time.Millisecond, Status: StatusOK, HTTPStatus: 200, KeyID: "key_1", KeyName: "ci", Team: "platform",
		Model: "gpt-4o-mini", Provider: "openai", Deployment: "openai/gpt-4o-mini#2", InputTokens: 12, OutputTokens: 34,
		CostNanoUSD: 1_500_000, Retries: 1, TTFT: 250 * time.Millisecond,
		Attrs: []Attr{{Key: "requested_model", Value: "fast"}, {Key: "usage", Value: "estimated"}}, traceState: "vendor=x"}
	attempt := Span{TraceID: call.TraceID, SpanID: SpanID{2}, ParentSpanID: call.SpanID, Layer: LayerLLM,
		Name: "attempt openai/gpt-4o-mini#1", Start: start, Duration: time.Millisecond, Status: StatusError, HTTPStatus: 503,
		Error: "deployment openai/gpt-4o-mini#1 answered HTTP 503", Model: "gpt-4o-mini", Provider: "azure", Deployment: "openai/gpt-4o-mini#1"}
	tool := Span{TraceID: call.TraceID, SpanID: SpanID{3}, ParentSpanID: SpanID{9}, Layer: LayerTool, Name: "tools/call weather__get",
		Start: start, Status: StatusError, Error: "tool said \"no\"\n\x01\xff", ToolServer: "weather", Tool: "get", CostNanoUSD: 1}
	agent := Span{TraceID: call.TraceID, SpanID: SpanID{9}, Layer: LayerAgent, Name: "invoke_agent writer", Start: start,
		Status: StatusOK, Agent: "writer", Attrs: []Attr{{Key: "a2a.method", Value: "SendMessage"}, {Key: "task_id", Value: "t1"}}}
	for _, s := range []Span{call, attempt, tool, agent} {
		r.Record(s)
	}
	waitFor(t, "the export", func() bool { b, _ := col.requests(); return len(exportedSpans(t, b)) == 4 })
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.spans()); n != 4 {
		t.Fatalf("store got %d spans, want 4", n)
	}
	bodies, heads := col.requests()
	if got := heads[0].Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if got := heads[0].Get("X-Api-Key"); got != "collector-secret" {
		t.Errorf("configured header %q", got)
	}
	td := decode(t, bodies[0])
	res := map[string]string{}
	for _, kv := range td.ResourceSpans[0].Resource.Attributes {
		res[kv.Key] = kv.Value.GetStringValue()
	}
	if res["service.name"] != "switchboard" || len(res["service.instance.id"]) != 36 {
		t.Errorf("resource %v", res)
	}
	if name := td.ResourceSpans[0].ScopeSpans[0].Scope.Name; name != "switchboard" {
		t.Errorf("scope %q", name)
	}

	byName := map[string]*tracepb.Span{}
	for _, sp := range exportedSpans(t, bodies) {
		byName[sp.Name] = sp
		if hex.EncodeToString(sp.TraceId) != call.TraceID.String() {
			t.Errorf("%s: trace id %x", sp.Name, sp.TraceId)
		}
	}
	tests := []struct {
		name     string
		kind     tracepb.Span_SpanKind
		parent   SpanID
		status   tracepb.Status_StatusCode
		message  string
		attrs    map[string]string
		notAttrs []string
	}{
		{name: "chat gpt-4o-mini", kind: tracepb.Span_SPAN_KIND_SERVER, status: tracepb.Status_STATUS_CODE_UNSET,
			attrs: map[string]string{"gen_ai.operation.name": "chat", "gen_ai.request.model": "fast", "gen_ai.response.model": "gpt-4o-mini",
				"gen_ai.provider.name": "openai", "gen_ai.system": "openai", "gen_ai.usage.input_tokens": "12", "gen_ai.usage.output_tokens": "34",
				"http.response.status_code": "200", "switchboard.cost_usd": "0.0015", "switchboard.cost_nano_usd": "1500000",
				"switchboard.team": "platform", "switchboard.key_name": "ci", "switchboard.key_id": "key_1", "switchboard.layer": "llm",
				"switchboard.deployment": "openai/gpt-4o-mini#2", "switchboard.retries": "1", "switchboard.ttft_ns": "250000000",
				"switchboard.usage": "estimated"},
			notAttrs: []string{"switchboard.requested_model", "error.type", "switchboard.fallbacks"}},
		{name: "attempt openai/gpt-4o-mini#1", kind: tracepb.Span_SPAN_KIND_CLIENT, parent: call.SpanID,
			status: tracepb.Status_STATUS_CODE_ERROR, message: attempt.Error,
			attrs:    map[string]string{"gen_ai.provider.name": "azure.ai.openai", "error.type": "503", "http.response.status_code": "503"},
			notAttrs: []string{"gen_ai.operation.name"}},
		{name: "tools/call weather__get", kind: tracepb.Span_SPAN_KIND_SERVER, parent: agent.SpanID,
			status: tracepb.Status_STATUS_CODE_ERROR, message: "tool said \"no\"\n\x01\uFFFD",
			attrs: map[string]string{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get", "mcp.method.name": "tools/call",
				"error.type": "_OTHER", "switchboard.tool_server": "weather", "switchboard.cost_usd": "0.000000001"}},
		{name: "invoke_agent writer", kind: tracepb.Span_SPAN_KIND_SERVER, status: tracepb.Status_STATUS_CODE_UNSET,
			attrs: map[string]string{"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "writer", "a2a.method": "SendMessage",
				"switchboard.task_id": "t1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := byName[tc.name]
			if sp == nil {
				t.Fatal("not exported")
			}
			if sp.Kind != tc.kind {
				t.Errorf("kind %v, want %v", sp.Kind, tc.kind)
			}
			if tc.parent.IsZero() != (len(sp.ParentSpanId) == 0) || (!tc.parent.IsZero() && hex.EncodeToString(sp.ParentSpanId) != tc.parent.String()) {
				t.Errorf("parent %x, want %s", sp.ParentSpanId, tc.parent)
			}
			if sp.Status.GetCode() != tc.status || sp.Status.GetMessage() != tc.message {
				t.Errorf("status %v %q, want %v %q", sp.Status.GetCode(), sp.Status.GetMessage(), tc.status, tc.message)
			}
			got := otlpAttrs(sp)
			for k, v := range tc.attrs {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
			for _, k := range tc.notAttrs {
				if _, ok := got[k]; ok {
					t.Errorf("unexpected %s = %q", k, got[k])
				}
			}
		})
	}
	chat := byName["chat gpt-4o-mini"]
	if chat.StartTimeUnixNano != uint64(start.UnixNano()) || chat.EndTimeUnixNano != uint64(start.Add(1500*time.Millisecond).UnixNano()) ||
		chat.TraceState != "vendor=x" {
		t.Errorf("chat times %d..%d, tracestate %q", chat.StartTimeUnixNano, chat.EndTimeUnixNano, chat.TraceState)
	}
	if strings.Contains(string(bodies[0]), "collector-secret") {
		t.Error("the configured header value is in the exported JSON")
	}
}

// A collector that is down, answers 503 or hangs never slows Record or the store writes: the store gets every
// span, and the export counts what it could not send.
func TestOTLPCollectorTroubleNeverHoldsTheStore(t *testing.T) {
	t.Parallel()
	down := startCollector(t, nil)
	down.Close()
	tests := []struct {
		name     string
		endpoint func(t *testing.T) string
		metric   string
	}{
		{"down", func(*testing.T) string { return down.URL }, "switchboard_trace_otlp_spans_failed_total"},
		{"503", func(t *testing.T) string {
			return startCollector(t, func(int) (int, map[string]string) {
				return http.StatusServiceUnavailable, map[string]string{"Retry-After": "0"}
			}).URL
		}, "switchboard_trace_otlp_spans_failed_total"},
		{"hangs", func(t *testing.T) string {
			hang := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				select {
				case <-hang:
				case <-r.Context().Done():
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(hang) }) // runs first: Close waits for the handler
			return srv.URL
		}, "switchboard_trace_otlp_spans_dropped_total"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sink := &memSink{}
			reg := prometheus.NewRegistry()
			log := &syncBuffer{}
			r := newOTLPRecorder(t, sink, OTLPConfig{Endpoint: tc.endpoint(t), Timeout: time.Minute, QueueSize: 100, BatchSize: 10,
				MaxRetries: 2}, reg, slog.New(slog.NewTextHandler(log, nil)))
			const spans = 2000
			began := time.Now()
			for i := range spans {
				r.Record(Span{TraceID: TraceID{1}, SpanID: SpanID{byte(i), byte(i >> 8), 1}, Name: "x", Start: time.Now()})
				if i%200 == 0 {
					time.Sleep(25 * time.Millisecond) // several recorder batches
				}
			}
			waitFor(t, "the store", func() bool { return len(sink.spans()) == spans })
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("store writes took %v", took)
			}
			waitFor(t, tc.metric, func() bool { return counterValue(t, reg, tc.metric) > 0 })
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			closed := time.Now()
			if err := r.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(closed); took > 2*time.Second {
				t.Errorf("Close took %v past its deadline", took)
			}
			if exported := counterValue(t, reg, "switchboard_trace_otlp_spans_exported_total"); exported != 0 {
				t.Errorf("exported %v", exported)
			}
			lost := counterValue(t, reg, "switchboard_trace_otlp_spans_failed_total") + counterValue(t, reg, "switchboard_trace_otlp_spans_dropped_total")
			if lost != spans {
				t.Errorf("failed+dropped %v, want %d", lost, spans)
			}
			if n := strings.Count(log.String(), "spans not exported over OTLP"); n != 1 {
				t.Errorf("%d warnings, want one (rate-limited):\n%s", n, log.String())
			}
		})
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.Metric[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A 429 or 503 is retried after the collector's Retry-After, and the batch then counts as exported.
func TestOTLPRetriesHonourRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status     int
		retryAfter string
		wantWait   time.Duration
	}{
		{http.StatusTooManyRequests, "1", time.Second},
		{http.StatusServiceUnavailable, "1", time.Second},
		{http.StatusBadGateway, "", 200 * time.Millisecond}, // the jittered backoff, at least half of 500ms
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var times []time.Time
			col := startCollector(t, func(n int) (int, map[string]string) {
				mu.Lock()
				times = append(times, time.Now())
				mu.Unlock()
				if n == 0 {
					return tc.status, map[string]string{"Retry-After": tc.retryAfter}
				}
				return http.StatusOK, nil
			})
			reg := prometheus.NewRegistry()
			r := newOTLPRecorder(t, &memSink{}, OTLPConfig{Endpoint: col.URL + "/v1/traces"}, reg, nil)
			r.Record(Span{TraceID: TraceID{1}, SpanID: SpanID{1}, Name: "x", Start: time.Now()})
			waitFor(t, "the retry", func() bool { return counterValue(t, reg, "switchboard_trace_otlp_spans_exported_total") == 1 })
			if err := r.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(times) != 2 {
				t.Fatalf("%d requests, want 2", len(times))
			}
			if gap := times[1].Sub(times[0]); gap < tc.wantWait {
				t.Errorf("retried after %v, want at least %v", gap, tc.wantWait)
			}
			if f := counterValue(t, reg, "switchboard_trace_otlp_spans_failed_total"); f != 0 {
				t.Errorf("failed %v", f)
			}
		})
	}
}

// Close sends what is still queued: spans recorded just before shutdown reach the collector.
func TestOTLPCloseFlushes(t *testing.T) {
	t.Parallel()
	col := startCollector(t, nil)
	sink := &memSink{}
	r, err := NewRecorder(RecorderConfig{FlushInterval: time.Hour, SpillDir: t.TempDir(), OTLP: &OTLPConfig{Endpoint: col.URL, BatchSize: 7}}, sink, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		r.Record(Span{TraceID: TraceID{1}, SpanID: SpanID{byte(i + 1)}, Name: "x", Start: time.Now()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	bodies, _ := col.requests()
	if n := len(exportedSpans(t, bodies)); n != 50 || len(bodies) != 8 {
		t.Errorf("collector got %d spans in %d requests, want 50 in 8 (batch_size 7)", n, len(bodies))
	}
}

func TestOTLPConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  OTLPConfig
		want string // "" = valid
	}{
		{"minimal", OTLPConfig{Endpoint: "http://collector:4318"}, ""},
		{"full path", OTLPConfig{Endpoint: "https://api.honeycomb.io/v1/traces", Headers: map[string]string{"x-honeycomb-team": "k"}}, ""},
		{"no endpoint", OTLPConfig{}, "trace.otlp.endpoint: is required"},
		{"not http", OTLPConfig{Endpoint: "grpc://collector:4317"}, "trace.otlp.endpoint: must be an http:// or https:// URL"},
		{"no host", OTLPConfig{Endpoint: "http:///v1/traces"}, "trace.otlp.endpoint: must be an http"},
		{"bad header name", OTLPConfig{Endpoint: "http://c", Headers: map[string]string{"bad name": "v"}}, `"bad name" is not a valid header name`},
		{"header value with newline", OTLPConfig{Endpoint: "http://c", Headers: map[string]string{"Authorization": "Bearer s3cret\r\nX: y"}},
			"trace.otlp.headers.Authorization: must not contain line breaks"},
		{"negative timeout", OTLPConfig{Endpoint: "http://c", Timeout: -1}, "trace.otlp.timeout"},
		{"negative queue", OTLPConfig{Endpoint: "http://c", QueueSize: -1}, "trace.otlp.queue_size"},
		{"retries", OTLPConfig{Endpoint: "http://c", MaxRetries: -2}, "trace.otlp.max_retries"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := RecorderConfig{OTLP: &tc.cfg}.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error shows a header value: %v", err)
			}
		})
	}
}

func TestOTLPTracesURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://c:4318":            "http://c:4318/v1/traces",
		"http://c:4318/":           "http://c:4318/v1/traces",
		"https://c/otlp":           "https://c/otlp/v1/traces",
		"https://c/otlp/v1/traces": "https://c/otlp/v1/traces",
	} {
		if got := (OTLPConfig{Endpoint: in}).tracesURL(); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}
