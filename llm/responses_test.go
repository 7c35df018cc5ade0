package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	oai "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// responsesClient is OpenAI's official Go SDK pointed at the gateway, without its own retries.
func (h *harness) responsesClient(key string) *oai.Client {
	c := oai.NewClient(option.WithBaseURL(h.url+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	return &c
}

func respParams(model, prompt string) responses.ResponseNewParams {
	return responses.ResponseNewParams{Model: model, Input: responses.ResponseNewParamsInputUnion{OfString: oai.String(prompt)},
		MaxOutputTokens: oai.Int(50)}
}

var gpt4oMiniPrice = Price{Input: 150_000_000, Output: 600_000_000, CachedInput: 75_000_000}

func TestResponsesJSON(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("fast", openaiDep(m, "gpt-4o-mini")))
	var hr *http.Response
	got, err := h.responsesClient(keyAll).Responses.New(context.Background(), respParams("fast", "hello there from the responses test"),
		option.WithResponseInto(&hr))
	if err != nil {
		t.Fatal(err)
	}
	if got.OutputText() != "hello there from the responses test" || got.Usage.InputTokens != 6 || got.Usage.OutputTokens != 6 {
		t.Fatalf("reply: text %q usage %+v", got.OutputText(), got.Usage)
	}
	wantCost := gpt4oMiniPrice.Cost(Usage{Input: 6, Output: 6})
	if c := hr.Header.Get("x-switchboard-cost-usd"); c != FormatUSD(wantCost) {
		t.Fatalf("x-switchboard-cost-usd = %q, want %q", c, FormatUSD(wantCost))
	}
	sc, ok := trace.ParseTraceparent(hr.Header.Get("traceparent"))
	if !ok {
		t.Fatalf("traceparent %q not valid", hr.Header.Get("traceparent"))
	}
	if up, _ := trace.ParseTraceparent(m.LastTraceparent()); up != sc {
		t.Fatalf("upstream saw traceparent %q, want the call's %q", m.LastTraceparent(), hr.Header.Get("traceparent"))
	}
	call := h.waitSpans("responses fast", 1)[0]
	if call.CostNanoUSD != wantCost || call.InputTokens != 6 || call.OutputTokens != 6 || call.KeyName != "all" ||
		call.Provider != "openai" || call.SpanID != sc.SpanID || call.Status != trace.StatusOK {
		t.Fatalf("call span = %+v", call)
	}

	// The client's bytes reach the upstream as they were, "model" aside: no re-encoding reorders or drops fields.
	raw := `{ "input" : "raw bytes",  "model":"fast", "metadata":{"b":"1","a":"2"}, "max_output_tokens": 20 , "x_unknown": [1,2] }`
	req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/responses", strings.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+keyLimited)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("raw call: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("x-ratelimit-limit-requests") != "1" {
		t.Fatalf("x-ratelimit-limit-requests = %q, want 1", resp.Header.Get("x-ratelimit-limit-requests"))
	}
	last := m.LastRequest()
	want := strings.Replace(raw, `"model":"fast"`, `"model":"gpt-4o-mini"`, 1)
	if last.Path != "/v1/responses" || string(last.Body) != want {
		t.Fatalf("upstream got %s %s\nwant body %s", last.Path, last.Body, want)
	}
}

func TestResponsesStream(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("gpt-4o-mini", openaiDep(m, "gpt-4o-mini")))
	cases := []struct {
		name, prompt string
		maxOut       int64
		wantText     string
		wantTerminal string
		wantOut      int64
	}{
		{"completed", "one two three four five", 50, "one two three four five", "response.completed", 5},
		{"cut by max_output_tokens", strings.Repeat("word ", 20), 16, strings.TrimSpace(strings.Repeat("word ", 16)), "response.incomplete", 16},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := respParams("gpt-4o-mini", tc.prompt)
			p.MaxOutputTokens = oai.Int(tc.maxOut)
			st := h.responsesClient(keyAll).Responses.NewStreaming(context.Background(), p)
			var text strings.Builder
			var types []string
			var final responses.Response
			for st.Next() {
				ev := st.Current()
				types = append(types, ev.Type)
				switch ev.Type {
				case "response.output_text.delta":
					text.WriteString(ev.Delta)
				case "response.completed", "response.incomplete":
					final = ev.Response
				}
			}
			if err := st.Err(); err != nil {
				t.Fatal(err)
			}
			if text.String() != tc.wantText || types[0] != "response.created" || types[len(types)-1] != tc.wantTerminal {
				t.Fatalf("text %q, events %v", text.String(), types)
			}
			in := int64(len(strings.Fields(tc.prompt)))
			if final.Usage.InputTokens != in || final.Usage.OutputTokens != tc.wantOut {
				t.Fatalf("final usage %+v", final.Usage)
			}
			span := h.waitSpans("responses gpt-4o-mini", i+1)[i]
			if span.InputTokens != in || span.OutputTokens != tc.wantOut || span.Status != trace.StatusOK ||
				span.CostNanoUSD != gpt4oMiniPrice.Cost(Usage{Input: in, Output: tc.wantOut}) || span.TTFT <= 0 {
				t.Fatalf("span = %+v", span)
			}
			for _, a := range span.Attrs {
				if a.Key == "usage" {
					t.Fatalf("a complete stream was billed as estimated: %+v", span.Attrs)
				}
			}
		})
	}
}

