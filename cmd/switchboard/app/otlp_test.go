package app

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	openai "github.com/sashabaranov/go-openai"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	sbmcp "github.com/switchboard-gw/switchboard/mcp"
	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

const (
	otlpClientKey     = "sk-test-otlp-client-000000000000"
	otlpUpstreamKey   = "sk-upstream-otlp-secret-0123456789"
	otlpCollectorAuth = "Bearer collector-token-0123456789"
)

// otlpCollector is an OTLP/HTTP receiver on loopback that keeps what it is sent and answers with status.
type otlpCollector struct {
	url    string
	mu     sync.Mutex
	bodies [][]byte
	auth   []string
}

func startOTLPCollector(t *testing.T, status int) *otlpCollector {
	t.Helper()
	c := &otlpCollector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "not an OTLP/HTTP JSON request", http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.bodies = append(c.bodies, body)
		c.auth = append(c.auth, r.Header.Get("Authorization"))
		c.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

// spans decodes what the collector got with the official OTLP schema (ids converted from OTLP's hex to
// protojson's base64) and returns the spans of trace tid.
func (c *otlpCollector) spans(t *testing.T, tid string) (map[string][]*tracepb.Span, string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string][]*tracepb.Span{}
	var all strings.Builder
	for _, body := range c.bodies {
		all.Write(body)
		var doc any
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("export is not JSON: %v", err)
		}
		hexToBase64(t, doc)
		pj, _ := json.Marshal(doc)
		var td tracepb.TracesData
		if err := protojson.Unmarshal(pj, &td); err != nil {
			t.Fatalf("export is not OTLP: %v\n%s", err, body)
		}
		for _, rs := range td.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					if hex.EncodeToString(sp.TraceId) == tid {
						out[sp.Name] = append(out[sp.Name], sp)
					}
				}
			}
		}
	}
	return out, all.String()
}

func hexToBase64(t *testing.T, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == "traceId" || k == "spanId" || k == "parentSpanId" {
				raw, err := hex.DecodeString(x.(string))
				if err != nil {
					t.Fatalf("%s %v is not hex", k, x)
				}
				v[k] = base64.StdEncoding.EncodeToString(raw)
				continue
			}
			hexToBase64(t, x)
		}
	case []any:
		for _, x := range v {
			hexToBase64(t, x)
		}
	}
}

func attrsOf(sp *tracepb.Span) map[string]string {
	m := map[string]string{}
	for _, kv := range sp.Attributes {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = strconv.FormatInt(v.IntValue, 10)
		}
	}
	return m
}

// headersTransport adds fixed headers (the gateway key, the workflow's traceparent) to every request.
type headersTransport map[string]string

func (h headersTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// otlpGateway serves a model "fast" whose only deployment answers 503 and falls back to gpt-4o-mini, the MCP
// server weather and the A2A agent researcher, exporting its spans to endpoint.
func otlpGateway(t *testing.T, endpoint string) *started {
	t.Helper()
	llmUp, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{APIKey: otlpUpstreamKey, Fail: map[string]int{"fast": http.StatusServiceUnavailable}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { llmUp.Close() })
	_, toolUp, agentUp := startUpstreams(t, mock.LLMOptions{})
	s := start(t, func(c *config.Config) {
		c.Server.ShutdownTimeout = 3 * time.Second
		dep := llm.DeploymentConfig{Provider: llm.ProviderOpenAI, BaseURL: llmUp.URL + "/v1", APIKey: otlpUpstreamKey}
		price := &llm.PricingConfig{InputPerMTok: "0.15", OutputPerMTok: "0.60"}
		c.Models = []llm.ModelConfig{
			{Name: "fast", Deployments: []llm.DeploymentConfig{dep}, Pricing: price, Fallbacks: []string{"gpt-4o-mini"}},
			{Name: "gpt-4o-mini", Deployments: []llm.DeploymentConfig{dep}, Pricing: price},
		}
		c.MCP = sbmcp.Config{Servers: []sbmcp.ServerConfig{{Name: "weather", URL: toolUp.URL + "/mcp", CostPerCallUSD: "0.001"}}}
		c.A2A = sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "researcher", CardURL: agentUp.URL + "/.well-known/agent-card.json"}}}
		c.Governance = governance.Config{Secret: "otlp-test-secret-0123456789", Teams: []governance.TeamConfig{{Name: "platform"}},
			Keys: []governance.KeyConfig{
				{Name: "ci", Key: otlpClientKey, Team: "platform"}}}
		c.Trace.OTLP = &trace.OTLPConfig{Endpoint: endpoint, Headers: map[string]string{"Authorization": otlpCollectorAuth},
			Timeout: 500 * time.Millisecond, MaxRetries: 1}
	}, nil)
	s.waitReady(t)
	return s
}

