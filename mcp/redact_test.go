package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
)

// upstreamKey is the Authorization header configured for the echoing
// upstreams; upstreamToken is its credential alone.
const (
	upstreamKey   = "Bearer sk-up-0123456789abcdef"
	upstreamToken = "sk-up-0123456789abcdef"
)

// echoingUpstream serves, over transport (streamable_http or sse), tools
// that quote the Authorization header they received back in every way an
// answer can carry text, and tools that answer more than a gateway should
// read. It returns the URL to configure.
func echoingUpstream(t *testing.T, transport string) string {
	t.Helper()
	return echoingUpstreamVia(t, transport, nil)
}

// escapingUpstream is an echoing upstream that writes every quote of the
// token in JSON \u escapes, which a client's decoder reads back as the token.
func escapingUpstream(t *testing.T, transport string) string {
	t.Helper()
	return echoingUpstreamVia(t, transport, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(escapingWriter{w}, r) })
	})
}

// escapingWriter escapes the token in each Write; mcp-go writes every
// message or SSE event whole.
type escapingWriter struct{ http.ResponseWriter }

func (w escapingWriter) Write(b []byte) (int, error) {
	var esc strings.Builder
	for _, r := range upstreamToken {
		fmt.Fprintf(&esc, `\u%04x`, r)
	}
	if _, err := w.ResponseWriter.Write(bytes.ReplaceAll(b, []byte(upstreamToken), []byte(esc.String()))); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (w escapingWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

// echoingUpstreamVia is echoingUpstream with its handler wrapped by wrap, when not nil.
func echoingUpstreamVia(t *testing.T, transport string, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	core := server.NewMCPServer("echoing", "1", server.WithToolCapabilities(false))
	auth := func(req mcp.CallToolRequest) string { return req.Header.Get("Authorization") }
	notify := func(ctx context.Context, method mcp.MCPMethod, params map[string]any) {
		if srv := server.ServerFromContext(ctx); srv != nil {
			_ = srv.SendNotificationToClient(ctx, string(method), params)
		}
		// mcp-go drops a notification queued in the instant before the
		// result is written.
		time.Sleep(100 * time.Millisecond)
	}
	tools := map[string]server.ToolHandlerFunc{
		"add": func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(fmt.Sprint(req.GetFloat("a", 0) + req.GetFloat("b", 0))), nil
		},
		"reject": func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return nil, fmt.Errorf("invalid token %s", auth(req))
		},
		"refuse": func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultError("upstream refused " + auth(req)), nil
		},
		"echo": func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			res := mcp.NewToolResultStructured(map[string]any{"auth": auth(req)}, "you sent "+auth(req))
			res.Meta = mcp.NewMetaFromMap(map[string]any{"auth": auth(req)})
			return res, nil
		},
		"report": func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if req.Params.Meta != nil && req.Params.Meta.ProgressToken != nil {
				notify(ctx, mcp.MethodNotificationProgress, map[string]any{
					"progressToken": req.Params.Meta.ProgressToken, "progress": 1, "message": "authorised as " + auth(req)})
			}
			return mcp.NewToolResultText("reported"), nil
		},
		"big": func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(strings.Repeat("x", req.GetInt("bytes", 0))), nil
		},
		"big_event": func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			notify(ctx, mcp.MethodNotificationMessage, map[string]any{
				"level": "info", "data": strings.Repeat("x", req.GetInt("bytes", 0))})
			return mcp.NewToolResultText("small"), nil
		},
	}
	for name, h := range tools {
		core.AddTool(mcp.NewTool(name), h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	var h http.Handler
	var url string
	var shutdown func(context.Context) error
	if transport == TransportSSE {
		sse := server.NewSSEServer(core, server.WithBaseURL(base), server.WithSSEDisableLocalhostProtection(true))
		h, url, shutdown = sse, base+"/sse", sse.Shutdown
	} else {
		st := server.NewStreamableHTTPServer(core, server.WithStateful(true), server.WithDisableLocalhostProtection(true))
		h, url, shutdown = st, base+"/mcp", st.Shutdown
	}
	if wrap != nil {
		h = wrap(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = shutdown(ctx)
		_ = srv.Close()
	})
	return url
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// spanOf waits for the span of a tools/call to server's tool.
func (e *env) spanOf(t *testing.T, server, tool string) trace.Span {
	t.Helper()
	var sp trace.Span
	eventually(t, 10*time.Second, func() bool {
		var ok bool
		sp, ok = e.spans.find(func(s trace.Span) bool { return s.ToolServer == server && s.Tool == tool })
		return ok
	}, "the span of "+server+"__"+tool)
	return sp
}

// An upstream quoting its configured Authorization header back, in a
// JSON-RPC error, a tool result (text, structured content, _meta) or a
// progress notification, has it replaced by [redacted] before it reaches the
// client, the span or the log, over the relay (Streamable HTTP) and mcp-go's
// client (legacy SSE) alike.
func TestUpstreamSecretsAreRedacted(t *testing.T) {
	t.Parallel()
	servers := map[string]string{"secure": TransportStreamableHTTP, "legacy": TransportSSE}
	logs := &syncBuffer{}
	e := startLogged(t, func(c *Config) {
		for name, tr := range servers {
			c.Servers = append(c.Servers, ServerConfig{Name: name, URL: echoingUpstream(t, tr), Transport: tr,
				Headers: map[string]string{"Authorization": upstreamKey}, Timeout: 10 * time.Second})
		}
	}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	e.waitTools(t, func(names []string) bool {
		return slices.Contains(names, "secure__reject") && slices.Contains(names, "legacy__reject")
	})
	cases := []struct {
		tool    string
		isError bool   // an isError result
		rpcErr  bool   // a JSON-RPC error
		span    string // the span's error, "" for none
	}{
		{tool: "reject", rpcErr: true, span: "invalid token [redacted]"},
		{tool: "refuse", isError: true, span: "tool returned an error result"},
		{tool: "echo"},
		{tool: "report"},
	}
	for name := range servers {
		for _, tc := range cases {
			t.Run(name+"/"+tc.tool, func(t *testing.T) {
				t.Parallel()
				ctx := ctxT(t)
				cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
				var mu sync.Mutex
				var notes []string
				cli.OnNotification(func(n mcp.JSONRPCNotification) {
					b, _ := json.Marshal(n)
					mu.Lock()
					notes = append(notes, string(b))
					mu.Unlock()
				})
				req := mcp.CallToolRequest{}
				req.Params.Name = name + nameSeparator + tc.tool
				req.Params.Meta = &mcp.Meta{ProgressToken: "tok"}
				res, err := cli.CallTool(ctx, req)
				if tc.rpcErr {
					if err == nil || !strings.Contains(err.Error(), "[redacted]") || strings.Contains(err.Error(), upstreamToken) {
						t.Fatalf("JSON-RPC error = %v, want the token redacted", err)
					}
				} else {
					if err != nil || res.IsError != tc.isError {
						t.Fatalf("call = %+v, %v", res, err)
					}
					b, _ := json.Marshal(res)
					quoted := tc.tool != "report" // report quotes it in its notification only
					if strings.Contains(string(b), upstreamToken) || (quoted && !strings.Contains(string(b), "[redacted]")) {
						t.Fatalf("result %s: want the token redacted", b)
					}
				}
				if tc.tool == "report" {
					eventually(t, 5*time.Second, func() bool {
						mu.Lock()
						defer mu.Unlock()
						return slices.ContainsFunc(notes, func(n string) bool {
							return strings.Contains(n, "authorised as [redacted]")
						})
					}, "the redacted progress notification")
				}
				mu.Lock()
				for _, n := range notes {
					if strings.Contains(n, upstreamToken) {
						t.Errorf("notification %s carries the token", n)
					}
				}
				mu.Unlock()
				sp := e.spanOf(t, name, tc.tool)
				if !strings.Contains(sp.Error, tc.span) || strings.Contains(sp.Error, upstreamToken) {
					t.Fatalf("span error %q, want %q", sp.Error, tc.span)
				}
			})
		}
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), upstreamToken) {
			t.Errorf("the log carries the token:\n%s", logs.String())
		}
	})
}

