package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

var httpClient = &http.Client{Timeout: 10 * time.Second}

// post sends body to the gateway and returns status, headers and the parsed
// OpenAI error (if any).
func (h *harness) post(path, key, body string, hdr ...string) (int, http.Header, openAIErrorBody, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb openAIErrorBody
	_ = json.Unmarshal(raw, &eb)
	return resp.StatusCode, resp.Header, eb, raw
}

func TestErrorCases(t *testing.T) {
	t.Parallel()
	up := startMock(t, mock.LLMOptions{})
	downMock := startMock(t, mock.LLMOptions{Fail: map[string]int{"gpt-4o": 503}})
	cfg := Config{
		Models: []ModelConfig{
			{Name: "gpt-4o-mini", Deployments: []DeploymentConfig{openaiDep(up, "gpt-4o-mini")}},
			{Name: "down", Deployments: []DeploymentConfig{openaiDep(downMock, "gpt-4o")}},
			{Name: "unreachable", Deployments: []DeploymentConfig{{Provider: ProviderOpenAI, BaseURL: "http://127.0.0.1:1/v1"}}},
		},
		Router: RouterConfig{Retries: 1, RetryBackoff: time.Millisecond, MaxBodyBytes: 4096},
	}
	h := newHarness(t, cfg)
	ok := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name       string
		key        string
		body       string
		wantStatus int
		wantType   string
		wantCode   string
	}{
		{"no key", "", ok, 401, "invalid_request_error", "invalid_api_key"},
		{"wrong key", "sk-nope-000000000000000000000", ok, 401, "invalid_request_error", "invalid_api_key"},
		{"malformed JSON", keyAll, `{"model":"gpt-4o-mini",`, 400, "invalid_request_error", "invalid_json"},
		{"empty body", keyAll, ``, 400, "invalid_request_error", "invalid_request"},
		{"not an object", keyAll, `[1,2]`, 400, "invalid_request_error", "invalid_request"},
		{"missing model", keyAll, `{"messages":[]}`, 400, "invalid_request_error", "missing_required_parameter"},
		{"model not a string", keyAll, `{"model":7}`, 400, "invalid_request_error", "invalid_request"},
		{"stream not a bool", keyAll, `{"model":"gpt-4o-mini","stream":"yes"}`, 400, "invalid_request_error", "invalid_request"},
		{"duplicate model", keyAll, `{"model":"gpt-4o-mini","model":"gpt-4o"}`, 400, "invalid_request_error", "invalid_request"},
		{"case-variant model", keyAll, `{"model":"gpt-4o-mini","Model":"down"}`, 400, "invalid_request_error", "invalid_request"},
		{"escaped duplicate model", keyAll, `{"model":"gpt-4o-mini","mod\u0065l":"down"}`, 400, "invalid_request_error", "invalid_request"},
		{"case-variant stream", keyAll, `{"model":"gpt-4o-mini","STREAM":true}`, 400, "invalid_request_error", "invalid_request"},
		{"too large", keyAll, `{"model":"gpt-4o-mini","pad":"` + strings.Repeat("x", 5000) + `"}`, 413, "invalid_request_error", "request_too_large"},
		{"unknown model", keyAll, `{"model":"nope","messages":[]}`, 404, "invalid_request_error", "model_not_found"},
		{"model not allowed, answered as unknown", keyMini, `{"model":"down","messages":[]}`, 404, "invalid_request_error", "model_not_found"},
		{"budget exceeded", keyBroke, ok, 429, "budget_exceeded", "budget_exceeded"},
		{"upstream down after retries", keyAll, `{"model":"down","messages":[{"role":"user","content":"hi"}]}`, 502, "server_error", "upstream_unavailable"},
		{"upstream unreachable", keyAll, `{"model":"unreachable","messages":[{"role":"user","content":"hi"}]}`, 502, "server_error", "upstream_unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, eb, raw := h.post("/v1/chat/completions", tc.key, tc.body)
			if status != tc.wantStatus || eb.Error.Type != tc.wantType || eb.Error.Code == nil || *eb.Error.Code != tc.wantCode || eb.Error.Message == "" {
				t.Fatalf("got %d %s, want %d type %q code %q", status, raw, tc.wantStatus, tc.wantType, tc.wantCode)
			}
		})
	}
	t.Run("rate limited", func(t *testing.T) {
		if status, _, _, raw := h.post("/v1/chat/completions", keyLimited, ok); status != 200 {
			t.Fatalf("first call: %d %s", status, raw)
		}
		status, hdr, eb, raw := h.post("/v1/chat/completions", keyLimited, ok)
		if status != 429 || eb.Error.Code == nil || *eb.Error.Code != "rate_limit_exceeded" || hdr.Get("Retry-After") == "" {
			t.Fatalf("second call: %d %v %s", status, hdr, raw)
		}
	})
	t.Run("no upstream contact on refusals", func(t *testing.T) {
		before := up.Requests()
		h.post("/v1/chat/completions", keyAll, `{"model":"gpt-4o-mini","model":"gpt-4o-mini"}`)
		h.post("/v1/chat/completions", "", ok)
		if up.Requests() != before {
			t.Fatal("a refused request reached the upstream")
		}
	})
}

