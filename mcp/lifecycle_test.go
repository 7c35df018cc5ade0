package mcp

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

func TestReloadAddsAndRemovesServers(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	withoutFiles := Config{Servers: e.cfg.Servers[:1]}
	if err := e.gw.Reload(withoutFiles); err != nil {
		t.Fatal(err)
	}
	e.waitTools(t, func(names []string) bool { return !slices.Contains(names, "files__add") })
	if r := post(t, e.url+"/mcp/files", keyAll, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); r.status != 404 {
		t.Fatalf("removed server answers %d", r.status)
	}
	ctx := ctxT(t)
	cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
	if res, err := callTool(ctx, cli, "weather__add", map[string]any{"a": 1, "b": 1}); err != nil || res.IsError {
		t.Fatalf("kept server after reload: %+v, %v", res, err)
	}
	if err := e.gw.Reload(e.cfg); err != nil {
		t.Fatal(err)
	}
	e.waitTools(t, func(names []string) bool { return slices.Contains(names, "files__add") })
	if res, err := callTool(ctx, cli, "files__add", map[string]any{"a": 1, "b": 1}); err != nil || res.IsError {
		t.Fatalf("re-added server: %+v, %v", res, err)
	}
	bad := Config{Servers: []ServerConfig{{Name: "Bad Name", URL: "http://x"}}}
	if err := e.gw.Reload(bad); err == nil {
		t.Fatal("invalid config accepted")
	}
}

func TestUpstreamDiesAndComesBack(t *testing.T) {
	t.Parallel()
	flaky, err := mock.StartMCP("127.0.0.1:0", mock.MCPOptions{Name: "flaky"})
	if err != nil {
		t.Fatal(err)
	}
	addr := flaky.Addr
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers, ServerConfig{Name: "flaky", URL: flaky.URL + "/mcp", Timeout: 2 * time.Second, HealthInterval: 100 * time.Millisecond})
	})
	ctx := ctxT(t)
	cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
	if res, err := callTool(ctx, cli, "flaky__add", map[string]any{"a": 1, "b": 1}); err != nil || res.IsError {
		t.Fatalf("before: %+v, %v", res, err)
	}
	_ = flaky.Close()
	res, err := callTool(ctx, cli, "flaky__add", map[string]any{"a": 1, "b": 1})
	if err != nil || !res.IsError || !strings.Contains(resultText(res), "unavailable") {
		t.Fatalf("while down: %+v, %v", res, err)
	}
	back, err := mock.StartMCP(addr, mock.MCPOptions{Name: "flaky"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = back.Close() })
	eventually(t, 10*time.Second, func() bool {
		res, err := callTool(ctx, cli, "flaky__add", map[string]any{"a": 1, "b": 1})
		return err == nil && !res.IsError
	}, "upstream to come back")
}

func TestStdioUpstreamRestartsAfterCrash(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *Config) { c.Servers[1].HealthInterval = 100 * time.Millisecond })
	ctx := ctxT(t)
	u := e.gw.upstreamsFor("files")[0]
	first, err := u.client()
	if err != nil {
		t.Fatal(err)
	}
	// Kill the subprocess the way a crash would.
	proc := first.GetTransport().(stdioTransport).Stdio
	if err := proc.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
	eventually(t, 10*time.Second, func() bool {
		next, err := u.client()
		if err != nil || next == first {
			return false
		}
		res, err := callTool(ctx, cli, "files__add", map[string]any{"a": 2, "b": 2})
		return err == nil && !res.IsError
	}, "stdio server restart")
}

