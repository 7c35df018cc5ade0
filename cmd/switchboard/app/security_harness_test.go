package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	sbmcp "github.com/switchboard-gw/switchboard/mcp"
)

// Secrets of the security suite: none may appear in an answer or a log line.
const (
	secAdminKey     = "sk-sec-admin-7f3a9c1e5b2d4f6a8c0e"
	secAliceKey     = "sk-sec-alice-1b2c3d4e5f6a7b8c9d0e"
	secBobKey       = "sk-sec-bob-00aa11bb22cc33dd44ee55"
	secExpiredKey   = "sk-sec-expired-9e8d7c6b5a4f3e2d1c"
	secDisabledKey  = "sk-sec-disabled-0f1e2d3c4b5a6978"
	secWrongKey     = "sk-sec-wrong-5566778899aabbccddee"
	secGovSecret    = "sec-governance-secret-4242424242"
	secUpstreamLLM  = "sk-upstream-llm-c0ffee0c0ffee0c0ffee"
	secUpstreamMCP  = "upstream-mcp-token-deadbeefdeadbeef"
	secUpstreamA2A  = "upstream-a2a-token-feedfacefeedface"
	secMaxBodyBytes = 256 << 10
)

var secSecrets = []string{secAdminKey, secAliceKey, secBobKey, secExpiredKey, secDisabledKey, secWrongKey,
	secGovSecret, secUpstreamLLM, secUpstreamMCP, secUpstreamA2A}

// lockedBuffer is the gateway's log sink: handlers write from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// countingProxy stands between the gateway and a mock upstream and counts the requests that make the upstream
// do work (catalogue and card fetches are not work), keeping their bodies as the upstream received them.
type countingProxy struct {
	srv     *httptest.Server
	passive map[string]bool // JSON-RPC methods that are not work
	work    atomic.Int64
	mu      sync.Mutex
	bodies  []string
	seen    []string // headers and URL of every request
}

// gatewayKeysSeen reports a gateway key (a client's or the admin's) that reached the upstream: the gateway
// authenticates with the upstream's own credentials and must not pass its callers' keys on.
func (p *countingProxy) gatewayKeysSeen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, s := range append(append([]string{}, p.seen...), p.bodies...) {
		for _, k := range []string{secAdminKey, secAliceKey, secBobKey} {
			if strings.Contains(s, k) {
				out = append(out, s)
			}
		}
	}
	return out
}

func newCountingProxy(t *testing.T, target string, passive ...string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{passive: map[string]bool{}}
	for _, m := range passive {
		p.passive[m] = true
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var seen strings.Builder
		for k, vs := range r.Header {
			seen.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
		}
		seen.WriteString(r.URL.String())
		p.mu.Lock()
		p.seen = append(p.seen, seen.String())
		p.mu.Unlock()
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var env struct {
				Method string `json:"method"`
			}
			_ = json.Unmarshal(body, &env)
			if !p.passive[env.Method] {
				p.work.Add(1)
				p.mu.Lock()
				p.bodies = append(p.bodies, string(body))
				p.mu.Unlock()
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *countingProxy) lastBody() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bodies) == 0 {
		return ""
	}
	return p.bodies[len(p.bodies)-1]
}

// mcpCatalogueMethods are what the gateway sends an MCP upstream on its own to keep its catalogue.
var mcpCatalogueMethods = []string{"", "initialize", "notifications/initialized", "ping", "tools/list", "resources/list",
	"resources/templates/list", "prompts/list", "server/discover"}

// secGateway is the gateway under attack with its upstreams and what they saw.
type secGateway struct {
	url   string
	addr  string
	app   *App
	logs  *lockedBuffer
	llm   *mock.LLMServer
	tools *mock.MCPServer
	mcp   *countingProxy
	a2a   *countingProxy
}

// upstreamWork is every request that reached an upstream as work, whatever its kind.
func (g *secGateway) upstreamWork() int64 {
	return g.llm.Requests() + g.tools.Calls() + g.mcp.work.Load() + g.a2a.work.Load()
}