// refusal is what the SDK reports of a refused call.
func refusal(t *testing.T, err error) *oai.Error {
	t.Helper()
	var ae *oai.Error
	if !errors.As(err, &ae) {
		t.Fatalf("want an API error, got %v", err)
	}
	return ae
}

func TestResponsesRefused(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	cfg := Config{Models: []ModelConfig{
		{Name: "gpt-4o", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o")}},
		{Name: "gpt-4o-mini", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o-mini")}},
		{Name: "claude", Deployments: []DeploymentConfig{anthropicDep(m, "claude-3-5-haiku-latest")}},
	}}
	h := newHarness(t, cfg)
	cases := []struct {
		name, key, model string
		body             string // sent raw when set
		status           int
		code, msg        string
	}{
		{name: "model the key may not use", key: keyMini, model: "gpt-4o", status: 404, code: "model_not_found",
			msg: `The model "gpt-4o" does not exist or you do not have access to it.`},
		{name: "budget", key: keyBroke, model: "gpt-4o-mini", status: 429, code: "budget_exceeded"},
		{name: "no key", key: "sk-wrong", model: "gpt-4o-mini", status: 401, code: "invalid_api_key"},
		{name: "unknown model", key: keyAll, model: "nope", status: 404, code: "model_not_found"},
		{name: "background mode", key: keyAll, body: `{"model":"gpt-4o-mini","input":"hi","background":true}`, status: 400,
			code: "unsupported_parameter", msg: "background mode is not supported"},
		{name: "duplicate max_output_tokens", key: keyAll, body: `{"model":"gpt-4o-mini","input":"hi","max_output_tokens":16,"max_output_tokens":100000}`,
			status: 400, code: "invalid_request", msg: `"max_output_tokens" appears more than once`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := m.Requests()
			var err error
			if tc.body != "" {
				err = h.responsesClient(tc.key).Post(context.Background(), "responses", []byte(tc.body), nil)
			} else {
				_, err = h.responsesClient(tc.key).Responses.New(context.Background(), respParams(tc.model, "hi"))
			}
			ae := refusal(t, err)
			if ae.StatusCode != tc.status || ae.Code != tc.code || !strings.Contains(ae.Message, tc.msg) {
				t.Fatalf("got %d %q %q, want %d %q containing %q", ae.StatusCode, ae.Code, ae.Message, tc.status, tc.code, tc.msg)
			}
			if m.Requests() != before {
				t.Fatal("a refused call reached the upstream")
			}
		})
	}
}

// TestResponsesMixedGroups: every deployment serves the Responses API, Anthropic's through the translation, but a
// call that keeps or continues a conversation in the provider's store goes only to those that speak it natively,
// fallbacks included.
func TestResponsesMixedGroups(t *testing.T) {
	t.Parallel()
	oa, an := startMock(t, mock.LLMOptions{}), startMock(t, mock.LLMOptions{})
	broken := startMock(t, mock.LLMOptions{Fail: map[string]int{"gpt-4o-mini": 500}})
	broken2 := startMock(t, mock.LLMOptions{Fail: map[string]int{"gpt-4o-mini": 500}})
	// The cheaper deployment first: lowest-cost picks the Anthropic one whenever it may serve the call.
	claude := anthropicDep(an, "claude-3-5-haiku-latest")
	claude.Pricing = &PricingConfig{InputPerMTok: "0", OutputPerMTok: "0"}
	cfg := Config{Models: []ModelConfig{
		{Name: "mixed", Strategy: StrategyLowestCost, Deployments: []DeploymentConfig{claude, openaiDep(oa, "gpt-4o-mini")}},
		{Name: "primary", Deployments: []DeploymentConfig{openaiDep(broken, "gpt-4o-mini")}, Fallbacks: []string{"claude", "mixed"}},
		{Name: "claude", Deployments: []DeploymentConfig{anthropicDep(an, "claude-3-5-haiku-latest")}},
		// primary's twin, so that its failures do not cool primary's deployment down before the check below.
		{Name: "primary2", Deployments: []DeploymentConfig{openaiDep(broken2, "gpt-4o-mini")}, Fallbacks: []string{"claude", "mixed"}},
	}, Router: RouterConfig{RetryBackoff: time.Millisecond}}
	h := newHarness(t, cfg)
	stored := func(p responses.ResponseNewParams) responses.ResponseNewParams { p.Store = oai.Bool(true); return p }
	// The Codex CLI sends OpenAI's built-in tools (web_search) beside its functions.
	builtIn := func(p responses.ResponseNewParams) responses.ResponseNewParams {
		p.Tools = []responses.ToolUnionParam{{OfWebSearch: &responses.WebSearchToolParam{Type: "web_search"}}}
		return p
	}
	cases := []struct {
		name, model       string
		params            func(responses.ResponseNewParams) responses.ResponseNewParams
		wantAnthropic     bool // served by the Anthropic deployment, else by an OpenAI one
		wantSpanModel     string
		wantSpanFallbacks int32
	}{
		{name: "mixed group, to its cheaper Anthropic deployment", model: "mixed", wantAnthropic: true, wantSpanModel: "mixed"},
		{name: "mixed group, store true only to OpenAI", model: "mixed", params: stored, wantSpanModel: "mixed"},
		{name: "fallback to an Anthropic-only group", model: "primary", wantAnthropic: true, wantSpanModel: "claude", wantSpanFallbacks: 1},
		{name: "store true falls back past the Anthropic-only group", model: "primary", params: stored, wantSpanModel: "mixed", wantSpanFallbacks: 1},
		{name: "mixed group, a built-in tool only to OpenAI", model: "mixed", params: builtIn, wantSpanModel: "mixed"},
		{name: "a built-in tool falls back past the Anthropic-only group", model: "primary2", params: builtIn, wantSpanModel: "mixed", wantSpanFallbacks: 1},
	}
	seen := map[string]int{} // spans per model so far
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			beforeAn, beforeOA := an.Requests(), oa.Requests()
			p := respParams(tc.model, "mixed group")
			if tc.params != nil {
				p = tc.params(p)
			}
			got, err := h.responsesClient(keyAll).Responses.New(context.Background(), p)
			if err != nil || got.OutputText() != "mixed group" {
				t.Fatalf("%v %+v", err, got)
			}
			if tc.wantAnthropic != (an.Requests() > beforeAn) || tc.wantAnthropic == (oa.Requests() > beforeOA) {
				t.Fatalf("anthropic got %d calls, openai %d", an.Requests()-beforeAn, oa.Requests()-beforeOA)
			}
			seen[tc.model]++
			span := h.waitSpans("responses "+tc.model, seen[tc.model])[seen[tc.model]-1]
			if span.Model != tc.wantSpanModel || span.Fallbacks != tc.wantSpanFallbacks || span.Status != trace.StatusOK {
				t.Fatalf("span = %+v", span)
			}
		})
	}
	// A key that may not use the fallbacks gets the primary's failure.
	_, err := h.responsesClient(keyPrimary).Responses.New(context.Background(), respParams("primary", "no fallback"))
	if ae := refusal(t, err); ae.StatusCode != http.StatusBadGateway {
		t.Fatalf("primary-only key: %d %s", ae.StatusCode, ae.Message)
	}
}

