package llm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const limitsChatBody = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`

// chatReply is an OpenAI chat completion whose content is n bytes long.
func chatReply(n int) string {
	return `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat("a", n) + `"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`
}

// sizedBody is a chat request asking sizedUpstream for n bytes of content.
func sizedBody(stream bool, n int) string {
	return fmt.Sprintf(`{"model":"m","stream":%t,"messages":[{"role":"user","content":"%d"}]}`, stream, n)
}

// sizedUpstream answers a sizedBody request with that much content, as JSON
// or, for stream calls, in one SSE event.
func sizedUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct{ Content string } `json:"messages"`
		}
		body, _ := io.ReadAll(r.Body)
		var n int
		if json.Unmarshal(body, &req) == nil && len(req.Messages) == 1 {
			n, _ = strconv.Atoi(req.Messages[0].Content)
		}
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, chatReply(n))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"`+
			strings.Repeat("b", n)+`"}}]}`+"\n\n")
		_, _ = io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}`+"\n\n")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// An upstream reply, or one event of a stream, over router.max_response_bytes
// fails the call with a 502 that names the limit, and the gateway goes on
// serving replies under it. A reload changes the limit for new calls.
func TestUpstreamReplySizeLimit(t *testing.T) {
	t.Parallel()
	srv := sizedUpstream(t)
	cfg := oneModel("m", DeploymentConfig{Provider: ProviderOpenAI, BaseURL: srv.URL + "/v1", Model: "m"})
	cfg.Router.Retries, cfg.Router.MaxResponseBytes = 0, 64<<10
	h := newHarness(t, cfg)
	for _, tc := range []struct {
		name       string
		stream     bool
		size       int
		wantStatus int
	}{
		{"JSON under the limit", false, 32 << 10, http.StatusOK},
		{"JSON over the limit", false, 96 << 10, http.StatusBadGateway},
		{"stream event under the limit", true, 32 << 10, http.StatusOK},
		{"stream event over the limit", true, 96 << 10, http.StatusBadGateway},
		{"JSON under the limit again", false, 1 << 10, http.StatusOK},
	} {
		status, _, eb, raw := h.post("/v1/chat/completions", keyAll, sizedBody(tc.stream, tc.size))
		if status != tc.wantStatus {
			t.Fatalf("%s: status %d %.300s, want %d", tc.name, status, raw, tc.wantStatus)
		}
		if status == http.StatusBadGateway && !strings.Contains(eb.Error.Message, "max_response_bytes") {
			t.Fatalf("%s: message %q does not name router.max_response_bytes", tc.name, eb.Error.Message)
		}
	}

	cfg.Router.MaxResponseBytes = 16 << 10
	if err := h.gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if status, _, _, raw := h.post("/v1/chat/completions", keyAll, sizedBody(false, 32<<10)); status != http.StatusBadGateway {
		t.Fatalf("after lowering the limit: status %d %.300s, want 502", status, raw)
	}
}

// Credentials a deployment is configured with never come back to the client,
// whether the upstream quotes them in an error reply or in an error event in
// the middle of a stream. Short header values are not treated as credentials.
func TestUpstreamTextIsRelayedWithoutCredentials(t *testing.T) {
	t.Parallel()
	const apiKey, headerSecret = "sk-upstream-key-0123456789", "pk-portkey-secret-42"
	// firstRelayed holds the error event back until the client has the first
	// event, so the error comes mid-stream rather than before the commit.
	firstRelayed := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		quoted := fmt.Sprintf("key %q and header %q rejected, version %s", strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "),
			r.Header.Get("X-Portkey-Api-Key"), r.Header.Get("X-Version"))
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}`+"\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-firstRelayed:
			case <-time.After(10 * time.Second):
			}
			_, _ = fmt.Fprintf(w, "data: {\"error\":{\"message\":%q,\"type\":\"server_error\"}}\n\n", quoted)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprintf(w, `{"error":{"message":%q,"type":"invalid_request_error"}}`, quoted)
	}))
	t.Cleanup(srv.Close)
	cfg := oneModel("m", DeploymentConfig{Provider: ProviderOpenAI, BaseURL: srv.URL + "/v1", Model: "m", APIKey: apiKey,
		Headers: map[string]string{"X-Portkey-Api-Key": headerSecret, "X-Version": "2"}})
	cfg.Router.Retries = 0
	h := newHarness(t, cfg)
	check := func(name, got string) {
		t.Helper()
		if strings.Contains(got, apiKey) || strings.Contains(got, headerSecret) {
			t.Fatalf("%s: a credential reached the client: %s", name, got)
		}
		if strings.Count(got, "[redacted]") != 2 || !strings.Contains(got, "version 2") {
			t.Fatalf("%s: want both credentials redacted and the short header value kept: %s", name, got)
		}
	}

	_, _, _, raw := h.post("/v1/chat/completions", keyAll, limitsChatBody)
	check("error reply", string(raw))

	req, err := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+keyAll)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := bufio.NewReader(resp.Body)
	if first, err := events.ReadString('\n'); err != nil || !strings.Contains(first, `"hi"`) {
		t.Fatalf("first event %q, %v", first, err)
	}
	close(firstRelayed)
	rest, _ := io.ReadAll(events)
	check("error event", string(rest))

	for _, s := range h.waitSpans("chat m", 2) {
		if strings.Contains(s.Error, apiKey) || strings.Contains(s.Error, headerSecret) {
			t.Fatalf("span %q error holds a credential: %q", s.Name, s.Error)
		}
	}
}

// escapeAll writes s as JSON's \u escapes only, which a client's decoder turns back into s.
func escapeAll(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

// An upstream quoting the key it was sent with every character \u-escaped
// gets past a scan for the key's bytes, but not past a client's JSON decoder:
// such an error reply or mid-stream error event is not relayed, and neither
// what the go-openai client reads nor the spans hold the key.
func TestEscapedCredentialsAreNotRelayed(t *testing.T) {
	t.Parallel()
	const apiKey = "sk-upstream-key-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		quoted := `{"error":{"message":"key ` + escapeAll(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) +
			` rejected","type":"invalid_request_error"}}`
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}`+"\n\n")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "data: "+quoted+"\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, quoted)
	}))
	t.Cleanup(srv.Close)
	cfg := oneModel("m", DeploymentConfig{Provider: ProviderOpenAI, BaseURL: srv.URL + "/v1", Model: "m", APIKey: apiKey})
	cfg.Router.Retries = 0
	h := newHarness(t, cfg)
	cli := h.client(keyAll)
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%t", stream), func(t *testing.T) {
			var err error
			if stream {
				s, serr := cli.CreateChatCompletionStream(t.Context(), chatReq("m", "hi"))
				if serr != nil {
					t.Fatal(serr)
				}
				defer s.Close()
				for err == nil {
					_, err = s.Recv()
				}
			} else {
				_, err = cli.CreateChatCompletion(t.Context(), chatReq("m", "hi"))
			}
			if err == nil || errors.Is(err, io.EOF) || strings.Contains(err.Error(), apiKey) {
				t.Fatalf("error the client read: %v", err)
			}
		})
	}
	for _, s := range h.waitSpans("chat m", 2) {
		if strings.Contains(s.Error, apiKey) {
			t.Errorf("span error holds the key: %q", s.Error)
		}
	}
}
