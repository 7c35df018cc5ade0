package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// tracedUpstream serves a resource, a template any vault:// URI matches, two
// prompts and the add tool the harness waits for, and keeps the trace
// context each resource or prompt request arrived with.
type tracedUpstream struct {
	url  string
	mu   sync.Mutex
	seen []received
}

// received is the traceparent of one upstream request, from its _meta and
// from its HTTP header, and whether the client's other _meta came along.
type received struct {
	meta, header string
	clientMeta   bool
}

func startTracedUpstream(t *testing.T) *tracedUpstream {
	t.Helper()
	up := &tracedUpstream{}
	note := func(meta *mcp.Meta, h http.Header) {
		r := received{header: h.Get(trace.HeaderTraceparent)}
		if meta != nil {
			r.meta, _ = meta.AdditionalFields[trace.HeaderTraceparent].(string)
			_, r.clientMeta = meta.AdditionalFields["secret"]
		}
		up.mu.Lock()
		up.seen = append(up.seen, r)
		up.mu.Unlock()
	}
	core := server.NewMCPServer("vault", "1", server.WithToolCapabilities(false),
		server.WithResourceCapabilities(false, false), server.WithPromptCapabilities(false))
	core.AddTool(mcp.NewTool("add"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("0"), nil
	})
	core.AddResource(mcp.NewResource("vault://notes", "notes"), func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		note(req.Params.Meta, req.Header)
		return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, Text: "notes"}}, nil
	})
	core.AddResourceTemplate(mcp.NewResourceTemplate("vault://{+path}", "item"), func(_ context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
		note(req.Params.Meta, req.Header)
		if strings.Contains(req.Params.URI, "missing") {
			return nil, fmt.Errorf("no item at %s", req.Params.URI)
		}
		return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, Text: "item"}}, nil
	})
	core.AddPrompt(mcp.NewPrompt("greet", mcp.WithArgument("name")), func(_ context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		note(req.Params.Meta, req.Header)
		return mcp.NewGetPromptResult("greeting", []mcp.PromptMessage{
			mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent("Hello "+req.Params.Arguments["name"])),
		}), nil
	})
	core.AddPrompt(mcp.NewPrompt("slow"), func(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		note(req.Params.Meta, req.Header)
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
		return nil, errors.New("too slow")
	})
	srv := httptest.NewServer(server.NewStreamableHTTPServer(core, server.WithDisableLocalhostProtection(true)))
	t.Cleanup(srv.Close)
	up.url = srv.URL + "/mcp"
	return up
}

// sawTrace is what the upstream received in a request of trace id, if any.
func (up *tracedUpstream) sawTrace(id trace.TraceID) (received, bool) {
	up.mu.Lock()
	defer up.mu.Unlock()
	for _, r := range up.seen {
		if sc, ok := trace.ParseTraceparent(r.meta); ok && sc.TraceID == id {
			return r, true
		}
	}
	return received{}, false
}

// newParent is a caller's span context in a trace of its own.
func newParent() trace.SpanContext {
	sc, _ := trace.ParseTraceparent(fmt.Sprintf("00-%016x%016x-%016x-01", rand.Uint64()|1, rand.Uint64(), rand.Uint64()|1))
	return sc
}

// spansOf are the recorded spans of trace id.
func (s *spanSink) spansOf(id trace.TraceID) []trace.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []trace.Span
	for _, sp := range s.spans {
		if sp.TraceID == id {
			out = append(out, sp)
		}
	}
	return out
}

// onlySpanOf waits for the span of trace id and fails unless it is the
// trace's only one. A request's spans all end before it is answered, and
// the recorder writes them in order, so a second one would be there too.
func (e *env) onlySpanOf(t *testing.T, id trace.TraceID) trace.Span {
	t.Helper()
	eventually(t, 10*time.Second, func() bool { return len(e.spans.spansOf(id)) > 0 }, "the span of trace "+id.String())
	spans := e.spans.spansOf(id)
	if len(spans) != 1 {
		t.Fatalf("trace %s has %d spans, want 1: %+v", id, len(spans), spans)
	}
	return spans[0]
}

