package llm

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// headerMaxDuration stands in for the server's stream limiter in these tests: it gives the request's context
// a deadline this far ahead.
const headerMaxDuration = "x-test-max-duration"

// withDeadlines serves h's gateway on a second loopback port behind a middleware that sets the request
// context's deadline the way the server's stream limiter does.
func withDeadlines(t *testing.T, h *harness) string {
	t.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(func(c *fiber.Ctx) error {
		d, err := time.ParseDuration(c.Get(headerMaxDuration))
		if err != nil {
			return c.Next()
		}
		ctx, cancel := context.WithTimeout(c.UserContext(), d)
		// The stream is written after the handler returned; the deadline is read before, so cancelling
		// after the test is soon enough.
		t.Cleanup(cancel)
		c.SetUserContext(ctx)
		return c.Next()
	})
	h.gw.Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.ShutdownWithTimeout(5 * time.Second) })
	return "http://" + ln.Addr().String()
}

func TestStreamPastItsDeadlineEndsWithAnErrorEvent(t *testing.T) {
	t.Parallel()
	// 20 tokens a second for 200 words: the upstream stream would run for ten seconds.
	m := startMock(t, mock.LLMOptions{TokensPerSecond: 20})
	late := openaiDep(m, "gpt-4o-mini")
	late.Headers = map[string]string{mock.HeaderLatency: "3s"}
	cfg := Config{
		Models: []ModelConfig{
			{Name: "oa", Deployments: []DeploymentConfig{openaiDep(m, "gpt-4o-mini")}},
			{Name: "an", Deployments: []DeploymentConfig{anthropicDep(m, "claude-3-5-haiku")}},
			{Name: "late", Deployments: []DeploymentConfig{late}},
		},
		// One counted failure would open a breaker: the test proves none is counted.
		Router: RouterConfig{RetryBackoff: time.Millisecond, Cooldown: time.Minute, AllowedFails: 1},
	}
	h := newHarness(t, cfg)
	url := withDeadlines(t, h)
	prompt := strings.Repeat("word ", 200)
	cases := []struct {
		name, model, path, body, maxDur string
		status                          int
		// tail is what the response ends with: the stream's final error event, or the plain error body.
		tail []string
		// within bounds how long the answer may take: the limit, not the upstream, decides when it comes.
		within time.Duration
	}{
		{"openai stream", "oa", "/v1/chat/completions",
			`{"model":"oa","stream":true,"messages":[{"role":"user","content":"` + prompt + `"}]}`, "300ms",
			http.StatusOK, []string{`data: {"error":{`, `"code":"stream_duration_exceeded"`}, 5 * time.Second},
		{"anthropic stream", "an", "/v1/messages",
			`{"model":"an","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"` + prompt + `"}]}`, "300ms",
			http.StatusOK, []string{"event: error\ndata: {", `"type":"api_error"`, "maximum stream duration"}, 5 * time.Second},
		// The upstream sends nothing for 3 s: the limit must not wait for its headers.
		{"deadline passed before the upstream answered", "late", "/v1/chat/completions",
			`{"model":"late","stream":true,"messages":[{"role":"user","content":"hi"}]}`, "150ms",
			http.StatusGatewayTimeout, []string{`{"error":{`, `"code":"stream_duration_exceeded"`}, 1500 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(http.MethodPost, url+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+keyAll)
			req.Header.Set(headerMaxDuration, tc.maxDur)
			start := time.Now()
			resp, err := (&http.Client{Timeout: 8 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("the response did not end cleanly: %v (read %q)", err, raw)
			}
			if took := time.Since(start); took > tc.within {
				t.Fatalf("the answer took %v, want it within %v", took, tc.within)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, raw)
			}
			body := strings.TrimRight(string(raw), "\n")
			last := body[strings.LastIndex("\n\n"+body, "\n\n"):]
			for _, want := range tc.tail {
				if !strings.Contains(last, want) {
					t.Fatalf("last event %q lacks %q; whole body:\n%s", last, want, raw)
				}
			}
			if tc.status == http.StatusOK && !strings.Contains(body[:len(body)-len(last)], "data: ") {
				t.Fatalf("no event before the error: %s", raw)
			}
			sp := h.waitSpans("chat "+tc.model, 1)[0]
			if sp.Status != trace.StatusError || sp.HTTPStatus != http.StatusGatewayTimeout {
				t.Fatalf("span status %s/%d, want error/504", sp.Status, sp.HTTPStatus)
			}
			b := &h.gw.table.Load().groups[tc.model].deployments[0].st.breaker
			b.mu.Lock()
			fails, open := b.fails, !b.openUntil.IsZero()
			b.mu.Unlock()
			if fails != 0 || open {
				t.Fatalf("the gateway's own limit counted against the deployment: fails %d, open %v", fails, open)
			}
		})
	}
}
