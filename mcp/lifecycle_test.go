package mcp

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
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
				//lint:ignore SA1019 session clients of 2025-11-25 receive list_changed on this GET stream, which is what is tested
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