func TestResponsesPreviousResponseStaysOnItsDeployment(t *testing.T) {
	t.Parallel()
	m1, m2 := startMock(t, mock.LLMOptions{}), startMock(t, mock.LLMOptions{})
	cfg := oneModel("gpt-4o-mini", openaiDep(m1, "gpt-4o-mini"), openaiDep(m2, "gpt-4o-mini"))
	cfg.Router.Retries = 2
	h := newHarness(t, cfg)
	ctx := context.Background()
	cl := h.responsesClient(keyAll)

	// A chain of follow-ups, each naming the previous one; the mocks know only the ids they made, as providers do.
	for _, streamFirst := range []bool{false, true} {
		var prev string
		if streamFirst {
			st := cl.Responses.NewStreaming(ctx, respParams("gpt-4o-mini", "first streamed"))
			for st.Next() {
				if ev := st.Current(); ev.Type == "response.completed" {
					prev = ev.Response.ID
				}
			}
			if err := st.Err(); err != nil || prev == "" {
				t.Fatalf("first stream: %v, id %q", err, prev)
			}
		} else {
			r, err := cl.Responses.New(ctx, respParams("gpt-4o-mini", "first"))
			if err != nil {
				t.Fatal(err)
			}
			prev = r.ID
		}
		for i := range 8 {
			p := respParams("gpt-4o-mini", fmt.Sprintf("follow up %d", i))
			p.PreviousResponseID = oai.String(prev)
			r, err := cl.Responses.New(ctx, p)
			if err != nil {
				t.Fatalf("stream first %v, follow-up %d: %v", streamFirst, i, err)
			}
			prev = r.ID
		}
	}

	// An id no account holds is tried on each deployment in turn (this replica may just not have the pin), and
	// the provider's answer comes back.
	unknown := respParams("gpt-4o-mini", "unknown")
	unknown.PreviousResponseID = oai.String("resp_unknown")
	_, err := cl.Responses.New(ctx, unknown)
	if ae := refusal(t, err); ae.StatusCode != http.StatusNotFound || ae.Code != "previous_response_not_found" {
		t.Fatalf("unknown id: %d %q %q", ae.StatusCode, ae.Code, ae.Message)
	}

	// The deployment that holds the id goes away: the call is not retried on the other one, which does not know it.
	n1 := m1.Requests()
	r, err := cl.Responses.New(ctx, respParams("gpt-4o-mini", "pinned"))
	if err != nil {
		t.Fatal(err)
	}
	pinned, other := m1, m2
	if m1.Requests() == n1 {
		pinned, other = m2, m1
	}
	if err := pinned.Close(); err != nil {
		t.Fatal(err)
	}
	before := other.Requests()
	p := respParams("gpt-4o-mini", "pinned follow up")
	p.PreviousResponseID = oai.String(r.ID)
	_, err = cl.Responses.New(ctx, p)
	ae := refusal(t, err)
	if ae.StatusCode != http.StatusBadGateway || !strings.Contains(ae.Message, "not retried on another deployment") {
		t.Fatalf("pinned failure: %d %q", ae.StatusCode, ae.Message)
	}
	if other.Requests() != before {
		t.Fatal("a pinned follow-up was retried on another deployment")
	}

}