// An upstream quoting its Authorization header in JSON escapes, which a
// scan of its bytes does not see, still has it redacted in the result the
// client decodes, over the relay (Streamable HTTP) and mcp-go's client
// (legacy SSE) alike.
func TestEscapedUpstreamSecretsAreRedacted(t *testing.T) {
	t.Parallel()
	servers := map[string]string{"secure": TransportStreamableHTTP, "legacy": TransportSSE}
	e := start(t, func(c *Config) {
		for name, tr := range servers {
			c.Servers = append(c.Servers, ServerConfig{Name: name, URL: escapingUpstream(t, tr), Transport: tr,
				Headers: map[string]string{"Authorization": upstreamKey}, Timeout: 10 * time.Second})
		}
	})
	e.waitTools(t, func(names []string) bool {
		return slices.Contains(names, "secure__echo") && slices.Contains(names, "legacy__echo")
	})
	for name := range servers {
		for _, tool := range []string{"echo", "refuse", "reject"} {
			t.Run(name+"/"+tool, func(t *testing.T) {
				t.Parallel()
				cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
				res, err := callTool(ctxT(t), cli, name+nameSeparator+tool, nil)
				got := fmt.Sprint(err)
				if err == nil {
					b, _ := json.Marshal(res)
					got = string(b)
				}
				if strings.Contains(got, upstreamToken) || !strings.Contains(got, "[redacted]") {
					t.Fatalf("the client read %s: want the token redacted", got)
				}
			})
		}
	}
}