// workflow makes a chat call (answered after a fallback), an MCP tool call and an A2A call, all carrying
// traceparent, with the official Go clients; each must succeed within budget.
func workflow(t *testing.T, s *started, traceparent string, budget time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	headers := headersTransport{"Authorization": "Bearer " + otlpClientKey, "Traceparent": traceparent}

	began := time.Now()
	ocfg := openai.DefaultConfig(otlpClientKey)
	ocfg.BaseURL = s.url + "/v1"
	ocfg.HTTPClient = &http.Client{Transport: headers}
	if _, err := openai.NewClientWithConfig(ocfg).CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "fast",
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "hi"}}}); err != nil {
		t.Fatalf("chat: %v", err)
	}
	if took := time.Since(began); took > budget {
		t.Errorf("chat took %v", took)
	}

	began = time.Now()
	tr, err := transport.NewStreamableHTTP(s.url+"/mcp", transport.WithHTTPHeaders(headers))
	if err != nil {
		t.Fatal(err)
	}
	cli := client.NewClient(tr, client.WithProtocolVersion(mcp.ProtocolVersion20260728))
	if err := cli.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.ProtocolVersion20260728
	init.Params.ClientInfo = mcp.Implementation{Name: "otlp-test", Version: "1"}
	if _, err := cli.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	req := mcp.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = "weather__get_forecast", map[string]any{"city": "Paris"}
	if res, err := cli.CallTool(ctx, req); err != nil || res.IsError {
		t.Fatalf("tools/call: %v %+v", err, res)
	}
	if took := time.Since(began); took > budget {
		t.Errorf("tools/call took %v", took)
	}

	began = time.Now()
	card := &a2a.AgentCard{SupportedInterfaces: []*a2a.AgentInterface{{
		URL: s.url + "/a2a/researcher", ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2a.Version}}}
	agent, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithDefaultsDisabled(),
		a2aclient.WithJSONRPCTransport(&http.Client{Transport: headers}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("Paris"))}); err != nil {
		t.Fatalf("a2a: %v", err)
	}
	if took := time.Since(began); took > budget {
		t.Errorf("a2a call took %v", took)
	}
}