func TestResponsesStreamUpstreamDies(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	// created, in_progress, item added, part added, then two deltas: the connection drops after six events.
	d := openaiDep(m, "gpt-4o-mini")
	d.Headers = map[string]string{mock.HeaderFailAfter: "6"}
	h := newHarness(t, oneModel("gpt-4o-mini", d))
	prompt := "one two three four five six seven"
	st := h.responsesClient(keyAll).Responses.NewStreaming(context.Background(), respParams("gpt-4o-mini", prompt))
	var types []string
	var last responses.ResponseStreamEventUnion
	for st.Next() {
		last = st.Current()
		types = append(types, last.Type)
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if len(types) != 7 || last.Type != "error" || last.Code != "upstream_error" || last.SequenceNumber != 6 {
		t.Fatalf("events %v, last %s", types, last.RawJSON())
	}
	span := h.waitSpans("responses gpt-4o-mini", 1)[0]
	body, _ := respParams("gpt-4o-mini", prompt).MarshalJSON()
	estimated := false
	for _, a := range span.Attrs {
		estimated = estimated || a.Key == "usage" && a.Value == "estimated"
	}
	// The body the SDK sent adds "stream":true to what MarshalJSON gives.
	if span.Status != trace.StatusError || span.HTTPStatus != http.StatusBadGateway || !estimated || span.OutputTokens != 2 ||
		span.InputTokens < tokensOfText(len(body)) || span.CostNanoUSD == 0 {
		t.Fatalf("span = %+v", span)
	}
}

// TestResponsesStreamTerminalEvents covers what the mock does not send: a provider's response.failed and error
// events, from a stand-in provider.
func TestResponsesStreamTerminalEvents(t *testing.T) {
	t.Parallel()
	// Events are sent one by one, as a provider does: one that fails in the first read is a failed attempt, not a
	// stream.
	created := "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_x\",\"status\":\"in_progress\",\"usage\":null}}\n\n"
	delta := "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"hi\"}\n\n"
	cases := []struct {
		name, events    string
		wantLast        string
		wantIn, wantOut int64
		estimated       bool
	}{
		{"response.failed with usage", created + delta +
			"event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_x\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"boom\"},\"usage\":{\"input_tokens\":40,\"output_tokens\":3,\"input_tokens_details\":{\"cached_tokens\":8}}}}\n\n",
			"response.failed", 40, 3, false},
		{"error event", created + delta +
			"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"boom\",\"param\":null,\"sequence_number\":2}\n\n",
			"error", 0, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				for _, ev := range strings.SplitAfter(tc.events, "\n\n") {
					_, _ = io.WriteString(w, ev)
					w.(http.Flusher).Flush()
					time.Sleep(20 * time.Millisecond)
				}
			}))
			t.Cleanup(up.Close)
			h := newHarness(t, oneModel("gpt-4o-mini", DeploymentConfig{Provider: ProviderOpenAI, BaseURL: up.URL + "/v1", Model: "gpt-4o-mini"}))
			st := h.responsesClient(keyAll).Responses.NewStreaming(context.Background(), respParams("gpt-4o-mini", "x"))
			var types []string
			for st.Next() {
				types = append(types, st.Current().Type)
			}
			if err := st.Err(); err != nil || len(types) != 3 || types[2] != tc.wantLast {
				t.Fatalf("events %v, err %v", types, err)
			}
			span := h.waitSpans("responses gpt-4o-mini", 1)[0]
			estimated := false
			for _, a := range span.Attrs {
				estimated = estimated || a.Key == "usage"
			}
			if span.Status != trace.StatusError || estimated != tc.estimated || span.OutputTokens != tc.wantOut ||
				(!tc.estimated && (span.InputTokens != tc.wantIn || span.CachedTokens != 8)) {
				t.Fatalf("span = %+v", span)
			}
		})
	}
}