// A reload that changes a server's headers redacts the new values.
func TestRedactionFollowsReload(t *testing.T) {
	t.Parallel()
	url := echoingUpstream(t, TransportStreamableHTTP)
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers, ServerConfig{Name: "secure", URL: url,
			Headers: map[string]string{"Authorization": upstreamKey}, Timeout: 10 * time.Second})
	})
	e.waitTools(t, func(names []string) bool { return slices.Contains(names, "secure__reject") })
	const rotated = "Bearer sk-up-rotated-fedcba9876543210"
	cfg := e.cfg
	cfg.Servers = slices.Clone(cfg.Servers)
	cfg.Servers[len(cfg.Servers)-1].Headers = map[string]string{"Authorization": rotated}
	if err := e.gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
	var err error
	eventually(t, 10*time.Second, func() bool {
		_, err = callTool(ctx, cli, "secure__reject", nil)
		return err != nil && strings.Contains(err.Error(), "invalid token")
	}, "the re-created upstream to answer")
	if strings.Contains(err.Error(), "rotated") || !strings.Contains(err.Error(), "invalid token [redacted]") {
		t.Fatalf("error after reload = %v, want the new key redacted", err)
	}
}

// Notification params are redacted in their decoded form, copying only what
// changes.
func TestRedactValue(t *testing.T) {
	t.Parallel()
	r := governance.NewRedactor(upstreamKey)
	params := map[string]any{"progress": 1.0, "message": "as " + upstreamToken,
		"nested": []any{map[string]any{"k": upstreamKey}}, "kept": map[string]any{"a": "b"}}
	v, changed := redactValue(r, params)
	b, _ := json.Marshal(v)
	if !changed || strings.Contains(string(b), upstreamToken) {
		t.Fatalf("value = %s", b)
	}
	if params["message"] != "as "+upstreamToken {
		t.Fatal("redactValue changed its input")
	}
	if _, changed := redactValue(nil, params); changed {
		t.Fatal("a nil redactor changed a value")
	}
}

func TestRedactingLogger(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	r := governance.NewRedactor(upstreamKey)
	log := redactLogger(slog.New(slog.NewJSONHandler(&buf, nil)), r).With("pre", "with "+upstreamToken)
	log.WithGroup("g").Warn("upstream said "+upstreamToken,
		"err", fmt.Errorf("status 401: %s", upstreamKey),
		"text", upstreamToken,
		"n", 3,
		slog.Group("inner", "v", upstreamToken))
	out := buf.String()
	if strings.Contains(out, upstreamToken) || strings.Count(out, "[redacted]") != 5 || !strings.Contains(out, `"n":3`) {
		t.Fatalf("log line %s", out)
	}
}
