package mcp

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
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
					// mcp-go drops a notification queued in the instant
					// before the result: the message goes out 200 ms before.
					req.Params.Arguments = map[string]any{"ms": 200}
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
						if n.Params.AdditionalFields["level"] != "info" || n.Params.AdditionalFields["data"] != "waiting 200ms" {
							t.Fatalf("%s: log message %v", server, n.Params.AdditionalFields)
						}
					}
				}
			})
		}
	}
}

// Log messages never cross keys. Two keys call the same tool at the same
// time, each with its own duration, which the message quotes. A 2026-07-28
// Streamable HTTP upstream ("weather") sends each message on its call's
// stream: each client gets exactly its own. A stdio upstream's ("files")
// messages are tied to no call: while both keys have a call in flight they
// go to neither, so each client gets at most its own.
func TestLogMessagesStayWithTheirKey(t *testing.T) {
	t.Parallel()
	for _, server := range []string{"weather", "files"} {
		for _, p := range protocols {
			t.Run(server+"/"+p.name, func(t *testing.T) {
				t.Parallel()
				// keyLimited may call once a minute: a gateway per subtest.
				e := start(t, nil)
				ctx := ctxT(t)
				var wg sync.WaitGroup
				keys := []string{keyAll, keyLimited}
				got := make([][]string, len(keys))
				var mu sync.Mutex
				for i, key := range keys {
					cli := e.connect(t, "/mcp", key, p.version)
					//lint:ignore SA1019 deprecated in 2026-07-28, but clients still ask for log messages this way
					if err := cli.SetLevel(ctx, mcp.SetLevelRequest{Params: mcp.SetLevelParams{Level: mcp.LoggingLevelInfo}}); err != nil {
						t.Fatal(err)
					}
					cli.OnNotification(func(n mcp.JSONRPCNotification) {
						if n.Method == string(mcp.MethodNotificationMessage) {
							mu.Lock()
							got[i] = append(got[i], fmt.Sprint(n.Params.AdditionalFields["data"]))
							mu.Unlock()
						}
					})
					wg.Go(func() {
						// Long enough for both calls to be in flight when the
						// upstream logs at the start of each.
						ms := 600 + 50*i
						if res, err := callTool(ctx, cli, server+"__slow", map[string]any{"ms": ms}); err != nil || res.IsError {
							t.Errorf("%s slow = %+v, %v", key, res, err)
						}
					})
				}
				wg.Wait()
				for i := range keys {
					own := fmt.Sprintf("waiting %dms", 600+50*i)
					for _, m := range got[i] {
						if m != own {
							t.Errorf("client %d got %q, another key's message", i, m)
						}
					}
					if server == "weather" && len(got[i]) != 1 {
						t.Errorf("client %d got %d log messages, want its own one", i, len(got[i]))
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
	s.set("other", "s1", mcp.LoggingLevelWarning)
	for i := range maxSessionLevelsPerKey + 10 {
		s.set("k", strconv.Itoa(i), mcp.LoggingLevelInfo)
	}
	if n := len(s.byKey["k"]); n != maxSessionLevelsPerKey {
		t.Fatalf("%d levels kept for one key, want the cap %d", n, maxSessionLevelsPerKey)
	}
	if got := s.get("other", "s1"); got != mcp.LoggingLevelWarning {
		t.Fatalf("another key's session after one key filled its share = %q, want warning", got)
	}
}

func TestSessionLevelsIdleOut(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	newLevels := func() (*sessionLevels, *time.Time) {
		now := start
		return &sessionLevels{now: func() time.Time { return now }}, &now
	}
	t.Run("use keeps a level", func(t *testing.T) {
		t.Parallel()
		s, now := newLevels()
		s.set("k", "s", mcp.LoggingLevelInfo)
		for range 3 {
			*now = now.Add(sessionLevelIdle - time.Minute)
			if got := s.get("k", "s"); got != mcp.LoggingLevelInfo {
				t.Fatalf("level a minute before it idles out = %q, want info", got)
			}
		}
		*now = now.Add(sessionLevelIdle)
		if got := s.get("k", "s"); got != mcp.LoggingLevelError {
			t.Fatalf("level after a whole idle period = %q, want error", got)
		}
	})
	t.Run("a set sweeps idle sessions of every key", func(t *testing.T) {
		t.Parallel()
		s, now := newLevels()
		s.set("k1", "old", mcp.LoggingLevelDebug)
		s.set("k2", "old", mcp.LoggingLevelDebug)
		*now = now.Add(sessionLevelIdle)
		s.set("k1", "new", mcp.LoggingLevelDebug)
		if _, ok := s.byKey["k2"]; ok || len(s.byKey["k1"]) != 1 {
			t.Fatalf("after the sweep: %d keys, %d sessions of k1; want 1 and 1", len(s.byKey), len(s.byKey["k1"]))
		}
	})
	t.Run("the cap evicts the least recently used", func(t *testing.T) {
		t.Parallel()
		s, now := newLevels()
		for i := range maxSessionLevelsPerKey {
			*now = now.Add(time.Millisecond)
			s.set("k", strconv.Itoa(i), mcp.LoggingLevelInfo)
		}
		*now = now.Add(time.Millisecond)
		s.get("k", "0") // the oldest is in use again; "1" is now the least recent
		s.set("k", "next", mcp.LoggingLevelInfo)
		if got := s.get("k", "0"); got != mcp.LoggingLevelInfo {
			t.Fatalf("session used just before the cap = %q, want info", got)
		}
		if got := s.get("k", "1"); got != mcp.LoggingLevelError {
			t.Fatalf("least recently used session = %q, want it evicted (error)", got)
		}
		if n := len(s.byKey["k"]); n != maxSessionLevelsPerKey {
			t.Fatalf("%d levels kept, want %d", n, maxSessionLevelsPerKey)
		}
	})
}
