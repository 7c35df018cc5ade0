package mcp

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

// An upstream's log message reaches a caller only at or above the level the
// caller asked for: per request on 2026-07-28 (none when it did not ask),
// per session with logging/setLevel on 2025-11-25 (error until set). It holds
// on the direct path and, with a progress token, through mcp-go. The mock
// upstreams log as mcp-go servers do: a 2026-07-28 one ("weather", "files")
// only when the gateway's request names a level, a 2025-11-25 one
// ("legacy") at the level the gateway's session with it set.
func TestLogMessagesFollowTheCallersLevel(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers, ServerConfig{Name: "legacy", URL: legacyMock(t), Timeout: 5 * time.Second})
	})
	e.waitTools(t, func(names []string) bool { return slices.Contains(names, "legacy__slow") })
	cases := []struct {
		name     string
		level    mcp.LoggingLevel // set by the client; "" for none
		progress bool
		want     bool // the slow tool's info message arrives
	}{
		{"not asked", "", false, false},
		{"debug", mcp.LoggingLevelDebug, false, true},
		{"info", mcp.LoggingLevelInfo, false, true},
		{"warning", mcp.LoggingLevelWarning, false, false},
		{"not asked, with progress", "", true, false},
		{"info, with progress", mcp.LoggingLevelInfo, true, true},
		{"error, with progress", mcp.LoggingLevelError, true, false},
	}
	for _, tc := range cases {
		for _, p := range protocols {
			t.Run(tc.name+"/"+p.name, func(t *testing.T) {
				t.Parallel()
				ctx := ctxT(t)
				cli := e.connect(t, "/mcp", keyAll, p.version)
				if tc.level != "" {
					//lint:ignore SA1019 deprecated in 2026-07-28, but clients still ask for log messages this way
					if err := cli.SetLevel(ctx, mcp.SetLevelRequest{Params: mcp.SetLevelParams{Level: tc.level}}); err != nil {
						t.Fatal(err)
					}
				}
				logs := make(chan mcp.JSONRPCNotification, 16)
				cli.OnNotification(func(n mcp.JSONRPCNotification) {
					if n.Method == string(mcp.MethodNotificationMessage) {
						logs <- n
					}
				})
				for i, server := range []string{"weather", "files", "legacy"} {
					req := mcp.CallToolRequest{}
					req.Params.Name = server + "__slow"
					req.Params.Arguments = map[string]any{"ms": 40}
					if tc.progress {
						req.Params.Meta = &mcp.Meta{ProgressToken: "tok-" + strconv.Itoa(i)}
					}
					if res, err := cli.CallTool(ctx, req); err != nil || res.IsError {
						t.Fatalf("%s slow = %+v, %v", server, res, err)
					}
					// A relayed message travels ahead of the answer on the
					// same stream; the pause covers a late one.
					var got []mcp.JSONRPCNotification
					timer := time.NewTimer(50 * time.Millisecond)
				collect:
					for {
						select {
						case n := <-logs:
							got = append(got, n)
						case <-timer.C:
							break collect
						}
					}
					if tc.want != (len(got) > 0) {
						t.Fatalf("%s: %d log messages, want them: %v", server, len(got), tc.want)
					}
					for _, n := range got {
						if n.Params.AdditionalFields["level"] != "info" || n.Params.AdditionalFields["data"] != "waiting 40ms" {
							t.Fatalf("%s: log message %v", server, n.Params.AdditionalFields)
						}
					}
				}
			})
		}
	}
}

// legacyMock serves the mock MCP server over Streamable HTTP with
// 2025-11-25 sessions only; it returns its URL.
func legacyMock(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := server.NewStreamableHTTPServer(mock.NewMCPServer(mock.MCPOptions{Name: "legacy"}), server.WithStateful(true),
		server.WithDisableLocalhostProtection(true), server.WithStreamableHTTPProtocolVersions(mcp.ProtocolVersion20251125))
	srv := &http.Server{Handler: st, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = st.Shutdown(ctx)
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String() + "/mcp"
}

func TestSessionLevels(t *testing.T) {
	t.Parallel()
	var s sessionLevels
	if got := s.get("k1", "s1"); got != mcp.LoggingLevelError {
		t.Fatalf("unset level = %q, want error", got)
	}
	s.set("k1", "s1", mcp.LoggingLevelDebug)
	if got := s.get("k1", "s1"); got != mcp.LoggingLevelDebug {
		t.Fatalf("level = %q, want debug", got)
	}
	if got := s.get("k2", "s1"); got != mcp.LoggingLevelError {
		t.Fatalf("another key's level for the same session = %q, want error", got)
	}
	s.forget("k1", "s1")
	if got := s.get("k1", "s1"); got != mcp.LoggingLevelError {
		t.Fatalf("level after forget = %q, want error", got)
	}
	for i := range maxSessionLevels + 10 {
		s.set("k", strconv.Itoa(i), mcp.LoggingLevelInfo)
	}
	if n := len(s.levels); n != maxSessionLevels {
		t.Fatalf("%d levels kept, want the cap %d", n, maxSessionLevels)
	}
}