func TestResponsePinsBounded(t *testing.T) {
	t.Parallel()
	p := newResponsePins(time.Minute, 3)
	d := &deployment{group: "g", id: "host/m", account: "acct"}
	for _, id := range []string{"a", "b", "c", "d"} {
		p.remember(id, d, "key:k", 0)
	}
	// A deployment that relays an id another one made first does not take it over.
	p.remember("b", &deployment{account: "echo"}, "key:k", 0)
	now := time.Now()
	if _, ok := p.lookup("a", now); ok {
		t.Fatal("the oldest id outlived the cap")
	}
	for _, id := range []string{"b", "c", "d"} {
		if v, ok := p.lookup(id, now); !ok || v.account != "acct" {
			t.Fatalf("%s: %+v %v", id, v, ok)
		}
	}
	if _, ok := p.lookup("d", now.Add(2*time.Minute)); ok {
		t.Fatal("an id outlived its TTL")
	}
	p.remember(string(bytes.Repeat([]byte("x"), maxPinnedIDLen+1)), d, "key:k", 0)
	if len(p.m) != 3 {
		t.Fatalf("an oversized id was kept: %d ids", len(p.m))
	}
}

// The provider account is the gateway's, shared by every tenant: a response id this replica relayed for one key
// (or team) is not continued for another, which would otherwise read that conversation through it.
func TestResponsesFollowUpOnlyByItsOwner(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("gpt-4o-mini", openaiDep(m, "gpt-4o-mini")))
	ctx := context.Background()
	r, err := h.responsesClient(keyAll).Responses.New(ctx, respParams("gpt-4o-mini", "mine"))
	if err != nil {
		t.Fatal(err)
	}
	before := m.Requests()
	p := respParams("gpt-4o-mini", "someone else's follow up")
	p.PreviousResponseID = oai.String(r.ID)
	_, err = h.responsesClient(keyMini).Responses.New(ctx, p)
	if ae := refusal(t, err); ae.StatusCode != http.StatusBadRequest || ae.Code != "previous_response_not_found" {
		t.Fatalf("another key's follow-up: %d %q %q", ae.StatusCode, ae.Code, ae.Message)
	}
	if m.Requests() != before {
		t.Fatal("another key's follow-up reached the upstream")
	}
	p = respParams("gpt-4o-mini", "my follow up")
	p.PreviousResponseID = oai.String(r.ID)
	if _, err := h.responsesClient(keyAll).Responses.New(ctx, p); err != nil {
		t.Fatalf("the owner's follow-up: %v", err)
	}
}