// startForwarding runs the harness's gateway with two more servers: vault
// (tracedUpstream, 2 s timeout) and raw (rpcErrorUpstream, which refuses
// everything with JSON-RPC errors of its own).
func startForwarding(t *testing.T) (*env, *tracedUpstream) {
	t.Helper()
	up := startTracedUpstream(t)
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers,
			ServerConfig{Name: "vault", URL: up.url, Timeout: 2 * time.Second},
			// Its fake server records every request it gets in a bounded
			// channel no one reads: no re-listing during the test.
			ServerConfig{Name: "raw", URL: rpcErrorUpstream(t), Timeout: 5 * time.Second, HealthInterval: time.Hour})
	})
	eventually(t, 15*time.Second, func() bool {
		prompts := e.gw.federated.prompts.Load()
		return prompts != nil && (*prompts)["vault__greet"] != nil && (*prompts)["raw__greet"] != nil
	}, "the vault and raw prompts")
	return e, up
}

// A prompts/get or resources/read the gateway forwards is a span like a
// tool call's, in both protocol versions and on both endpoints: named after
// the server and the prompt, resource or template, a child of the caller's
// traceparent (in _meta, else the HTTP header), and the upstream's parent.
func TestForwardedRequestSpans(t *testing.T) {
	t.Parallel()
	e, up := startForwarding(t)
	read := func(uri string) func(context.Context, *client.Client, *mcp.Meta) error {
		return func(ctx context.Context, cli *client.Client, meta *mcp.Meta) error {
			res, err := cli.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: uri, Meta: meta}})
			if err == nil && len(res.Contents) != 1 {
				err = fmt.Errorf("contents %+v", res.Contents)
			}
			return err
		}
	}
	get := func(name string) func(context.Context, *client.Client, *mcp.Meta) error {
		return func(ctx context.Context, cli *client.Client, meta *mcp.Meta) error {
			res, err := cli.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: name, Arguments: map[string]string{"name": "Ada"}, Meta: meta}})
			if err == nil && len(res.Messages) != 1 {
				err = fmt.Errorf("messages %+v", res.Messages)
			}
			return err
		}
	}
	cases := []struct {
		name     string
		path     string
		inHeader bool // the caller's traceparent in the HTTP header, not _meta
		send     func(context.Context, *client.Client, *mcp.Meta) error
		span     string
		tool     string
	}{
		{name: "resource", path: "/mcp", send: read("vault://notes"), span: "resources/read vault__notes", tool: "notes"},
		{name: "template", path: "/mcp", send: read("vault://item/42"), span: "resources/read vault__item", tool: "item"},
		{name: "prompt", path: "/mcp", send: get("vault__greet"), span: "prompts/get vault__greet", tool: "greet"},
		{name: "prompt on the server's endpoint", path: "/mcp/vault", send: get("greet"), span: "prompts/get vault__greet", tool: "greet"},
		{name: "resource, parent in the header", path: "/mcp", inHeader: true, send: read("vault://notes"), span: "resources/read vault__notes", tool: "notes"},
		{name: "prompt, parent in the header", path: "/mcp", inHeader: true, send: get("vault__greet"), span: "prompts/get vault__greet", tool: "greet"},
	}
	for _, p := range protocols {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				parent := newParent()
				var opts []transport.StreamableHTTPCOption
				var meta *mcp.Meta
				if tc.inHeader {
					opts = append(opts, transport.WithHTTPHeaderFunc(func(context.Context) map[string]string {
						return map[string]string{trace.HeaderTraceparent: parent.Traceparent()}
					}))
				} else {
					meta = &mcp.Meta{AdditionalFields: map[string]any{trace.HeaderTraceparent: parent.Traceparent(), "secret": "do-not-forward"}}
				}
				cli := e.connect(t, tc.path, keyAll, p.version, opts...)
				if err := tc.send(ctxT(t), cli, meta); err != nil {
					t.Fatal(err)
				}
				span := e.onlySpanOf(t, parent.TraceID)
				if span.Layer != trace.LayerTool || span.Name != tc.span || span.ToolServer != "vault" || span.Tool != tc.tool ||
					span.ParentSpanID != parent.SpanID || span.Status != trace.StatusOK || span.Error != "" || span.CostNanoUSD != 0 ||
					span.KeyName != "all" || span.KeyID == "" {
					t.Fatalf("span = %+v", span)
				}
				got, ok := up.sawTrace(parent.TraceID)
				want := span.Context().Traceparent()
				if !ok || got.meta != want || got.header != want || got.clientMeta {
					t.Fatalf("upstream saw %+v, want traceparent %s in _meta and header, and no other _meta of the client's", got, want)
				}
			})
		}
	}
}

