package llm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

func mustChat(t *testing.T, h *harness, model, prompt string) openai.ChatCompletionResponse {
	t.Helper()
	r, err := h.client(keyAll).CreateChatCompletion(context.Background(), chatReq(model, prompt))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWeightedDistribution(t *testing.T) {
	t.Parallel()
	a, b := startMock(t, mock.LLMOptions{}), startMock(t, mock.LLMOptions{})
	da, db := openaiDep(a, "gpt-4o-mini"), openaiDep(b, "gpt-4o-mini")
	da.Weight, db.Weight = 1, 3
	h := newHarness(t, oneModel("m", da, db))
	const n = 400
	for range n {
		mustChat(t, h, "m", "hi")
	}
	// Expected 100 / 300; the bounds are about six standard deviations wide.
	if got := a.Requests(); got < 50 || got > 150 || a.Requests()+b.Requests() != n {
		t.Fatalf("weight 1 got %d of %d requests, weight 3 got %d", got, n, b.Requests())
	}
}

func TestStrategies(t *testing.T) {
	t.Parallel()
	mk := func(weight int, inFlight, latency int64, price Price) *deployment {
		d := &deployment{weight: weight, price: price, st: &deploymentState{}}
		d.st.inFlight.Store(inFlight)
		d.st.latency.Store(latency)
		return d
	}
	for _, tc := range []struct {
		name     string
		strategy Strategy
		ds       []*deployment
		want     int
	}{
		{"least-busy picks fewest in flight", StrategyLeastBusy, []*deployment{mk(1, 5, 0, Price{}), mk(1, 1, 0, Price{}), mk(9, 3, 0, Price{})}, 1},
		{"lowest-latency picks fastest EWMA", StrategyLowestLatency, []*deployment{mk(1, 0, 90, Price{}), mk(1, 0, 30, Price{}), mk(1, 0, 60, Price{})}, 1},
		{"lowest-latency measures untried first", StrategyLowestLatency, []*deployment{mk(1, 0, 30, Price{}), mk(1, 0, 0, Price{})}, 1},
		{"lowest-cost picks cheapest", StrategyLowestCost, []*deployment{mk(1, 0, 0, Price{Input: 5, Output: 5}), mk(1, 0, 0, Price{Input: 1, Output: 2}), mk(1, 0, 0, Price{Input: 2, Output: 2})}, 1},
		{"single candidate", StrategyWeighted, []*deployment{mk(1, 0, 0, Price{})}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &group{strategy: tc.strategy, deployments: tc.ds}
			for range 50 {
				got := pick(g, nil, time.Now())
				if got != tc.ds[tc.want] {
					t.Fatalf("picked %d, want %d", indexOf(tc.ds, got), tc.want)
				}
				got.st.inFlight.Add(-1)
			}
		})
	}
	t.Run("max_parallel and open breakers exclude", func(t *testing.T) {
		full, open, free := mk(1, 2, 0, Price{}), mk(1, 0, 0, Price{}), mk(1, 0, 0, Price{})
		full.maxParallel = 2
		open.st.breaker.failure(time.Now(), 1, time.Hour)
		g := &group{strategy: StrategyWeighted, deployments: []*deployment{full, open, free}}
		for range 20 {
			got := pick(g, nil, time.Now())
			if got != free {
				t.Fatalf("picked %d", indexOf(g.deployments, got))
			}
			got.st.inFlight.Add(-1)
		}
		if full.st.inFlight.Load() != 2 {
			t.Fatalf("a refused pick leaked a slot: in flight %d", full.st.inFlight.Load())
		}
		free.st.breaker.failure(time.Now(), 1, time.Hour)
		if got := pick(g, nil, time.Now()); got != nil {
			t.Fatal("picked a deployment although none is available")
		}
	})
}

func indexOf(ds []*deployment, d *deployment) int {
	for i, x := range ds {
		if x == d {
			return i
		}
	}
	return -1
}