// On 2026-07-28 the client subscribes with subscriptions/listen; on
// 2025-11-25 it receives list_changed on its session's GET stream.
func TestListChangedPropagates(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := ctxT(t)
			modern := mcp.IsModernProtocol(p.version)
			var opts []transport.StreamableHTTPCOption
			if !modern {
				//lint:ignore SA1019 the 2025-11-25 GET stream is what this case covers
				opts = append(opts, transport.WithContinuousListening())
			}
			cli := e.connect(t, "/mcp", keyAll, p.version, opts...)
			changed := make(chan struct{}, 8)
			cli.OnNotification(func(n mcp.JSONRPCNotification) {
				if n.Method == mcp.MethodNotificationToolsListChanged {
					changed <- struct{}{}
				}
			})
			if modern {
				stop, err := cli.ListenAsync(ctx, mcp.SubscriptionFilter{ToolsListChanged: true}, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer stop()
			}
			// The client opens its listening stream in the background, so
			// toggle the upstream's tool list until a change reaches it.
			eventually(t, 10*time.Second, func() bool {
				e.weather.RemoveTool("fail")
				e.waitTools(t, func(names []string) bool { return !slices.Contains(names, "weather__fail") })
				select {
				case <-changed:
					return true
				case <-time.After(100 * time.Millisecond):
					_ = e.weather.AddTool("fail")
					e.waitTools(t, func(names []string) bool { return slices.Contains(names, "weather__fail") })
					return false
				}
			}, "tools/list_changed at the client")
			tools, err := cli.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil || slices.Contains(toolNames(tools.Tools), "weather__fail") {
				t.Fatalf("after removal: %v, %v", toolNames(tools.Tools), err)
			}
			if err := e.weather.AddTool("fail"); err != nil {
				t.Fatal(err)
			}
			e.waitTools(t, func(names []string) bool { return slices.Contains(names, "weather__fail") })
		})
	}
}

func TestCloseStopsUpstreams(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	if err := e.gw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := e.gw.Reload(e.cfg); err == nil {
		t.Fatal("Reload after Close succeeded")
	}
}

// sseUpstream is the mock's MCP server served over the legacy HTTP+SSE
// transport (protocol 2024-11-05).
type sseUpstream struct {
	url  string // the SSE endpoint
	addr string
	core *server.MCPServer
	stop func()
}

func startSSE(t *testing.T, addr string) *sseUpstream {
	t.Helper()
	core := mock.NewMCPServer(mock.MCPOptions{Name: "legacy"})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	sse := server.NewSSEServer(core, server.WithBaseURL(base), server.WithSSEDisableLocalhostProtection(true))
	srv := &http.Server{Handler: sse, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = sse.Shutdown(ctx)
		_ = srv.Close()
	}
	t.Cleanup(stop)
	return &sseUpstream{url: base + "/sse", addr: ln.Addr().String(), core: core, stop: stop}
}

func TestSSEUpstream(t *testing.T) {
	t.Parallel()
	up := startSSE(t, "127.0.0.1:0")
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers, ServerConfig{Name: "legacy", URL: up.url, Transport: TransportSSE, Timeout: 5 * time.Second})
	})
	e.waitTools(t, func(names []string) bool { return slices.Contains(names, "legacy__add") })
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := ctxT(t)
			cli := e.connect(t, "/mcp", keyAll, p.version)
			res, err := callTool(ctx, cli, "legacy__add", map[string]any{"a": 20, "b": 22})
			if err != nil || res.IsError || !strings.HasPrefix(resultText(res), "42") {
				t.Fatalf("legacy__add = %+v, %v", res, err)
			}
			read, err := cli.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "weather://forecast/Oslo"}})
			if err != nil || len(read.Contents) != 1 {
				t.Fatalf("read through sse = %+v, %v", read, err)
			}
			one := e.connect(t, "/mcp/legacy", keyAll, p.version)
			prompt, err := one.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{
				Name: "weather_report", Arguments: map[string]string{"city": "Oslo"}}})
			if err != nil || !strings.Contains(prompt.Description, "Oslo") {
				t.Fatalf("prompt through sse = %+v, %v", prompt, err)
			}
		})
	}
	// The event stream carries the upstream's list_changed too.
	up.core.DeleteTools("fail")
	e.waitTools(t, func(names []string) bool { return !slices.Contains(names, "legacy__fail") })
}