// A forwarded request that fails upstream is an error span, however it
// fails: a JSON-RPC error (which the client gets with its own code), a
// timeout, a client that hung up or cancelled. A resource URI's query never
// reaches the span, not even quoted in the upstream's error.
func TestForwardedRequestErrorSpans(t *testing.T) {
	t.Parallel()
	e, up := startForwarding(t)
	const secret = "sk-query-secret-0123456789"
	type request func(ctx context.Context, t *testing.T, version string, parent trace.SpanContext) error
	// read and get ask as keyAll on /mcp, the caller's traceparent in _meta.
	read := func(uri string) request {
		return func(ctx context.Context, t *testing.T, version string, parent trace.SpanContext) error {
			meta := &mcp.Meta{AdditionalFields: map[string]any{trace.HeaderTraceparent: parent.Traceparent()}}
			_, err := e.connect(t, "/mcp", keyAll, version).ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: uri, Meta: meta}})
			return err
		}
	}
	get := func(name string) request {
		return func(ctx context.Context, t *testing.T, version string, parent trace.SpanContext) error {
			meta := &mcp.Meta{AdditionalFields: map[string]any{trace.HeaderTraceparent: parent.Traceparent()}}
			_, err := e.connect(t, "/mcp", keyAll, version).GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: name, Meta: meta}})
			return err
		}
	}
	cases := []struct {
		name      string
		send      request
		clientErr error // what errors.Is finds in the client's error; nil: no error
		span      string
		spanErr   string // "" for an ok span
	}{
		{
			name: "unknown resource", send: read("raw://42"), clientErr: mcp.ErrResourceNotFound,
			span: "resources/read raw__item", spanErr: "MCP server raw: no such item",
		},
		{
			name: "bad prompt arguments", send: get("raw__greet"), clientErr: mcp.ErrInvalidParams,
			span: "prompts/get raw__greet", spanErr: "MCP server raw: missing argument name",
		},
		{
			name: "query served", send: read("vault://item/42?token=" + secret),
			span: "resources/read vault__item",
		},
		{
			name: "query quoted in the upstream's error", send: read("vault://item/missing?token=" + secret), clientErr: mcp.ErrInternalError,
			span: "resources/read vault__item", spanErr: "MCP server vault: no item at vault://item/missing?[redacted]",
		},
		{
			name: "timeout", send: get("vault__slow"), clientErr: mcp.ErrInternalError,
			span: "prompts/get vault__slow", spanErr: "MCP server vault timed out",
		},
		{
			// The gateway does not notice (its requests are detached): the
			// upstream request runs to the server's timeout.
			name: "client hangs up", span: "prompts/get vault__slow", spanErr: "MCP server vault timed out",
			send: func(ctx context.Context, t *testing.T, version string, parent trace.SpanContext) error {
				ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				if err := get("vault__slow")(ctx, t, version, parent); !errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("client error %v, want its own deadline", err)
				}
				return nil
			},
		},
		{
			name: "client cancels", span: "prompts/get vault__slow", spanErr: "cancelled by the client",
			send: func(_ context.Context, t *testing.T, version string, parent trace.SpanContext) error {
				c := newRawClient(t, e.url+"/mcp", keyAll, version)
				answered := make(chan string, 1)
				go func() {
					r, err := c.send(7, "prompts/get", "vault__slow", map[string]any{"name": "vault__slow",
						"_meta": map[string]any{trace.HeaderTraceparent: parent.Traceparent()}})
					if err != nil {
						answered <- err.Error()
						return
					}
					defer r.Body.Close()
					b, _ := io.ReadAll(r.Body)
					answered <- string(b)
				}()
				eventually(t, 10*time.Second, func() bool { _, ok := up.sawTrace(parent.TraceID); return ok }, "the prompt to reach the upstream")
				c.cancel(t, 7)
				if body := waitAnswer(t, answered); strings.Contains(body, `"id":7`) {
					return fmt.Errorf("the cancelled request was answered: %s", body)
				}
				return nil
			},
		},
	}
	for _, p := range protocols {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				parent := newParent()
				err := tc.send(ctxT(t), t, p.version, parent)
				if (tc.clientErr == nil) != (err == nil) || tc.clientErr != nil && !errors.Is(err, tc.clientErr) {
					t.Fatalf("client got %v, want %v", err, tc.clientErr)
				}
				span := e.onlySpanOf(t, parent.TraceID)
				status := trace.StatusError
				if tc.spanErr == "" {
					status = trace.StatusOK
				}
				if span.Name != tc.span || span.Status != status || span.Error != tc.spanErr ||
					span.ParentSpanID != parent.SpanID || span.KeyName != "all" || span.CostNanoUSD != 0 {
					t.Fatalf("span = %+v, want %s with error %q", span, tc.span, tc.spanErr)
				}
				if b, _ := json.Marshal(span); strings.Contains(string(b), secret) {
					t.Fatalf("span %s carries the URI's token", b)
				}
			})
		}
	}
}