// storedSpans counts the spans the gateway's store holds for trace tid.
func storedSpans(t *testing.T, s *started, tid string) int {
	t.Helper()
	id, ok := trace.ParseTraceID(tid)
	if !ok {
		t.Fatal("bad trace id")
	}
	nodes, err := s.app.Store().Trace(context.Background(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return 0 // not written yet
	}
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, node := range nodes {
		n += count(node)
	}
	return n
}

// A platform team's collector sees a workflow that crossed the three protocols as one trace: each call a SERVER
// span under the caller's span, the failed upstream attempt a CLIENT span under its call, with GenAI attributes
// and the error status, and no secret anywhere in what was sent.
func TestWorkflowReachesTheOTLPCollectorAsOneTrace(t *testing.T) {
	t.Parallel()
	col := startOTLPCollector(t, http.StatusOK)
	s := otlpGateway(t, col.url)
	const tid, caller = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	workflow(t, s, "00-"+tid+"-"+caller+"-01", 10*time.Second)

	var got map[string][]*tracepb.Span
	var raw string
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, raw = col.spans(t, tid)
		if len(got["chat fast"]) == 1 && len(got["tools/call weather__get_forecast"]) == 1 && len(got["invoke_agent researcher"]) == 1 &&
			len(got) >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector has %d span names for the trace: %v", len(got), keys(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
	chat := got["chat fast"][0]
	tests := []struct {
		name   string
		kind   tracepb.Span_SpanKind
		parent string
		status tracepb.Status_StatusCode
		attrs  map[string]string
	}{
		{"chat fast", tracepb.Span_SPAN_KIND_SERVER, caller, tracepb.Status_STATUS_CODE_UNSET, map[string]string{
			"gen_ai.operation.name": "chat", "gen_ai.request.model": "fast", "gen_ai.response.model": "gpt-4o-mini",
			"gen_ai.provider.name": "openai", "http.response.status_code": "200", "switchboard.key_name": "ci",
			"switchboard.team": "platform", "switchboard.fallbacks": "1"}},
		{"tools/call weather__get_forecast", tracepb.Span_SPAN_KIND_SERVER, caller, tracepb.Status_STATUS_CODE_UNSET, map[string]string{
			"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_forecast", "mcp.method.name": "tools/call",
			"switchboard.tool_server": "weather", "switchboard.cost_usd": "0.001", "switchboard.cost_nano_usd": "1000000"}},
		{"invoke_agent researcher", tracepb.Span_SPAN_KIND_SERVER, caller, tracepb.Status_STATUS_CODE_UNSET, map[string]string{
			"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher", "switchboard.key_name": "ci"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := got[tc.name][0]
			if sp.Kind != tc.kind || hex.EncodeToString(sp.ParentSpanId) != tc.parent || sp.Status.GetCode() != tc.status {
				t.Errorf("kind %v parent %x status %v, want %v %s %v", sp.Kind, sp.ParentSpanId, sp.Status.GetCode(), tc.kind, tc.parent, tc.status)
			}
			a := attrsOf(sp)
			for k, v := range tc.attrs {
				if a[k] != v {
					t.Errorf("%s = %q, want %q (all %v)", k, a[k], v, a)
				}
			}
			if a["gen_ai.usage.input_tokens"] == "" && tc.name == "chat fast" {
				t.Errorf("no token usage on the chat span: %v", a)
			}
		})
	}
	var failedAttempt bool
	for name, spans := range got {
		for _, sp := range spans {
			if !strings.HasPrefix(name, "attempt ") {
				continue
			}
			if sp.Kind != tracepb.Span_SPAN_KIND_CLIENT || hex.EncodeToString(sp.ParentSpanId) != hex.EncodeToString(chat.SpanId) {
				t.Errorf("attempt %s: kind %v parent %x, want CLIENT under the chat span", name, sp.Kind, sp.ParentSpanId)
			}
			if sp.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR && strings.Contains(sp.Status.GetMessage(), "503") &&
				attrsOf(sp)["error.type"] == "503" {
				failedAttempt = true
			}
		}
	}
	if !failedAttempt {
		t.Errorf("no failed attempt span with the 503: %v", keys(got))
	}
	for _, secret := range []string{otlpClientKey, otlpUpstreamKey, "collector-token"} {
		if strings.Contains(raw, secret) {
			t.Errorf("the exported JSON holds the secret %q", secret)
		}
	}
	col.mu.Lock()
	if col.auth[0] != otlpCollectorAuth {
		t.Errorf("collector got Authorization %q", col.auth[0])
	}
	col.mu.Unlock()
	// The store has the same spans.
	exported := 0
	for _, spans := range got {
		exported += len(spans)
	}
	deadline = time.Now().Add(10 * time.Second)
	for storedSpans(t, s, tid) != exported {
		if time.Now().After(deadline) {
			t.Fatalf("store has %d spans of the trace, the collector %d", storedSpans(t, s, tid), exported)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func keys(m map[string][]*tracepb.Span) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A collector that is down, answers 503 or never answers costs the calls nothing: they succeed at once, their
// spans reach the store, and the gateway still shuts down within its timeout.
func TestOTLPCollectorTroubleDoesNotSlowCalls(t *testing.T) {
	t.Parallel()
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // nothing listens on its port any more
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(hang) })
	tests := []struct {
		name     string
		endpoint func(t *testing.T) string
	}{
		{"down", func(*testing.T) string { return downURL }},
		{"503", func(t *testing.T) string { return startOTLPCollector(t, http.StatusServiceUnavailable).url }},
		{"hangs", func(*testing.T) string { return hanging.URL }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := otlpGateway(t, tc.endpoint(t))
			const tid = "5bf92f3577b34da6a3ce929d0e0e4736"
			for range 3 {
				workflow(t, s, "00-"+tid+"-00f067aa0ba902b7-01", time.Second)
			}
			deadline := time.Now().Add(10 * time.Second)
			for storedSpans(t, s, tid) < 9 {
				if time.Now().After(deadline) {
					t.Fatalf("store has %d spans of the trace, want at least 9", storedSpans(t, s, tid))
				}
				time.Sleep(50 * time.Millisecond)
			}
			// The spans not exported are counted, not silently lost.
			lost := regexp.MustCompile(`(?m)^switchboard_trace_otlp_spans_(failed|dropped)_total [1-9]`)
			deadline = time.Now().Add(15 * time.Second)
			for {
				_, metrics, _ := get(t, s.url+"/metrics")
				if lost.MatchString(metrics) {
					if strings.Contains(metrics, `switchboard_trace_otlp_spans_exported_total 0`) {
						break
					}
					t.Fatalf("spans counted as exported:\n%s", metrics)
				}
				if time.Now().After(deadline) {
					t.Fatal("no failed or dropped spans counted")
				}
				time.Sleep(50 * time.Millisecond)
			}
			s.stop()
			select {
			case err := <-s.done:
				s.done <- err // for the cleanup start registered
			case <-time.After(6 * time.Second):
				t.Fatal("gateway shutdown outlasted its 3s timeout")
			}
		})
	}
}
