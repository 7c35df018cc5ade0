package app

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

// An operator who has the request id of a client's error body finds the lines the gateway logged for that call:
// every line logged while a request is handled, on each layer, carries request_id equal to its X-Request-Id,
// the client's own when it sent a usable one and the gateway's otherwise.
func TestLogLinesOfACallCarryItsRequestID(t *testing.T) {
	t.Parallel()
	const (
		key      = "sk-requestid-test-0123456789abcdef"
		adminKey = "sk-sb-admin-requestid-0123456789"
	)
	agentUp, err := mock.StartA2A("127.0.0.1:0", mock.A2AOptions{Name: "researcher"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentUp.Close() })
	// A slow agent: a client that leaves its stream leaves the gateway writing keep-alives to no one.
	slowUp, err := mock.StartA2A("127.0.0.1:0", mock.A2AOptions{Name: "writer", Latency: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slowUp.Close() })
	// Nothing listens on port 1: every call to the model fails, and its deployment cools down after one failure.
	cfg := testConfig(t)
	cfg.Models = []llm.ModelConfig{
		{Name: "down", Deployments: []llm.DeploymentConfig{{Provider: llm.ProviderOpenAI, BaseURL: "http://127.0.0.1:1/v1", Model: "gpt-4o-mini"}}},
		{Name: "down-too", Deployments: []llm.DeploymentConfig{{Provider: llm.ProviderOpenAI, BaseURL: "http://127.0.0.1:1/v1", Model: "gpt-4o"}}},
	}
	cfg.Router.AllowedFails, cfg.Router.Retries = 1, 0
	cfg.A2A = sba2a.Config{StreamKeepAlive: 20 * time.Millisecond, Agents: []sba2a.AgentConfig{
		{Name: "researcher", CardURL: agentUp.URL + "/.well-known/agent-card.json"},
		{Name: "writer", CardURL: slowUp.URL + "/.well-known/agent-card.json"}}}
	cfg.Governance = governance.Config{Secret: "requestid-governance-secret-0123456789", AdminKey: adminKey,
		Keys: []governance.KeyConfig{{Name: "k", Key: key}}}
	logs := &lockedBuffer{}
	a, err := New(&cfg, slog.New(slog.NewJSONHandler(logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Fiber().Post("/test/panic", func(*fiber.Ctx) error { panic("handler bug") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-served })
	base := "http://" + ln.Addr().String()
	// The agent's card is in the registry; from now on each call to the agent fails.
	agentUp.Close()

	cases := []struct {
		name, path, body, key string
		header                map[string]string
		msg                   string // the line the call logs, or the start of it
		leave                 bool   // the client reads the first event of its stream and leaves
	}{
		{name: "llm: the call's deployment cools down", path: "/v1/chat/completions", key: key,
			body:   `{"model":"down","messages":[{"role":"user","content":"hi"}]}`,
			header: map[string]string{"X-Request-Id": "rid-llm-cooldown"}, msg: "deployment cooling down"},
		{name: "llm: a stream's deployment cools down", path: "/v1/chat/completions", key: key,
			body:   `{"model":"down-too","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
			header: map[string]string{"X-Request-Id": "rid-llm-stream"}, msg: "deployment cooling down"},
		{name: "a2a: the agent cannot be reached", path: "/a2a/researcher", key: key,
			body:   `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`,
			header: map[string]string{"X-Request-Id": "rid-a2a-down", "A2A-Version": "1.0"}, msg: "a2a: upstream call failed"},
		{name: "a2a: a2a-go cannot write to a client that left its stream", path: "/a2a/writer", key: key,
			body:   `{"jsonrpc":"2.0","id":2,"method":"SendStreamingMessage","params":{"message":{"messageId":"m2","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`,
			header: map[string]string{"X-Request-Id": "rid-a2a-left", "A2A-Version": "1.0"}, msg: "failed to write", leave: true},
		{name: "admin: a key is created, under the gateway's own id", path: "/admin/keys", key: adminKey,
			body: `{"name":"created-by-requestid-test"}`, msg: "runtime key created"},
		{name: "app: a handler panics", path: "/test/panic", header: map[string]string{"X-Request-Id": "rid-panic"},
			msg: "panic in handler"},
		{name: "dashboard: a login", path: "/ui/login", body: `{"key":"` + key + `"}`,
			header: map[string]string{"X-Request-Id": "rid-ui-login", "Origin": base}, msg: "dashboard login"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, base+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", "application/json")
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.leave {
				if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
					t.Fatalf("first event: %v", err)
				}
			}
			resp.Body.Close()
			id := resp.Header.Get("X-Request-Id")
			if want := tc.header["X-Request-Id"]; id == "" || want != "" && id != want {
				t.Fatalf("X-Request-Id = %q, want %q (or a new one when the client sent none)", id, want)
			}
			// Some lines are written after the answer: a stream's, once the gateway finds its client gone.
			var found []string
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				found = nil
				sc := bufio.NewScanner(strings.NewReader(logs.String()))
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					var line struct {
						Msg       string  `json:"msg"`
						RequestID *string `json:"request_id"`
					}
					if json.Unmarshal(sc.Bytes(), &line) != nil || !strings.HasPrefix(line.Msg, tc.msg) {
						continue
					}
					if line.RequestID != nil && *line.RequestID == id {
						return
					}
					found = append(found, sc.Text())
				}
			}
			t.Fatalf("no %q line with request_id %q; lines with that message: %q", tc.msg, id, found)
		})
	}
}