// A request the gateway refuses or answers itself leaves no span: a
// prompt, resource or template the key's ACL hides, an unknown prompt or
// URI, parameters mcp-go refuses, a request the transport refuses, and the
// listings.
func TestRefusedRequestsLeaveNoSpan(t *testing.T) {
	t.Parallel()
	e, _ := startForwarding(t)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t)
			refused := newParent()
			// Every request of this client carries refused's traceparent.
			cli := e.connect(t, "/mcp", keyWeather, p.version, transport.WithHTTPHeaderFunc(func(context.Context) map[string]string {
				return map[string]string{trace.HeaderTraceparent: refused.Traceparent()}
			}))
			for _, uri := range []string{"vault://notes", "vault://item/42", "nowhere://42"} {
				if _, err := cli.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: uri}}); err == nil {
					t.Fatalf("read %s as keyWeather succeeded", uri)
				}
			}
			for _, name := range []string{"vault__greet", "weather__nope"} {
				if _, err := cli.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: name}}); err == nil {
					t.Fatalf("prompt %s as keyWeather succeeded", name)
				}
			}
			if _, err := cli.ListPrompts(ctx, mcp.ListPromptsRequest{}); err != nil {
				t.Fatal(err)
			}
			if _, err := cli.ListResources(ctx, mcp.ListResourcesRequest{}); err != nil {
				t.Fatal(err)
			}
			if _, err := cli.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{}); err != nil {
				t.Fatal(err)
			}
			if _, err := cli.ListTools(ctx, mcp.ListToolsRequest{}); err != nil {
				t.Fatal(err)
			}
			meta := map[string]any{trace.HeaderTraceparent: refused.Traceparent()}
			r, err := newRawClient(t, e.url+"/mcp", keyWeather, p.version).send(1, "prompts/get", "weather__weather_report",
				map[string]any{"name": "weather__weather_report", "arguments": map[string]any{"city": 42}, "_meta": meta})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(r.Body)
			_ = r.Body.Close()
			if !strings.Contains(string(b), `"error"`) {
				t.Fatalf("prompt with a number for an argument: %s", b)
			}
			body := `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"weather__weather_report","arguments":{"city":"Oslo"},"_meta":{"traceparent":"` + refused.Traceparent() + `"}}}`
			if r := post(t, e.url+"/mcp", keyWeather, body, "Mcp-Protocol-Version", "1999-01-01"); r.status != http.StatusBadRequest {
				t.Fatalf("unsupported protocol version: %d %s", r.status, r.body)
			}

			// Spans are written in the order they end: once a later
			// request's span is there, any of the refused ones would be.
			later := newParent()
			meta = map[string]any{trace.HeaderTraceparent: later.Traceparent()}
			if _, err := e.connect(t, "/mcp", keyWeather, p.version).ReadResource(ctx, mcp.ReadResourceRequest{
				Params: mcp.ReadResourceParams{URI: "weather://cities", Meta: &mcp.Meta{AdditionalFields: meta}}}); err != nil {
				t.Fatal(err)
			}
			if span := e.onlySpanOf(t, later.TraceID); span.Name != "resources/read weather__cities" {
				t.Fatalf("span = %+v", span)
			}
			if spans := e.spans.spansOf(refused.TraceID); len(spans) != 0 {
				t.Fatalf("refused requests left spans: %+v", spans)
			}
		})
	}
}

