package app

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// endlessStream mounts a route that streams an SSE event every 20 ms until the client or the gateway ends it.
func endlessStream(a *App) {
	a.Fiber().Get("/test/stream", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/event-stream")
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			for {
				if _, err := w.WriteString("data: {}\n\n"); err != nil {
					return
				}
				if err := w.Flush(); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		return nil
	})
}

func dial(t *testing.T, s *started) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.url, "http://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closedWithin reports whether the server closes conn (after whatever it still sends) within d.
func closedWithin(conn net.Conn, d time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

func TestSlowlorisCannotExhaustTheGateway(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *config.Config) { c.Server.ReadTimeout = time.Second }, nil)
	const slow = 40
	conns := make([]net.Conn, slow)
	for i := range conns {
		conns[i] = dial(t, s)
		if _, err := conns[i].Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	// One header byte per connection every 300 ms: never a complete request.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, c := range conns {
					_, _ = c.Write([]byte("X"))
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()

	if code, _, _ := get(t, s.url+"/healthz"); code != http.StatusOK {
		t.Fatalf("normal client during slowloris: status %d", code)
	}
	for i, c := range conns {
		if !closedWithin(c, 5*time.Second) {
			t.Fatalf("slow connection %d still open after the read timeout", i)
		}
	}
}

func TestRequestSizeLimits(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *config.Config) {
		c.Server.MaxHeaderBytes = 4096
		c.Server.MaxBodyBytes = 1024
	}, nil)
	cases := []struct {
		name   string
		wire   string
		status string
	}{
		{"header over max_header_bytes", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8192) + "\r\n\r\n", "431"},
		{"body over max_body_bytes", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n" +
			strings.Repeat(" ", 4096), "413"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, s)
			if _, err := conn.Write([]byte(tc.wire)); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Status[:3]; got != tc.status {
				t.Fatalf("status %s, want %s", resp.Status, tc.status)
			}
			var body struct {
				Error struct {
					Type string `json:"type"`
				} `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error.Type == "" {
				t.Fatalf("not an OpenAI error body: %v", err)
			}
		})
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *config.Config) { c.Server.MaxConnsPerIP = 2 }, nil)
	held := []net.Conn{dial(t, s), dial(t, s)}
	for _, c := range held {
		// A request each, so both connections are surely accepted and counted before the third dials.
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	over := dial(t, s)
	_, _ = over.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("third connection from one IP: status %d, want 429 or a closed connection", resp.StatusCode)
		}
	}
}

// deafStream mounts POST /v1/completions (a path the stream limiter knows, no gateway serves) as a stream that
// ignores the deadline it is told, reporting on toldDeadline whether it was told one.
func deafStream(toldDeadline chan<- bool) func(*App) {
	return func(a *App) {
		a.Fiber().Post("/v1/completions", func(c *fiber.Ctx) error {
			_, ok := c.UserContext().Deadline()
			toldDeadline <- ok
			c.Set(fiber.HeaderContentType, "text/event-stream")
			c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
				for {
					if _, err := w.WriteString("data: {}\n\n"); err != nil {
						return
					}
					if err := w.Flush(); err != nil {
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
			return nil
		})
	}
}

// TestStreamOverMaxDurationIsEnded: a stream past server.max_stream_duration ends in its protocol's own final
// error event and its span records the failure; a stream that ignores its deadline, or was never told one, is
// cut by the connection close.
func TestStreamOverMaxDurationIsEnded(t *testing.T) {
	t.Parallel()
	const key = "sk-limits-stream-0123456789abcdef"
	// 20 tokens a second for 200 words: an upstream stream of ten seconds.
	llmUp, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{TokensPerSecond: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { llmUp.Close() })
	// The agent says "working", then thinks for a minute.
	agentUp, err := mock.StartA2A("127.0.0.1:0", mock.A2AOptions{Name: "researcher", Latency: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentUp.Close() })
	toldDeadline := make(chan bool, 1)
	s := start(t, func(c *config.Config) {
		c.Server.MaxStreamDuration = 300 * time.Millisecond
		c.Models = []llm.ModelConfig{
			{Name: "oa", Deployments: []llm.DeploymentConfig{{Provider: llm.ProviderOpenAI, BaseURL: llmUp.URL + "/v1", Model: "gpt-4o-mini"}}},
			{Name: "an", Deployments: []llm.DeploymentConfig{{Provider: llm.ProviderAnthropic, BaseURL: llmUp.URL, Model: "claude-3-5-haiku"}}},
		}
		c.A2A = sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "researcher", CardURL: agentUp.URL + "/.well-known/agent-card.json"}}}
		c.Governance = governance.Config{Secret: "limits-governance-secret-0123456789", Keys: []governance.KeyConfig{{Name: "k", Key: key}}}
	}, func(a *App) { endlessStream(a); deafStream(toldDeadline)(a) })
	s.waitReady(t)

	prompt := strings.Repeat("word ", 200)
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		// tail is what the stream's last event holds; none: the connection was closed under it.
		tail []string
		span string // name of the call's span, which must record an error
	}{
		{name: "openai chat stream", method: http.MethodPost, path: "/v1/chat/completions",
			body: `{"model":"oa","stream":true,"messages":[{"role":"user","content":"` + prompt + `"}]}`,
			tail: []string{`data: {"error":{`, `"code":"stream_duration_exceeded"`}, span: "chat oa"},
		{name: "anthropic messages stream", method: http.MethodPost, path: "/v1/messages",
			body: `{"model":"an","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"` + prompt + `"}]}`,
			tail: []string{"event: error\ndata: {", `"type":"error"`, "maximum stream duration"}, span: "chat an"},
		{name: "a2a message stream", method: http.MethodPost, path: "/a2a/researcher", header: map[string]string{"A2A-Version": "1.0"},
			body: `{"jsonrpc":"2.0","id":7,"method":"SendStreamingMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`,
			tail: []string{`"id":7`, `"error":{`, "maximum stream duration"}, span: "invoke_agent researcher"},
		{name: "stream found after the handler", method: http.MethodGet, path: "/test/stream"},
		{name: "stream that ignores its deadline", method: http.MethodPost, path: "/v1/completions", body: `{"stream":true}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest(tc.method, s.url+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+key)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			// Longer than the backstop's grace after the deadline.
			resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			var ne net.Error
			if err != nil && errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the stream ran until the client's timeout: max_stream_duration not enforced")
			}
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), "data: ") {
				t.Fatalf("status %d, body %q: want a stream with events before its end", resp.StatusCode, raw)
			}
			if tc.tail == nil {
				return
			}
			if err != nil {
				t.Fatalf("the stream was cut instead of ending with its error event: %v (read %q)", err, raw)
			}
			body := strings.TrimRight(string(raw), "\n")
			last := body[strings.LastIndex("\n\n"+body, "\n\n"):]
			for _, want := range tc.tail {
				if !strings.Contains(last, want) {
					t.Fatalf("last event %q lacks %q; whole stream:\n%s", last, want, raw)
				}
			}
			root := waitForTrace(t, s.app.Store(), tc.span, 1).Span
			if root.Status != trace.StatusError || !strings.Contains(root.Error, "maximum stream duration") {
				t.Fatalf("span %q: status %s error %q, want the duration limit recorded", tc.span, root.Status, root.Error)
			}
		})
	}
	t.Run("a stream asked for is told its deadline", func(t *testing.T) {
		t.Parallel()
		select {
		case ok := <-toldDeadline:
			if !ok {
				t.Fatal("the handler of a stream request saw no deadline on its context")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the deaf stream's handler never ran")
		}
	})
}

func TestMaxConcurrentStreams(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *config.Config) { c.Server.MaxConcurrentStreams = 1 }, endlessStream)
	first, err := http.Get(s.url + "/test/stream")
	if err != nil {
		t.Fatal(err)
	}
	// Reading the first event proves the stream is running and holds the only slot.
	if _, err := bufio.NewReader(first.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, path, body string
		want                     string // in the body
	}{
		{"stream found after the handler", http.MethodGet, "/test/stream", "", `"too_many_streams"`},
		{"stream asked for in the request", http.MethodPost, "/v1/chat/completions", `{"model":"m","stream" : true,"messages":[]}`,
			`"too_many_streams"`},
		{"Responses API stream asked for in the request", http.MethodPost, "/v1/responses", `{"model":"m","stream":true,"input":"hi"}`,
			`"too_many_streams"`},
		{"Anthropic stream, in Anthropic's shape", http.MethodPost, "/v1/messages", `{"model":"m","stream":true,"max_tokens":5,"messages":[]}`,
			`"type":"overloaded_error"`},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, s.url+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), tc.want) {
			t.Fatalf("%s: status %d body %s, want 503 with %s", tc.name, resp.StatusCode, body, tc.want)
		}
	}
	first.Body.Close()
	// The slot comes back when the first stream's connection is done.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(s.url + "/test/stream")
		if err != nil {
			t.Fatal(err)
		}
		ok := resp.StatusCode == http.StatusOK
		resp.Body.Close()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot was not given back after the stream ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWantsStream(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body string
		want bool
	}{
		{`{"stream":true}`, true},
		{`{"model":"m", "stream" :  true}`, true},
		{`{"stream":false}`, false},
		{`{"messages":[{"content":"\"stream\": true"}]}`, false},
		{`{}`, false},
	}
	for _, tc := range cases {
		if got := jsonMemberIs([]byte(tc.body), "stream", "true"); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.body, got, tc.want)
		}
	}
}

// A handler that panics on a stream request gives back the slot the limiter gave it: with one stream slot, the
// next stream request is served (here: panics again) instead of refused.
func TestPanickingStreamHandlerReleasesItsSlot(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *config.Config) { c.Server.MaxConcurrentStreams = 1 }, func(a *App) {
		// A path the limiter knows as a stream (with "stream": true), which no gateway serves here.
		a.Fiber().Post("/v1/completions", func(*fiber.Ctx) error { panic("stream handler") })
	})
	for i := range 3 {
		resp, err := http.Post(s.url+"/v1/completions", "application/json", strings.NewReader(`{"model":"m","stream":true}`))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("request %d: %d, want 500 from the panic (503 means the slot leaked)", i, resp.StatusCode)
		}
	}
}