func TestLeastBusyEndToEnd(t *testing.T) {
	t.Parallel()
	slow, fast := startMock(t, mock.LLMOptions{}), startMock(t, mock.LLMOptions{})
	ds, df := openaiDep(slow, "gpt-4o-mini"), openaiDep(fast, "gpt-4o-mini")
	ds.Headers = map[string]string{mock.HeaderLatency: "400ms"}
	cfg := oneModel("m", ds, df)
	cfg.Models[0].Strategy = StrategyLeastBusy
	h := newHarness(t, cfg)
	// Make the fast deployment look busy so the first call lands on the slow
	// one; while that call is in flight, every new call must go to the idle
	// fast deployment.
	h.gw.table.Load().groups["m"].deployments[1].st.inFlight.Add(100)
	done := make(chan error, 1)
	go func() {
		_, err := h.client(keyAll).CreateChatCompletion(context.Background(), chatReq("m", "hold the slow one"))
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for slow.Requests() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	h.gw.table.Load().groups["m"].deployments[1].st.inFlight.Add(-100)
	for range 5 {
		mustChat(t, h, "m", "quick")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if slow.Requests() != 1 || fast.Requests() != 5 {
		t.Fatalf("slow got %d, fast got %d; want 1 and 5", slow.Requests(), fast.Requests())
	}
}

func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	bad := startMock(t, mock.LLMOptions{Fail: map[string]int{"gpt-4o-mini": 503}})
	good := startMock(t, mock.LLMOptions{})
	db, dg := openaiDep(bad, "gpt-4o-mini"), openaiDep(good, "gpt-4o-mini")
	// lowest-cost sends the first attempt to the cheap, broken deployment.
	db.Pricing = &PricingConfig{InputPerMTok: "0.01", OutputPerMTok: "0.01"}
	dg.Pricing = &PricingConfig{InputPerMTok: "1", OutputPerMTok: "1"}
	cfg := oneModel("m", db, dg)
	cfg.Router.Retries, cfg.Router.Strategy = 2, StrategyLowestCost
	h := newHarness(t, cfg)
	mustChat(t, h, "m", "retry me")
	if bad.Requests() != 1 || good.Requests() != 1 {
		t.Fatalf("bad got %d, good got %d", bad.Requests(), good.Requests())
	}
	s := h.waitSpans("chat m", 1)[0]
	if s.Retries != 1 || s.Fallbacks != 0 || !strings.HasSuffix(s.Deployment, "gpt-4o-mini") || s.Status != trace.StatusOK {
		t.Fatalf("span = %+v", s)
	}
	failed := h.waitSpans("attempt "+strings.TrimPrefix(bad.URL, "http://")+"/gpt-4o-mini", 1)[0]
	if failed.Status != trace.StatusError || failed.HTTPStatus != 503 || failed.ParentSpanID != s.SpanID {
		t.Fatalf("failed attempt span = %+v", failed)
	}
	// The first attempt sent the call's span upstream; the retry sent its own attempt span.
	ok := h.waitSpans("attempt "+strings.TrimPrefix(good.URL, "http://")+"/gpt-4o-mini", 1)[0]
	if ok.Status != trace.StatusOK || ok.HTTPStatus != 200 || ok.ParentSpanID != s.SpanID || ok.CostNanoUSD != 0 {
		t.Fatalf("successful attempt span = %+v", ok)
	}
	for _, c := range []struct {
		m    *mock.LLMServer
		want trace.SpanID
	}{{bad, s.SpanID}, {good, ok.SpanID}} {
		if tp, valid := trace.ParseTraceparent(c.m.LastTraceparent()); !valid || tp.TraceID != s.TraceID || tp.SpanID != c.want {
			t.Errorf("upstream %s saw traceparent %q, want parent span %s", c.m.URL, c.m.LastTraceparent(), c.want)
		}
	}
}

// toggleUpstream answers OpenAI chat calls, or with fail while failing is set.
func toggleUpstream(t *testing.T, fail http.HandlerFunc) (*httptest.Server, *atomic.Bool, *atomic.Int64) {
	var failing atomic.Bool
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if failing.Load() {
			fail(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &failing, &hits
}

func TestCooldownThenRecovery(t *testing.T) {
	t.Parallel()
	srv, failing, hits := toggleUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":{"message":"boom","type":"server_error"}}`, http.StatusInternalServerError)
	})
	failing.Store(true)
	cfg := oneModel("m", DeploymentConfig{Provider: ProviderOpenAI, BaseURL: srv.URL + "/v1"})
	cfg.Router.Retries, cfg.Router.AllowedFails, cfg.Router.Cooldown = 0, 2, 200*time.Millisecond
	h := newHarness(t, cfg)
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	for i := range 2 {
		if status, _, _, raw := h.post("/v1/chat/completions", keyAll, body); status != 502 {
			t.Fatalf("call %d: %d %s", i, status, raw)
		}
	}
	// Two failures opened the breaker: the next call is refused without
	// contacting the upstream.
	status, hdr, eb, raw := h.post("/v1/chat/completions", keyAll, body)
	if status != 503 || *eb.Error.Code != "no_healthy_deployment" || hits.Load() != 2 || hdr.Get("Retry-After") != "1" {
		t.Fatalf("during cooldown: %d %s, upstream hits %d", status, raw, hits.Load())
	}
	failing.Store(false)
	time.Sleep(250 * time.Millisecond)
	// Half-open: one probe goes through, succeeds and closes the breaker.
	for i := range 3 {
		if status, _, _, raw := h.post("/v1/chat/completions", keyAll, body); status != 200 {
			t.Fatalf("after cooldown, call %d: %d %s", i, status, raw)
		}
	}
	if hits.Load() != 5 {
		t.Fatalf("upstream hits = %d, want 5", hits.Load())
	}
}

func TestHalfOpenProbeFailureReopens(t *testing.T) {
	t.Parallel()
	var b breaker
	now := time.Now()
	if !b.failure(now, 1, time.Second) || b.acquire(now) {
		t.Fatal("one failure with allowed_fails 1 must open the breaker")
	}
	later := now.Add(2 * time.Second)
	if !b.acquire(later) || b.acquire(later) {
		t.Fatal("after cooldown exactly one probe is allowed")
	}
	b.failure(later, 1, time.Second)
	if b.acquire(later.Add(500 * time.Millisecond)) {
		t.Fatal("a failed probe must re-open the breaker")
	}
	if !b.acquire(later.Add(2 * time.Second)) {
		t.Fatal("second probe refused")
	}
	b.success()
	if b.state(later.Add(2*time.Second)) != breakerClosed || !b.acquire(later) {
		t.Fatal("a successful probe must close the breaker")
	}
}

func TestFallbackChain(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{Fail: map[string]int{"gpt-4o": 500, "gpt-4.1-mini": 429}})
	cfg := Config{
		Models: []ModelConfig{
			{Name: "primary", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o")}, Fallbacks: []string{"second", "third"}},
			{Name: "second", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4.1-mini")}},
			{Name: "third", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o-mini")}},
		},
		Router: RouterConfig{Retries: 0, RetryBackoff: time.Millisecond},
	}
	h := newHarness(t, cfg)
	r := mustChat(t, h, "primary", "fall back please")
	if r.Model != "gpt-4o-mini" {
		t.Fatalf("served by %q, want the third group's gpt-4o-mini", r.Model)
	}
	s := h.waitSpans("chat primary", 1)[0]
	if s.Fallbacks != 2 || !strings.HasSuffix(s.Deployment, "/gpt-4o-mini") {
		t.Fatalf("span = %+v", s)
	}
	// Spend per model books the call under the group that served it.
	if s.Model != "third" || !slices.Contains(s.Attrs, trace.Attr{Key: "requested_model", Value: "primary"}) {
		t.Fatalf("call span model %q attrs %v, want third with requested_model primary", s.Model, s.Attrs)
	}
	var tried []string
	for _, a := range h.sink.snapshot() {
		if strings.HasPrefix(a.Name, "attempt ") {
			tried = append(tried, a.Model)
		}
	}
	slices.Sort(tried)
	if !slices.Equal(tried, []string{"primary", "second", "third"}) {
		t.Fatalf("attempt spans' models %v, want one per group tried", tried)
	}
}

// A key limited to one model must not be served by a fallback it may not call directly.
func TestFallbackSkipsModelsTheKeyMayNotUse(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{Fail: map[string]int{"gpt-4o": 500}})
	cfg := Config{
		Models: []ModelConfig{
			{Name: "primary", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o")}, Fallbacks: []string{"forbidden"}},
			{Name: "forbidden", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o-mini")}},
		},
		Router: RouterConfig{Retries: 0, RetryBackoff: time.Millisecond},
	}
	h := newHarness(t, cfg)
	_, err := h.client(keyPrimary).CreateChatCompletion(context.Background(), openai.ChatCompletionRequest{
		Model: "primary", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}})
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode < 500 {
		t.Fatalf("want the primary's upstream failure, got %v", err)
	}
	if got := m.Requests(); got != 1 {
		t.Fatalf("upstream saw %d requests; the forbidden fallback must not be tried", got)
	}
	// The same chain serves a key that may use both.
	if r := mustChat(t, h, "primary", "fall back please"); r.Model != "gpt-4o-mini" {
		t.Fatalf("served by %q", r.Model)
	}
}

func TestContextWindowFallback(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	cfg := Config{
		Models: []ModelConfig{
			{Name: "small", Deployments: []DeploymentConfig{openaiDep(m, "context-limit-50")},
				Fallbacks: []string{"other"}, ContextWindowFallbacks: []string{"big"}},
			{Name: "big", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o")}},
			{Name: "other", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o-mini")}},
			{Name: "small-alone", Deployments: []DeploymentConfig{openaiDep(m, "context-limit-50")}, Fallbacks: []string{"other"}},
		},
		Router: RouterConfig{Retries: 2, RetryBackoff: time.Millisecond},
	}
	h := newHarness(t, cfg)
	long := strings.Repeat("a long prompt ", 20)
	if r := mustChat(t, h, "small", "short"); r.Model != "context-limit-50" {
		t.Fatalf("short prompt served by %q", r.Model)
	}
	before := m.Requests()
	if r := mustChat(t, h, "small", long); r.Model != "gpt-4o" {
		t.Fatalf("long prompt served by %q, want the context-window fallback gpt-4o", r.Model)
	}
	if m.Requests()-before != 2 {
		t.Fatalf("context error was retried: %d upstream calls", m.Requests()-before)
	}
	// Without context-window fallbacks the upstream's 400 reaches the client
	// and ordinary fallbacks are not tried.
	_, err := h.client(keyAll).CreateChatCompletion(context.Background(), chatReq("small-alone", long))
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != 400 || apiErr.Code != "context_length_exceeded" {
		t.Fatalf("err = %v, want 400 context_length_exceeded", err)
	}
}

func TestMidStreamFailure(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	dead := openaiDep(m, "gpt-4o-mini")
	dead.Headers = map[string]string{mock.HeaderFailAfter: "2"}
	h := newHarness(t, oneModel("m", dead))
	req := chatReq("m", "a reply long enough to have several chunks in it")
	req.Stream = true
	s, err := h.client(keyAll).CreateChatCompletionStream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	_, chunks, _, err := collect(t, s)
	if err == nil || chunks == 0 {
		t.Fatalf("got %d chunks and err %v; want some chunks then an error", chunks, err)
	}
	if !strings.Contains(err.Error(), "upstream") {
		t.Fatalf("err = %v, want the gateway's SSE error event", err)
	}
	sp := h.waitSpans("chat m", 1)[0]
	if sp.Status != trace.StatusError || sp.HTTPStatus != 502 {
		t.Fatalf("span = %+v", sp)
	}
}

func TestStreamFallbackBeforeFirstByte(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	dead := openaiDep(m, "gpt-4o")
	dead.Headers = map[string]string{mock.HeaderFailAfter: "0"}
	cfg := Config{
		Models: []ModelConfig{
			{Name: "a", Deployments: []DeploymentConfig{dead}, Fallbacks: []string{"b"}},
			{Name: "b", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o-mini")}},
		},
		Router: RouterConfig{RetryBackoff: time.Millisecond},
	}
	h := newHarness(t, cfg)
	req := chatReq("a", "stream after a fallback")
	req.Stream = true
	s, err := h.client(keyAll).CreateChatCompletionStream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	content, _, _, err := collect(t, s)
	if err != nil || content == "" {
		t.Fatalf("content %q, err %v", content, err)
	}
	if sp := h.waitSpans("chat a", 1)[0]; sp.Fallbacks != 1 || sp.Retries != 0 {
		t.Fatalf("span = %+v", sp)
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	cancelled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			_, err := fmt.Fprint(w, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tick \"}}]}\n\n")
			if err == nil {
				w.(http.Flusher).Flush()
			}
			select {
			case <-r.Context().Done():
				close(cancelled)
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}))
	t.Cleanup(srv.Close)
	h := newHarness(t, oneModel("m", DeploymentConfig{Provider: ProviderOpenAI, BaseURL: srv.URL + "/v1"}))
	ctx, cancel := context.WithCancel(context.Background())
	req := chatReq("m", "never ends")
	req.Stream = true
	s, err := h.client(keyAll).CreateChatCompletionStream(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	s.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream call was not cancelled after the client left")
	}
	if sp := h.waitSpans("chat m", 1)[0]; sp.HTTPStatus != 499 {
		t.Fatalf("span = %+v", sp)
	}
}

func TestReloadKeepsDeploymentState(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	cfg := oneModel("m", openaiDep(m, "gpt-4o-mini"))
	h := newHarness(t, cfg)
	old := h.gw.table.Load().groups["m"].deployments[0].st
	old.breaker.failure(time.Now(), 1, time.Hour)
	cfg.Models = append(cfg.Models, ModelConfig{Name: "n", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o")}})
	if err := h.gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if h.gw.table.Load().groups["m"].deployments[0].st != old {
		t.Fatal("reload dropped the state of an unchanged deployment")
	}
	mustChat(t, h, "n", "new group works")
	bad := cfg
	bad.Models = []ModelConfig{{Name: ""}}
	if err := h.gw.Reload(bad); err == nil || h.gw.table.Load().groups["n"] == nil {
		t.Fatal("a bad config must be refused and the old table kept")
	}
}

func TestDeploymentTimeout(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	slow := openaiDep(m, "gpt-4o-mini")
	slow.Timeout, slow.Headers = 100*time.Millisecond, map[string]string{mock.HeaderLatency: "2s"}
	h := newHarness(t, oneModel("m", slow))
	status, _, eb, raw := h.post("/v1/chat/completions", keyAll, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	if status != 504 || *eb.Error.Code != "upstream_timeout" {
		t.Fatalf("got %d %s, want 504 upstream_timeout", status, raw)
	}
}

func TestStreamIdleTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"first\"}}]}\n\n")
		w.(http.Flusher).Flush()
		select { // stall until the gateway gives up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	cfg := oneModel("m", DeploymentConfig{Provider: ProviderOpenAI, BaseURL: srv.URL + "/v1"})
	cfg.Router.StreamIdleTimeout = 150 * time.Millisecond
	h := newHarness(t, cfg)
	req := chatReq("m", "stall")
	req.Stream = true
	s, err := h.client(keyAll).CreateChatCompletionStream(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	content, _, _, err := collect(t, s)
	if content != "first" || err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("content %q err %v; want the first chunk then a stall error", content, err)
	}
}

// A reply whose usage holds a negative count is as unreadable as one with a
// string count: billing it would refund tokens to the key's limits. The
// client gets a 502 and no span carries the negative counts.
func TestNegativeUsageIsAnUnreadableReply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		provider Provider
		path     string
		body     string
		reply    string
	}{
		{"openai", ProviderOpenAI, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
			`{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},` +
				`"finish_reason":"stop"}],"usage":{"prompt_tokens":-900,"completion_tokens":1}}`},
		{"anthropic to openai", ProviderAnthropic, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
			`{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"ok"}],` +
				`"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1,"cache_creation_input_tokens":-50}}`},
		{"anthropic", ProviderAnthropic, "/v1/messages", `{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`,
			`{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"ok"}],` +
				`"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":-1}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, tc.reply)
			}))
			t.Cleanup(srv.Close)
			base := srv.URL
			if tc.provider == ProviderOpenAI {
				base += "/v1"
			}
			cfg := oneModel("m", DeploymentConfig{Provider: tc.provider, BaseURL: base, Model: "m", APIKey: "upstream-key"})
			cfg.Router.Retries = 0
			h := newHarness(t, cfg)
			status, _, _, raw := h.post(tc.path, keyAll, tc.body, "anthropic-version", "2023-06-01")
			if status != http.StatusBadGateway || !strings.Contains(string(raw), "malformed token count") {
				t.Fatalf("status %d %s; want 502 naming the malformed token count", status, raw)
			}
			for _, s := range h.waitSpans("chat m", 1) {
				if s.InputTokens < 0 || s.OutputTokens < 0 || s.CachedTokens < 0 {
					t.Fatalf("span %q carries negative token counts: %+v", s.Name, s)
				}
			}
		})
	}
}

// A 429 that says when to come back pauses its deployment until then (at
// most a cooldown) without counting as a failure: the call is not retried
// on it, other deployments serve meanwhile, and a call that finds every
// deployment paused gets a 429 with the time left, not a 503.
func TestRateLimitedDeploymentPauses(t *testing.T) {
	t.Parallel()
	limited := func(retryAfter string) (*httptest.Server, *atomic.Bool, *atomic.Int64) {
		srv, on, hits := toggleUpstream(t, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", retryAfter)
			http.Error(w, `{"error":{"message":"slow down","type":"rate_limit_error"}}`, http.StatusTooManyRequests)
		})
		on.Store(true)
		return srv, on, hits
	}
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	router := func(cfg Config, cooldown time.Duration) Config {
		cfg.Router.Retries, cfg.Router.AllowedFails, cfg.Router.Cooldown, cfg.Router.RetryBackoff = 2, 3, cooldown, time.Millisecond
		return cfg
	}

	t.Run("alone", func(t *testing.T) {
		t.Parallel()
		srv, on, hits := limited("1")
		h := newHarness(t, router(oneModel("m", DeploymentConfig{Provider: ProviderOpenAI, BaseURL: srv.URL + "/v1"}), time.Minute))
		for i := range 2 {
			status, hdr, eb, raw := h.post("/v1/chat/completions", keyAll, body)
			if status != 429 || *eb.Error.Code != "upstream_rate_limited" || hdr.Get("Retry-After") != "1" || hits.Load() != 1 {
				t.Fatalf("call %d: %d %s, Retry-After %q, upstream hits %d; want 429 after one hit", i, status, raw, hdr.Get("Retry-After"), hits.Load())
			}
		}
		on.Store(false)
		time.Sleep(1100 * time.Millisecond)
		if status, _, _, raw := h.post("/v1/chat/completions", keyAll, body); status != 200 {
			t.Fatalf("after the pause: %d %s (a 429 must not have opened the breaker)", status, raw)
		}
	})
	t.Run("another deployment serves", func(t *testing.T) {
		t.Parallel()
		busy, _, busyHits := limited("30")
		free, on, freeHits := limited("1")
		on.Store(false)
		h := newHarness(t, router(oneModel("m",
			DeploymentConfig{Provider: ProviderOpenAI, BaseURL: busy.URL + "/v1"},
			DeploymentConfig{Provider: ProviderOpenAI, BaseURL: free.URL + "/v1"}), time.Minute))
		for i := range 6 {
			if status, _, _, raw := h.post("/v1/chat/completions", keyAll, body); status != 200 {
				t.Fatalf("call %d: %d %s", i, status, raw)
			}
		}
		if busyHits.Load() > 1 || freeHits.Load() != 6 {
			t.Fatalf("rate limited deployment hit %d times, the other %d; want at most 1 and 6", busyHits.Load(), freeHits.Load())
		}
	})
	t.Run("pause capped at the cooldown", func(t *testing.T) {
		t.Parallel()
		srv, on, _ := limited("3600")
		h := newHarness(t, router(oneModel("m", DeploymentConfig{Provider: ProviderOpenAI, BaseURL: srv.URL + "/v1"}), 200*time.Millisecond))
		if status, _, _, raw := h.post("/v1/chat/completions", keyAll, body); status != 429 {
			t.Fatalf("%d %s, want 429", status, raw)
		}
		on.Store(false)
		time.Sleep(250 * time.Millisecond)
		if status, _, _, raw := h.post("/v1/chat/completions", keyAll, body); status != 200 {
			t.Fatalf("after the cooldown: %d %s", status, raw)
		}
	})
}