// uriSecrets finds a credential wherever a URI may carry one.
func TestURISecrets(t *testing.T) {
	t.Parallel()
	const token = "tok-0123456789"
	for _, tc := range []struct{ uri, quoted string }{
		{"vault://item/1?token=" + token, "vault://item/1?token=" + token},
		{"vault://item/1?a=1&token=" + token + "&b=2", "token " + token + " expired"},
		{"vault://item/1?token=tok%2D0123456789", "bad token " + token},
		{"vault://item/1#" + token, "fragment " + token},
		{"vault://user:" + token + "@host/item", "no access for user:" + token},
		{"vault://item/%zz?token=" + token, "cannot parse vault://item/%zz?token=" + token},
	} {
		if got := uriSecrets(tc.uri).String(tc.quoted); strings.Contains(got, token) || !strings.Contains(got, "[redacted]") {
			t.Errorf("%s: %q became %q", tc.uri, tc.quoted, got)
		}
	}
	for _, uri := range []string{"vault://item/1", "vault://item/1?page=2"} {
		if r := uriSecrets(uri); r.String(uri) != uri {
			t.Errorf("%s: hidden as %q", uri, r.String(uri))
		}
	}
}

// A prompts/get or resources/read sent moments after its server's connection was lost waits for the reconnect,
// as a tools/call does, instead of failing as unavailable: here the server is down for a moment, and back
// within the wait.
func TestForwardedRequestsWaitForTheReconnect(t *testing.T) {
	t.Parallel()
	up, err := mock.StartMCP("127.0.0.1:0", mock.MCPOptions{Name: "flaky"})
	if err != nil {
		t.Fatal(err)
	}
	// Closes the server running when the test ends (it restarts the server).
	t.Cleanup(func() { _ = up.Close() })
	addr := up.Addr
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers, ServerConfig{Name: "flaky", URL: up.URL + "/mcp", Timeout: 2 * time.Second,
			HealthInterval: 50 * time.Millisecond})
	})
	e.waitTools(t, func(names []string) bool { return slices.Contains(names, "flaky__add") })
	ctx := ctxT(t)
	u := e.gw.upstreamsFor("flaky")[0]
	for _, p := range protocols {
		cli := e.connect(t, "/mcp/flaky", keyAll, p.version)
		for _, send := range []struct {
			method string
			do     func() error
		}{
			{"prompts/get", func() error {
				_, err := cli.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: "weather_report",
					Arguments: map[string]string{"city": "Oslo"}}})
				return err
			}},
			{"resources/read", func() error {
				_, err := cli.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "weather://cities"}})
				return err
			}},
		} {
			eventually(t, 10*time.Second, func() bool { _, err := u.client(); return err == nil }, "the server to be connected")
			_ = up.Close()
			eventually(t, 10*time.Second, func() bool { _, err := u.client(); return err != nil }, "the gateway to notice the server is gone")
			back := make(chan *mock.MCPServer, 1)
			go func() {
				time.Sleep(300 * time.Millisecond)
				s, err := mock.StartMCP(addr, mock.MCPOptions{Name: "flaky"})
				if err != nil {
					t.Error(err)
				}
				back <- s
			}()
			err := send.do()
			if up = <-back; up == nil {
				t.FailNow()
			}
			if err != nil {
				t.Fatalf("%s %s sent while the server was down for a moment: %v", p.name, send.method, err)
			}
		}
	}
}

// Forwarded prompts/get and resources/read requests are counted by server, method and outcome, as tool calls
// are.
func TestForwardedRequestsAreCounted(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := startWith(t, func(c *Config) { c.Servers[0].Timeout = 300 * time.Millisecond }, quietLogger(),
		func(d *Deps) { d.Metrics = reg })
	ctx := ctxT(t)
	cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
	if _, err := cli.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: "weather__weather_report",
		Arguments: map[string]string{"city": "Oslo"}}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := cli.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "weather://cities"}}); err != nil {
			t.Fatal(err)
		}
	}
	// The mock's prompt without a city fails upstream.
	if _, err := cli.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: "weather__weather_report"}}); err == nil {
		t.Fatal("a prompt without its argument was served")
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "switchboard_mcp_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			got[labels["server"]+" "+labels["method"]+" "+labels["status"]] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"weather prompts/get ok":             1,
		"weather resources/read ok":          2,
		"weather prompts/get upstream_error": 1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("switchboard_mcp_requests_total = %v, want %v", got, want)
	}
}