func TestUpstreamClientErrorIsRelayed(t *testing.T) {
	t.Parallel()
	up := startMock(t, mock.LLMOptions{Fail: map[string]int{"gpt-4o-mini": 422}})
	h := newHarness(t, oneModel("gpt-4o-mini", openaiDep(up, "gpt-4o-mini")))
	status, _, eb, raw := h.post("/v1/chat/completions", keyAll, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
	if status != 422 || !strings.Contains(eb.Error.Message, "failure injected") {
		t.Fatalf("got %d %s, want the upstream's 422 relayed", status, raw)
	}
	if up.Requests() != 1 {
		t.Fatalf("a client error was retried: %d upstream requests", up.Requests())
	}
}

// An upstream's failure reaches the client naming the deployment by its model and place in the config, never by
// its upstream's host and port, which are the operator's network; streamed or not.
func TestUpstreamFailureHidesTheUpstreamAddress(t *testing.T) {
	t.Parallel()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close() // nothing listens there any more: connections are refused
	failing := startMock(t, mock.LLMOptions{Fail: map[string]int{"gpt-4o-mini": 503}})
	slow := startMock(t, mock.LLMOptions{Latency: 5 * time.Second})
	cases := []struct {
		name, addr string
		dep        DeploymentConfig
		want       string
	}{
		{"connection refused", refusedAddr,
			DeploymentConfig{Provider: ProviderOpenAI, BaseURL: "http://" + refusedAddr + "/v1", Model: "gpt-4o-mini", Timeout: 5 * time.Second},
			"deployment topo#1: connection failed"},
		{"upstream error status", strings.TrimPrefix(failing.URL, "http://"), openaiDep(failing, "gpt-4o-mini"),
			"deployment topo#1 answered HTTP 503"},
		{"timeout", strings.TrimPrefix(slow.URL, "http://"),
			DeploymentConfig{Provider: ProviderOpenAI, BaseURL: slow.URL + "/v1", Model: "gpt-4o-mini", Timeout: 200 * time.Millisecond},
			"deployment topo#1: timed out after 200ms"},
	}
	for _, tc := range cases {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s stream=%v", tc.name, stream), func(t *testing.T) {
				t.Parallel()
				h := newHarness(t, oneModel("topo", tc.dep))
				req := openai.ChatCompletionRequest{Model: "topo", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
				var err error
				if stream {
					var st *openai.ChatCompletionStream
					if st, err = h.client(keyAll).CreateChatCompletionStream(context.Background(), req); err == nil {
						st.Close()
					}
				} else {
					_, err = h.client(keyAll).CreateChatCompletion(context.Background(), req)
				}
				var apiErr *openai.APIError
				if !errors.As(err, &apiErr) {
					t.Fatalf("err %v, want the gateway's OpenAI error", err)
				}
				if !strings.Contains(apiErr.Message, tc.want) || strings.Contains(apiErr.Message, tc.addr) ||
					strings.Contains(apiErr.Message, "127.0.0.1") {
					t.Errorf("message %q; want it to name %q and not the upstream %s", apiErr.Message, tc.want, tc.addr)
				}
			})
		}
	}
}

// A stream the upstream broke with an event the gateway cannot read says so, as it did before the upstream's address
// was hidden; only a connection's own error is told as "the connection to the upstream failed", as its text names
// that address.
func TestStreamFailureSaysWhatFailed(t *testing.T) {
	t.Parallel()
	const (
		start = `event: message_start` + "\n" + `data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m",` +
			`"content":[],"stop_reason":null,"usage":{"input_tokens":3,"output_tokens":0}}}` + "\n\n" +
			`event: content_block_start` + "\n" + `data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}` + "\n\n" +
			`event: content_block_delta` + "\n" + `data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}` + "\n\n"
		broken = `event: content_block_delta` + "\n" + `data: {"type":"content_block_delta",` + "\n\n"
	)
	for _, tc := range []struct {
		name   string
		events []string // each flushed on its own
	}{
		{"before the first event", []string{broken}},
		{"after the first event", []string{start, broken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "text/event-stream")
				for _, ev := range tc.events {
					fmt.Fprint(w, ev)
					w.(http.Flusher).Flush()
					time.Sleep(50 * time.Millisecond)
				}
			}))
			t.Cleanup(up.Close)
			cfg := oneModel("m", DeploymentConfig{Provider: ProviderAnthropic, BaseURL: up.URL, Model: "m"})
			cfg.Router.Retries = 0
			h := newHarness(t, cfg)
			req := openai.ChatCompletionRequest{Model: "m", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
			st, err := h.client(keyAll).CreateChatCompletionStream(context.Background(), req)
			if err == nil {
				_, _, _, err = collect(t, st)
			}
			if err == nil || !strings.Contains(err.Error(), "unexpected end of JSON input") || strings.Contains(err.Error(), "connection") {
				t.Fatalf("err %v; want the stream's failure named as the unreadable event it was, not a connection failure", err)
			}
		})
	}
}