// A conversation may change model: the follow-up is served by the model it asks for, on a deployment of the
// account that stored the previous response, never by the previous model.
func TestResponsesFollowUpMayChangeModel(t *testing.T) {
	t.Parallel()
	m1, m2 := startMock(t, mock.LLMOptions{}), startMock(t, mock.LLMOptions{})
	cfg := Config{
		Models: []ModelConfig{
			{Name: "gpt-4o", Deployments: []DeploymentConfig{openaiDep(m1, "gpt-4o")}},
			// m2 first and heavier: only the pin takes the follow-up to m1.
			{Name: "gpt-4o-mini", Deployments: []DeploymentConfig{heavy(openaiDep(m2, "gpt-4o-mini")), openaiDep(m1, "gpt-4o-mini")}},
		},
		Router: RouterConfig{RetryBackoff: time.Millisecond, Cooldown: time.Minute},
	}
	h := newHarness(t, cfg)
	ctx := context.Background()
	cl := h.responsesClient(keyAll)
	r, err := cl.Responses.New(ctx, respParams("gpt-4o", "first"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		p := respParams("gpt-4o-mini", fmt.Sprintf("switch %d", i))
		p.PreviousResponseID = oai.String(r.ID)
		n2 := m2.Requests()
		if r, err = cl.Responses.New(ctx, p); err != nil {
			t.Fatalf("follow-up %d: %v", i, err)
		}
		if r.Model != "gpt-4o-mini" || m2.Requests() != n2 {
			t.Fatalf("follow-up %d served as %q, m2 got %d requests; want gpt-4o-mini on m1", i, r.Model, m2.Requests()-n2)
		}
	}
}

// Another replica (here another gateway) relayed the first response: this one has no pin, tries a deployment, and
// one whose account does not hold the id sends it on to the next instead of failing the call.
func TestResponsesUnpinnedFollowUpFindsItsAccount(t *testing.T) {
	t.Parallel()
	m1, m2 := startMock(t, mock.LLMOptions{}), startMock(t, mock.LLMOptions{})
	cfg := oneModel("gpt-4o-mini", openaiDep(m1, "gpt-4o-mini"), openaiDep(m2, "gpt-4o-mini"))
	cfg.Router.Retries = 1
	first, second := newHarness(t, cfg), newHarness(t, cfg)
	ctx := context.Background()
	for i := range 6 {
		r, err := first.responsesClient(keyAll).Responses.New(ctx, respParams("gpt-4o-mini", fmt.Sprintf("first %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		p := respParams("gpt-4o-mini", fmt.Sprintf("follow up %d", i))
		p.PreviousResponseID = oai.String(r.ID)
		if _, err := second.responsesClient(keyAll).Responses.New(ctx, p); err != nil {
			t.Fatalf("follow-up %d on a replica without the pin: %v", i, err)
		}
	}
}

func heavy(d DeploymentConfig) DeploymentConfig {
	d.Weight = 100
	return d
}

// conversationUpstream is a Responses API that bills a follow-up, as OpenAI does, for the whole conversation it
// continues: the previous response's input and output tokens come back as input tokens, though the follow-up's
// body holds none of them. Each call takes delay, so concurrent calls overlap.
func conversationUpstream(t *testing.T, delay time.Duration) *httptest.Server {
	t.Helper()
	var mu sync.Mutex
	carried := map[string]int64{} // response id -> tokens a follow-up carries
	var seq int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Input              string `json:"input"`
			PreviousResponseID string `json:"previous_response_id"`
			MaxOutputTokens    int64  `json:"max_output_tokens"`
			Stream             bool   `json:"stream"`
		}
		if json.NewDecoder(r.Body).Decode(&req) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		time.Sleep(delay)
		mu.Lock()
		prev, ok := carried[req.PreviousResponseID]
		seq++
		id := fmt.Sprintf("resp_conv_%d", seq)
		in, out := prev+int64(len(req.Input)/4+1), req.MaxOutputTokens
		carried[id] = in + out
		mu.Unlock()
		if req.PreviousResponseID != "" && !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"message":"Previous response not found.","type":"invalid_request_error","code":"previous_response_not_found"}}`)
			return
		}
		resp := fmt.Sprintf(`{"id":%q,"object":"response","status":"completed","model":"gpt-4o","output":[],`+
			`"usage":{"input_tokens":%d,"output_tokens":%d,"total_tokens":%d}}`, id, in, out, in+out)
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, resp)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		created := fmt.Sprintf(`{"id":%q,"object":"response","status":"in_progress","model":"gpt-4o","output":[]}`, id)
		_, _ = fmt.Fprintf(w, "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":%s}\n\n", created)
		_, _ = fmt.Fprintf(w, "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":1,\"response\":%s}\n\n", resp)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A follow-up on a long conversation is billed the conversation, not its own few bytes: the budget hold covers
// the conversation this replica relayed, so concurrent follow-ups cannot spend far past the budget.
func TestResponsesFollowUpHoldCoversTheConversation(t *testing.T) {
	t.Parallel()
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("first call streamed %v", stream), func(t *testing.T) {
			t.Parallel()
			up := conversationUpstream(t, 100*time.Millisecond)
			cfg := Config{Models: []ModelConfig{{Name: "conv", Pricing: &PricingConfig{InputPerMTok: "1", OutputPerMTok: "1"},
				Deployments: []DeploymentConfig{{Provider: ProviderOpenAI, BaseURL: up.URL + "/v1", Model: "gpt-4o"}}}}}
			var gov *governance.Governor
			h := newHarnessWith(t, cfg, func(g Governor) Governor { gov = g.(*governance.Governor); return g })
			client := h.responsesClient(keyFifty)
			ctx := context.Background()
			// 10,000 tokens of conversation ($0.01), well inside the first call's hold of its 40 KB body.
			first := respParams("conv", strings.Repeat("word ", 8000))
			first.MaxOutputTokens = oai.Int(16)
			var prevID string
			if stream {
				st := client.Responses.NewStreaming(ctx, first)
				for st.Next() {
					if ev := st.Current(); ev.Type == "response.completed" {
						prevID = ev.Response.ID
					}
				}
				if err := st.Err(); err != nil {
					t.Fatal(err)
				}
			} else {
				r, err := client.Responses.New(ctx, first)
				if err != nil {
					t.Fatal(err)
				}
				prevID = r.ID
			}
			// Ten follow-ups at once, each a few bytes with 16 output tokens, each billed the $0.01 conversation:
			// $0.04 is left, so at most four fit.
			var wg sync.WaitGroup
			var served atomic.Int64
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p := respParams("conv", "go on")
					p.MaxOutputTokens = oai.Int(16)
					p.PreviousResponseID = oai.String(prevID)
					if _, err := client.Responses.New(ctx, p); err == nil {
						served.Add(1)
					}
				}()
			}
			wg.Wait()
			if served.Load() == 0 {
				t.Fatal("no follow-up was served, though the budget had room for some")
			}
			for _, b := range gov.Budgets("") {
				if b.Name == "fifty" && (b.SpentNanoUSD > b.LimitNanoUSD || b.HeldNanoUSD != 0) {
					t.Fatalf("spent %s USD of a %s USD budget (held %s)", governance.FormatUSD(b.SpentNanoUSD),
						governance.FormatUSD(b.LimitNanoUSD), governance.FormatUSD(b.HeldNanoUSD))
				}
			}
		})
	}
}

// The Codex CLI on OpenAI's built-in provider (openai_base_url) opens each session with a WebSocket handshake on
// /v1/responses and falls back to POST at once only on a 426: a 405 cost it seven handshakes and some seven
// seconds of backoff per session. The handshake never reaches an upstream.
func TestResponsesWebSocketHandshakeAsksForHTTP(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	h := newHarness(t, oneModel("gpt-5-codex", openaiDep(m, "gpt-5-codex")))
	codexHeaders := http.Header{
		"Authorization":         {"Bearer " + keyAll},
		"Openai-Beta":           {"responses_websockets=2026-02-06"},
		"Originator":            {"codex_exec"},
		"X-Codex-Turn-Metadata": {`{"session_id":"01a252ac-1db0-7911-8c08-39dee9dbf7c6","turn_id":""}`},
	}
	cases := []struct {
		name   string
		header http.Header
		status int
		code   string
	}{
		{"codex handshake", codexHeaders, http.StatusUpgradeRequired, "websocket_not_supported"},
		{"handshake without a key", http.Header{"Openai-Beta": {"responses_websockets=2026-02-06"}}, http.StatusUpgradeRequired, "websocket_not_supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.url, "http")+"/v1/responses",
				&websocket.DialOptions{HTTPHeader: tc.header})
			if err == nil {
				conn.CloseNow()
				t.Fatal("the handshake was accepted")
			}
			if resp == nil {
				t.Fatalf("no answer to the handshake: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			var eb openAIErrorBody
			if resp.StatusCode != tc.status || json.Unmarshal(body, &eb) != nil || eb.Error.Code == nil || *eb.Error.Code != tc.code {
				t.Fatalf("handshake answered %d %s, want %d with an OpenAI error %q", resp.StatusCode, body, tc.status, tc.code)
			}
		})
	}
	t.Run("plain GET", func(t *testing.T) {
		resp, err := httpClient.Get(h.url + "/v1/responses")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
			t.Fatalf("plain GET answered %d, Allow %q; want 405, Allow POST", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	if r := m.LastRequest(); r.Path != "" {
		t.Fatalf("a handshake reached the upstream: %s %s", r.Method, r.Path)
	}
	// What Codex does next: the same turn over HTTP.
	if _, err := h.responsesClient(keyAll).Responses.New(context.Background(), respParams("gpt-5-codex", "say hello")); err != nil {
		t.Fatalf("POST after the refused handshake: %v", err)
	}
}

// A follow-up pinned to a deployment that fails, and then to one cooling down, is refused naming the deployment by
// its model and place, never by its upstream's host and port, like every other upstream failure.
func TestResponsesPinnedFailureHidesTheUpstreamAddress(t *testing.T) {
	t.Parallel()
	m := startMock(t, mock.LLMOptions{})
	cfg := oneModel("gpt-4o-mini", openaiDep(m, "gpt-4o-mini"))
	cfg.Router.AllowedFails = 1
	h := newHarness(t, cfg)
	ctx := context.Background()
	cl := h.responsesClient(keyAll)
	r, err := cl.Responses.New(ctx, respParams("gpt-4o-mini", "first"))
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(m.URL, "http://")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// In order: the first follow-up fails on the closed upstream and puts its deployment in cooldown, which the
	// second one finds.
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"attempt failed", http.StatusBadGateway},
		{"deployment cooling down", http.StatusServiceUnavailable},
	} {
		p := respParams("gpt-4o-mini", tc.name)
		p.PreviousResponseID = oai.String(r.ID)
		_, err := cl.Responses.New(ctx, p)
		ae := refusal(t, err)
		if ae.StatusCode != tc.status || !strings.Contains(ae.Message, "deployment gpt-4o-mini#1") ||
			strings.Contains(ae.Message, addr) || strings.Contains(ae.Message, "127.0.0.1") {
			t.Errorf("%s: %d %q; want %d naming gpt-4o-mini#1 and not the upstream %s", tc.name, ae.StatusCode, ae.Message, tc.status, addr)
		}
	}
}