// An SSE upstream whose event stream breaks is reconnected when it is back.
func TestSSEUpstreamDiesAndComesBack(t *testing.T) {
	t.Parallel()
	up := startSSE(t, "127.0.0.1:0")
	e := start(t, func(c *Config) {
		// No periodic re-list: the lost event stream alone must trigger the
		// reconnect.
		c.Servers = append(c.Servers, ServerConfig{Name: "legacy", URL: up.url, Transport: TransportSSE,
			Timeout: 2 * time.Second, HealthInterval: time.Hour})
	})
	e.waitTools(t, func(names []string) bool { return slices.Contains(names, "legacy__add") })
	ctx := ctxT(t)
	cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
	up.stop()
	eventually(t, 10*time.Second, func() bool {
		res, err := callTool(ctx, cli, "legacy__add", map[string]any{"a": 1, "b": 1})
		return err == nil && res.IsError && strings.Contains(resultText(res), "unavailable")
	}, "calls to fail while the upstream is down")
	startSSE(t, up.addr)
	eventually(t, 10*time.Second, func() bool {
		res, err := callTool(ctx, cli, "legacy__add", map[string]any{"a": 1, "b": 1})
		return err == nil && !res.IsError
	}, "the SSE upstream to come back")
}

// A reload that re-creates a server (new URL or headers) can have the new
// connection list its catalogue before the reload resyncs the views. The
// views must then still bind the tools to the new upstream, although their
// definitions did not change: here the swap is made in that order on purpose.
func TestRecreatedUpstreamWithTheSameToolsServesCalls(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	g := e.gw
	g.mu.RLock()
	old := g.ups["weather"]
	g.mu.RUnlock()
	cfg := *old.cfg.Load()
	cfg.Headers = map[string]string{"X-Rotated": "yes"}
	fresh := newUpstream(cfg, g.log, g.http, &g.maxResponse, func() { g.resync("weather") })
	eventually(t, 10*time.Second, func() bool { return len(fresh.cat.Load().tools) > 0 }, "the new connection's catalogue")
	g.mu.Lock()
	g.ups["weather"] = fresh
	g.mu.Unlock()
	old.close()
	g.resyncAll()

	ctx := ctxT(t)
	for _, path := range []string{"/mcp", "/mcp/weather"} {
		cli := e.connect(t, path, keyAll, mcp.ProtocolVersion20260728)
		name := "weather__add"
		if path != "/mcp" {
			name = "add"
		}
		if res, err := callTool(ctx, cli, name, map[string]any{"a": 2, "b": 3}); err != nil || res.IsError {
			t.Fatalf("%s: call after the upstream was re-created: %+v, %v", path, res, err)
		}
	}
}

// A 2025-11-25 server that forgot the gateway's session (it restarted)
// answers 404: the call never ran, and it is sent again on the new session
// the gateway opens, instead of failing as unavailable.
func TestCallRetriedOnANewSessionWhenTheServerForgetsIt(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var current atomic.Pointer[server.StreamableHTTPServer]
	restart := func() {
		current.Store(server.NewStreamableHTTPServer(mock.NewMCPServer(mock.MCPOptions{Name: "legacy"}), server.WithStateful(true),
			server.WithDisableLocalhostProtection(true), server.WithStreamableHTTPProtocolVersions(mcp.ProtocolVersion20251125)))
	}
	restart()
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { current.Load().ServeHTTP(w, r) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers, ServerConfig{Name: "legacy", URL: "http://" + ln.Addr().String() + "/mcp", Timeout: 5 * time.Second})
	})
	e.waitTools(t, func(names []string) bool { return slices.Contains(names, "legacy__add") })
	ctx := ctxT(t)
	for _, p := range protocols {
		cli := e.connect(t, "/mcp", keyAll, p.version)
		for round := range 3 {
			if round > 0 {
				restart()
			}
			res, err := callTool(ctx, cli, "legacy__add", map[string]any{"a": 2, "b": 3})
			if err != nil || res.IsError || !strings.HasPrefix(resultText(res), "5") {
				t.Fatalf("%s, round %d: %+v, %v", p.name, round, res, err)
			}
		}
	}
}