func startSecGateway(t *testing.T) *secGateway {
	t.Helper()
	llmUp, toolUp, agentUp := startUpstreams(t, mock.LLMOptions{APIKey: secUpstreamLLM})
	g := &secGateway{llm: llmUp, tools: toolUp, logs: &lockedBuffer{}}
	g.mcp = newCountingProxy(t, toolUp.URL, mcpCatalogueMethods...)
	g.a2a = newCountingProxy(t, agentUp.URL)

	// A verbose provider that quotes the credential it was sent in its error, as some do.
	leaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model string `json:"model"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		status := http.StatusUnauthorized
		if req.Model == "status-400" {
			status = http.StatusBadRequest
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Auth", r.Header.Get("Authorization"))
		w.WriteHeader(status)
		msg, _ := json.Marshal("Incorrect API key provided: " + r.Header.Get("Authorization") + " " + r.Header.Get("Api-Key"))
		_, _ = io.WriteString(w, `{"error":{"message":`+string(msg)+`,"type":"invalid_request_error"}}`)
	}))
	t.Cleanup(leaky.Close)

	cfg := testConfig(t)
	cfg.Server.MaxBodyBytes = secMaxBodyBytes
	deployment := func(model string) []llm.DeploymentConfig {
		return []llm.DeploymentConfig{{Provider: llm.ProviderOpenAI, BaseURL: llmUp.URL + "/v1", Model: model, APIKey: secUpstreamLLM}}
	}
	cfg.Models = []llm.ModelConfig{
		{Name: "model-a", Deployments: deployment("gpt-4o-mini")},
		{Name: "model-b", Deployments: deployment("gpt-4o")},
		{Name: "embed-a", Deployments: deployment("text-embedding-3-small")},
		{Name: "leaky-401", Deployments: []llm.DeploymentConfig{{Provider: llm.ProviderOpenAI, BaseURL: leaky.URL + "/v1",
			Model: "status-401", APIKey: secUpstreamLLM}}},
		{Name: "leaky-400", Deployments: []llm.DeploymentConfig{{Provider: llm.ProviderOpenAI, BaseURL: leaky.URL + "/v1",
			Model: "status-400", APIKey: secUpstreamLLM}}},
	}
	cfg.MCP = sbmcp.Config{Servers: []sbmcp.ServerConfig{{Name: "weather", URL: g.mcp.srv.URL + "/mcp",
		Headers: map[string]string{"Authorization": "Bearer " + secUpstreamMCP}}}}
	cfg.A2A = sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "researcher", CardURL: g.a2a.srv.URL + "/.well-known/agent-card.json",
		// Push configs allowed, so that task ownership is what refuses another key's.
		Headers: map[string]string{"Authorization": "Bearer " + secUpstreamA2A}, PushNotifications: true}}}
	cfg.Governance = governance.Config{Secret: secGovSecret, AdminKey: secAdminKey,
		Teams: []governance.TeamConfig{{Name: "platform"}, {Name: "other"}},
		Keys: []governance.KeyConfig{
			{Name: "alice", Key: secAliceKey, Team: "platform", Allow: governance.ACLConfig{
				Models: []string{"model-a", "embed-a", "leaky-*"}, Tools: []string{"weather__get_forecast"}, Agents: []string{"researcher"}}},
			{Name: "bob", Key: secBobKey, Team: "other", Allow: governance.ACLConfig{Agents: []string{"researcher"}}},
			{Name: "expired", Key: secExpiredKey, Team: "platform", Expires: "2020-01-01"},
			{Name: "disabled", Key: secDisabledKey, Team: "platform", Disabled: true},
		}}
	log := slog.New(slog.NewJSONHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := New(&cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	g.app, g.addr, g.url = a, ln.Addr().String(), "http://"+ln.Addr().String()
	(&started{url: g.url}).waitReady(t)
	return g
}

// rawResponse is an answer read off the wire.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// raw sends a request exactly as written (path, Host and headers untouched by any client library), so path
// and header tricks reach the gateway as an attacker would send them.
func (g *secGateway) raw(t *testing.T, method, target string, header map[string]string, body string) rawResponse {
	t.Helper()
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\n")
	if _, ok := header["Host"]; !ok {
		b.WriteString("Host: " + g.addr + "\r\n")
	}
	for k, v := range header {
		b.WriteString(k + ": " + v + "\r\n")
	}
	if body != "" || method == http.MethodPost {
		if _, ok := header["Content-Type"]; !ok {
			b.WriteString("Content-Type: application/json\r\n")
		}
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	b.WriteString(body)
	return g.rawBytes(t, method, b.String())
}

// rawBytes writes wire bytes verbatim and reads one answer.
func (g *secGateway) rawBytes(t *testing.T, method, wire string) rawResponse {
	t.Helper()
	conn, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, wire); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%.60q: reading the answer: %v", wire, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: string(rb)}
}

// noSecret fails when an answer carries a secret in its body or headers.
func noSecret(t *testing.T, r rawResponse) {
	t.Helper()
	var all strings.Builder
	all.WriteString(r.body)
	for k, vs := range r.header {
		all.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	for _, s := range secSecrets {
		if strings.Contains(all.String(), s) {
			t.Errorf("the answer carries the secret %.12s…: %.300s", s, r.body)
		}
	}
}

// shapes of the error bodies each protocol answers with.
const (
	shapeOpenAI  = "openai"  // {"error":{"message","type",...}}
	shapeJSONRPC = "jsonrpc" // {"jsonrpc":"2.0","error":{"code","message"}}
	shapeAdmin   = "admin"   // {"error":{"message","type"}}
	// Anthropic's, which its SDKs and Claude Code parse: {"type":"error","error":{"type","message"}}
	shapeAnthropic = "anthropic"
)

func checkShape(t *testing.T, shape string, r rawResponse) {
	t.Helper()
	switch shape {
	case shapeOpenAI, shapeAdmin:
		var e struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(r.body), &e) != nil || e.Error.Message == "" || e.Error.Type == "" {
			t.Errorf("want an %s error JSON, got %.300s", shape, r.body)
		}
	case shapeAnthropic:
		var e struct {
			Type  string `json:"type"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(r.body), &e) != nil || e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" {
			t.Errorf("want an Anthropic error JSON, got %.300s", r.body)
		}
	case shapeJSONRPC:
		var e struct {
			JSONRPC string `json:"jsonrpc"`
			Error   *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(rpcPayload(r)), &e) != nil || e.JSONRPC != "2.0" || e.Error == nil || e.Error.Message == "" {
			t.Errorf("want a JSON-RPC error, got %.300s", r.body)
		}
	}
}

// rpcPayload is the JSON-RPC message of an answer, which a streaming endpoint sends as the first SSE event.
func rpcPayload(r rawResponse) string {
	if !strings.HasPrefix(r.header.Get("Content-Type"), "text/event-stream") {
		return r.body
	}
	for _, line := range strings.Split(r.body, "\n") {
		if data, ok := strings.CutPrefix(line, "data:"); ok {
			return strings.TrimSpace(data)
		}
	}
	return r.body
}
