package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
)

func TestFederatedEndpointListsAndRoutes(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := ctxT(t)
			cli := e.connect(t, "/mcp", keyAll, p.version)
			if got := cli.ProtocolVersion(); got != p.version {
				t.Fatalf("negotiated %q, want %q", got, p.version)
			}
			tools, err := cli.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			names := toolNames(tools.Tools)
			for _, want := range []string{"weather__get_forecast", "weather__add", "files__add", "files__slow"} {
				if !slices.Contains(names, want) {
					t.Fatalf("tools %v lack %s", names, want)
				}
			}
			res, err := callTool(ctx, cli, "weather__get_forecast", map[string]any{"city": "Paris"})
			if err != nil || res.IsError || !strings.Contains(resultText(res), "Forecast for Paris") {
				t.Fatalf("weather__get_forecast = %+v, %v", res, err)
			}
			res, err = callTool(ctx, cli, "files__add", map[string]any{"a": 2, "b": 3})
			if err != nil || res.IsError || !strings.HasPrefix(resultText(res), "5") {
				t.Fatalf("files__add = %+v, %v", res, err)
			}
			read, err := cli.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "weather://cities"}})
			if err != nil || len(read.Contents) != 1 {
				t.Fatalf("read weather://cities = %+v, %v", read, err)
			}
			read, err = cli.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "weather://forecast/Lisbon"}})
			if err != nil || !strings.Contains(read.Contents[0].(mcp.TextResourceContents).Text, "Lisbon") {
				t.Fatalf("read template = %+v, %v", read, err)
			}
			templates, err := cli.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var listed []string
			for _, tpl := range templates.ResourceTemplates {
				if tpl.Name == catchAllTemplate {
					t.Fatal("internal catch-all template is listed")
				}
				listed = append(listed, tpl.Name+" "+tpl.URITemplate.Raw())
			}
			// Both servers serve weather://forecast/{city}; reads go to the first configured, and so does the list.
			if want := []string{"weather__forecast weather://forecast/{city}"}; !slices.Equal(listed, want) {
				t.Fatalf("templates %q, want %q", listed, want)
			}
			weatherOnly := e.connect(t, "/mcp", keyWeather, p.version)
			if templates, err := weatherOnly.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{}); err != nil ||
				len(templates.ResourceTemplates) != 1 || templates.ResourceTemplates[0].Name != "weather__forecast" {
				t.Fatalf("templates a weather-only key sees: %+v, %v", templates, err)
			}
			prompt, err := cli.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{
				Name: "files__weather_report", Arguments: map[string]string{"city": "Tokyo"}}})
			if err != nil || !strings.Contains(prompt.Description, "Tokyo") {
				t.Fatalf("get prompt = %+v, %v", prompt, err)
			}
		})
	}
}

func TestServerEndpointUsesOriginalNames(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := ctxT(t)
			cli := e.connect(t, "/mcp/files", keyAll, p.version)
			tools, err := cli.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := toolNames(tools.Tools), []string{"add", "fail", "get_forecast", "slow"}; !slices.Equal(got, want) {
				t.Fatalf("tools = %v, want %v", got, want)
			}
			res, err := callTool(ctx, cli, "add", map[string]any{"a": 1, "b": 1})
			if err != nil || !strings.HasPrefix(resultText(res), "2") {
				t.Fatalf("add = %+v, %v", res, err)
			}
			prompts, err := cli.ListPrompts(ctx, mcp.ListPromptsRequest{})
			if err != nil || len(prompts.Prompts) != 1 || prompts.Prompts[0].Name != "weather_report" {
				t.Fatalf("prompts = %+v, %v", prompts, err)
			}
		})
	}
}

func TestToolSchemasPassThroughRaw(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	tool := e.gw.federated.srv.GetTool("weather__get_forecast")
	if tool == nil || len(tool.Tool.RawInputSchema) == 0 {
		t.Fatalf("tool schema not kept raw: %+v", tool)
	}
	var schema map[string]any
	if err := json.Unmarshal(tool.Tool.RawInputSchema, &schema); err != nil || schema["type"] != "object" {
		t.Fatalf("raw schema %s: %v", tool.Tool.RawInputSchema, err)
	}
	if tool.Tool.Description != "Today's forecast for a city" {
		t.Fatalf("description = %q", tool.Tool.Description)
	}
}

func TestACLFiltersListsAndHidesTools(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := ctxT(t)
			cli := e.connect(t, "/mcp", keyWeather, p.version)
			tools, err := cli.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range toolNames(tools.Tools) {
				if !strings.HasPrefix(name, "weather__") {
					t.Fatalf("key limited to weather__* sees %s", name)
				}
			}
			prompts, err := cli.ListPrompts(ctx, mcp.ListPromptsRequest{})
			if err != nil || len(prompts.Prompts) != 1 || prompts.Prompts[0].Name != "weather__weather_report" {
				t.Fatalf("prompts = %+v, %v", prompts, err)
			}
			_, hidden := callTool(ctx, cli, "files__add", map[string]any{"a": 1, "b": 1})
			_, missing := callTool(ctx, cli, "files__nope", map[string]any{"a": 1, "b": 1})
			if hidden == nil || missing == nil {
				t.Fatalf("hidden/missing tool calls succeeded: %v / %v", hidden, missing)
			}
			if a, b := strings.ReplaceAll(hidden.Error(), "files__add", "X"), strings.ReplaceAll(missing.Error(), "files__nope", "X"); a != b {
				t.Fatalf("hidden tool error %q differs from unknown tool error %q", a, b)
			}
			_, hidden = cli.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: "files__weather_report"}})
			_, missing = cli.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: "files__nope_report"}})
			if hidden == nil || missing == nil ||
				strings.ReplaceAll(hidden.Error(), "files__weather_report", "X") != strings.ReplaceAll(missing.Error(), "files__nope_report", "X") {
				t.Fatalf("hidden prompt error %v differs from unknown prompt error %v", hidden, missing)
			}
		})
	}
	// A server the key may not use answers like one that does not exist.
	if _, err := e.dial("/mcp/files", keyWeather, mcp.ProtocolVersion20251125); err == nil {
		t.Fatal("key limited to weather__* connected to /mcp/files")
	}
	forbidden := post(t, e.url+"/mcp/files", keyWeather, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	unknown := post(t, e.url+"/mcp/nope", keyWeather, `{"jsonrpc":"2.0","id":1,"method":"ping"}`)
	if forbidden.status != http.StatusNotFound || unknown.status != http.StatusNotFound ||
		strings.ReplaceAll(forbidden.body, "files", "X") != strings.ReplaceAll(unknown.body, "nope", "X") {
		t.Fatalf("forbidden server %+v vs unknown server %+v", forbidden, unknown)
	}
}

func TestHiddenResourceFailsLikeMissing(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *Config) {
		// Only files serves resources here, and keyWeather may not use it.
		c.Servers = c.Servers[1:]
	})
	// Each revision's "resource not found": -32002 before 2026-07-28,
	// invalid params (-32602) from it.
	wantErr := map[string]error{
		mcp.ProtocolVersion20251125: mcp.ErrResourceNotFound,
		mcp.ProtocolVersion20260728: mcp.ErrInvalidParams,
	}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := ctxT(t)
			cli := e.connect(t, "/mcp", keyWeather, p.version)
			list, err := cli.ListResources(ctx, mcp.ListResourcesRequest{})
			if err != nil || len(list.Resources) != 0 {
				t.Fatalf("resources = %+v, %v", list, err)
			}
			tests := []struct{ name, uri string }{
				{"hidden resource", "weather://cities"},
				{"hidden template", "weather://forecast/Paris"},
				{"missing", "weather://towns"},
			}
			var first string
			for _, tc := range tests {
				_, err := cli.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: tc.uri}})
				if !errors.Is(err, wantErr[p.version]) {
					t.Fatalf("%s: read %s = %v, want %v", tc.name, tc.uri, err, wantErr[p.version])
				}
				if first == "" {
					first = err.Error()
				} else if err.Error() != first {
					t.Fatalf("%s error %q differs from %q", tc.name, err, first)
				}
			}
			// A reachable resource is still served through the guard.
			all := e.connect(t, "/mcp", keyAll, p.version)
			if read, err := all.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "weather://cities"}}); err != nil || len(read.Contents) != 1 {
				t.Fatalf("allowed read = %+v, %v", read, err)
			}
		})
	}
	// The raw answer carries the spec's code and the URI.
	read := `{"jsonrpc":"2.0","id":7,"method":"resources/read","params":{"uri":"weather://cities"}}`
	session := e.openSession(t, keyWeather)
	r := post(t, e.url+"/mcp", keyWeather, read, server.HeaderKeySessionID, session)
	if r.status != http.StatusOK || !strings.Contains(r.body, `"code":-32002`) || !strings.Contains(r.body, `"id":7`) ||
		!strings.Contains(r.body, `"uri":"weather://cities"`) {
		t.Fatalf("raw not-found answer: %d %s", r.status, r.body)
	}
	// The gateway answers it only once the transport's checks pass, as mcp-go would: a request its transport
	// refuses gets the transport's refusal, not an answer.
	for _, tc := range []struct {
		name   string
		header []string
		status int
	}{
		{"unsupported protocol version", []string{"Mcp-Protocol-Version", "1999-01-01", server.HeaderKeySessionID, session}, http.StatusBadRequest},
		{"not JSON", []string{"Content-Type", "text/plain", server.HeaderKeySessionID, session}, http.StatusBadRequest},
		{"no session", nil, http.StatusBadRequest},
	} {
		if r := post(t, e.url+"/mcp", keyWeather, read, tc.header...); r.status != tc.status || strings.Contains(r.body, "-32002") {
			t.Errorf("%s: %d %s, want the transport's %d", tc.name, r.status, r.body, tc.status)
		}
	}
	cancel := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}`
	if r := post(t, e.url+"/mcp", keyWeather, cancel, "Mcp-Protocol-Version", "1999-01-01"); r.status != http.StatusBadRequest {
		t.Errorf("cancellation with an unsupported version: %d %s, want 400", r.status, r.body)
	}
}

func TestToolCallSpanAndTraceContext(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := ctxT(t)
			cli := e.connect(t, "/mcp", keyAll, p.version)
			req := mcp.CallToolRequest{}
			req.Params.Name = "weather__get_forecast"
			req.Params.Arguments = map[string]any{"city": "Berlin"}
			req.Params.Meta = &mcp.Meta{AdditionalFields: map[string]any{"traceparent": parent, "secret": "do-not-forward"}}
			res, err := cli.CallTool(ctx, req)
			if err != nil || res.IsError {
				t.Fatalf("call = %+v, %v", res, err)
			}
			upstreamTP := e.weather.LastTraceparent()
			sc, ok := trace.ParseTraceparent(upstreamTP)
			if !ok || sc.TraceID.String() != "0af7651916cd43dd8448eb211c80319c" {
				t.Fatalf("upstream saw traceparent %q", upstreamTP)
			}
			if strings.Contains(resultText(res), "do-not-forward") {
				t.Fatal("client _meta was forwarded upstream")
			}
			span := waitSpan(t, e, sc.SpanID)
			if span.Layer != trace.LayerTool || span.Name != "tools/call weather__get_forecast" ||
				span.ToolServer != "weather" || span.Tool != "get_forecast" || span.Status != trace.StatusOK ||
				span.ParentSpanID.String() != "b7ad6b7169203331" || span.CostNanoUSD != 1_000_000 || span.KeyName != "all" {
				t.Fatalf("span = %+v", span)
			}
		})
	}
}

func waitSpan(t *testing.T, e *env, id trace.SpanID) trace.Span {
	t.Helper()
	var span trace.Span
	eventually(t, 5*time.Second, func() bool {
		var ok bool
		span, ok = e.spans.find(func(s trace.Span) bool { return s.SpanID == id })
		return ok
	}, "span")
	return span
}

func TestPerToolCostAndToolErrorSpan(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	ctx := ctxT(t)
	cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
	res, err := callTool(ctx, cli, "weather__add", map[string]any{"a": 1, "b": 2})
	if err != nil || res.IsError {
		t.Fatalf("add = %+v, %v", res, err)
	}
	sc := trace.FromMeta(res.Meta.AdditionalFields)
	if span := waitSpan(t, e, sc.SpanID); span.CostNanoUSD != 2 {
		t.Fatalf("per-tool cost: span cost = %d, want 2", span.CostNanoUSD)
	}
	res, err = callTool(ctx, cli, "weather__fail", nil)
	if err != nil || !res.IsError {
		t.Fatalf("fail = %+v, %v", res, err)
	}
	sc = trace.FromMeta(res.Meta.AdditionalFields)
	if span := waitSpan(t, e, sc.SpanID); span.Status != trace.StatusError {
		t.Fatalf("tool error span status = %q", span.Status)
	}
}

func TestRateLimitedCallIsToolError(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	ctx := ctxT(t)
	cli := e.connect(t, "/mcp", keyLimited, mcp.ProtocolVersion20260728)
	if res, err := callTool(ctx, cli, "files__add", map[string]any{"a": 1, "b": 1}); err != nil || res.IsError {
		t.Fatalf("first call = %+v, %v", res, err)
	}
	res, err := callTool(ctx, cli, "files__add", map[string]any{"a": 1, "b": 1})
	if err != nil || !res.IsError {
		t.Fatalf("second call within tool_rpm 1 = %+v, %v", res, err)
	}
	sb, _ := res.Meta.AdditionalFields["switchboard"].(map[string]any)
	if sb["error"] != "rate_limit_exceeded" {
		t.Fatalf("denial meta = %+v", res.Meta.AdditionalFields)
	}
}

type httpReply struct {
	status int
	header http.Header
	body   string
}

func post(t *testing.T, url, key, body string, header ...string) httpReply {
	t.Helper()
	return request(t, http.MethodPost, url, key, body, header...)
}

// request sends what post does with another HTTP method. A request that
// opens a stream would not end: see openStream.
func request(t *testing.T, method, url, key, body string, header ...string) httpReply {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", mcp.ProtocolVersion20251125)
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpReply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func TestEdgeErrors(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *Config) { c.MaxMessageBytes = 1024 })
	tests := []struct {
		name       string
		path, key  string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"no key", "/mcp", "", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, http.StatusUnauthorized, `"code":-32001`},
		{"wrong key", "/mcp", "sk-sb-wrong", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, http.StatusUnauthorized, `"code":-32001`},
		{"malformed json", "/mcp", keyAll, `{"jsonrpc":"2.0","id":1,"method":`, http.StatusBadRequest, `"code":-32700`},
		{"oversized", "/mcp", keyAll, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"` + strings.Repeat("a", 2048) + `"}}`, http.StatusRequestEntityTooLarge, `"code":-32600`},
		{"unknown server", "/mcp/nope", keyAll, `{"jsonrpc":"2.0","id":1,"method":"ping"}`, http.StatusNotFound, `unknown MCP server`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, e.url+tc.path, tc.key, tc.body)
			if r.status != tc.wantStatus || !strings.Contains(r.body, tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

// A 401's challenge names the metadata of the resource the client called and, when the client sent a key, why it
// was refused (RFC 6750 §3). The Codex CLI shows its user this header and not the body: with a wrong key it said
// only "AuthRequired(... resource_metadata=...)". The requests are the ones Claude Code 2.1.197 and Codex 0.171.0
// send first.
func TestUnauthorizedChallenge(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	const (
		claudeInit = `{"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"roots":{},"elicitation":{}},` +
			`"clientInfo":{"name":"claude-code","title":"Claude Code","version":"2.1.197"}},"jsonrpc":"2.0","id":0}`
		codexInit = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",` +
			`"capabilities":{"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"codex-mcp-client","title":"Codex","version":"0.171.0"}}}`
	)
	md := e.url + "/.well-known/oauth-protected-resource"
	tests := []struct {
		name, method, path, auth, body string
		want                           string
	}{
		{"claude code, no key", http.MethodPost, "/mcp", "", claudeInit,
			`Bearer resource_metadata="` + md + `/mcp"`},
		{"claude code, wrong key", http.MethodPost, "/mcp", "Bearer sk-sb-wrong-0123456789abcdef", claudeInit,
			`Bearer resource_metadata="` + md + `/mcp", error="invalid_token", error_description="invalid API key"`},
		{"codex, wrong key, one server", http.MethodPost, "/mcp/weather", "Bearer sk-sb-wrong-0123456789abcdef", codexInit,
			`Bearer resource_metadata="` + md + `/mcp/weather", error="invalid_token", error_description="invalid API key"`},
		{"codex mcp list probe", http.MethodGet, "/mcp/weather", "", "",
			`Bearer resource_metadata="` + md + `/mcp/weather"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := request(t, tc.method, e.url+tc.path, "", tc.body, "Authorization", tc.auth, "Mcp-Protocol-Version", "")
			if got := r.header.Get("WWW-Authenticate"); r.status != http.StatusUnauthorized || got != tc.want {
				t.Fatalf("got %d, WWW-Authenticate %q, want 401 and %q", r.status, got, tc.want)
			}
		})
	}
}

// A client configured without a key meets a 401 and starts OAuth. Finding no authorization server, it registers at
// the gateway's origin, as Claude Code and the Codex CLI do, which must fail with an OAuth error that says what to do,
// not a body those clients cannot read (Claude Code showed "Invalid OAuth error response: ZodError").
func TestOAuthClientWithoutKey(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, path := range []string{"/mcp", "/mcp/weather"} {
		t.Run(path, func(t *testing.T) {
			ctx := ctxT(t)
			cli, err := client.NewOAuthStreamableHttpClient(e.url+path, client.OAuthConfig{
				RedirectURI: "http://localhost:3118/callback", TokenStore: client.NewMemoryTokenStore(), PKCEEnabled: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			if err := cli.Start(ctx); err != nil {
				t.Fatal(err)
			}
			var init mcp.InitializeRequest
			init.Params.ProtocolVersion = mcp.ProtocolVersion20251125
			_, err = cli.Initialize(ctx, init)
			if !client.IsOAuthAuthorizationRequiredError(err) {
				t.Fatalf("initialize without a key: %v, want an OAuth authorization required error", err)
			}
			err = client.GetOAuthHandler(err).RegisterClient(ctx, "Claude Code (sb)")
			var oauthErr transport.OAuthError
			if !errors.As(err, &oauthErr) || oauthErr.ErrorCode != "invalid_request" ||
				!strings.Contains(oauthErr.ErrorDescription, "a Switchboard API key in its Authorization header") {
				t.Fatalf("registration: %v, want an OAuth error saying to send a key", err)
			}
		})
	}
}

// With public_url unset, the metadata and a 401's WWW-Authenticate name the
// address the client connected to, whatever Host or X-Forwarded-* header it
// sent: the metadata is publicly cacheable.
func TestMetadataIgnoresSpoofedHost(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/mcp"} {
		req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "evil.example"
		req.Header.Set("X-Forwarded-Host", "evil2.example")
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		got := string(body) + resp.Header.Get("WWW-Authenticate")
		if strings.Contains(got, "evil") || !strings.Contains(got, e.url) {
			t.Errorf("%s: %d %s", path, resp.StatusCode, got)
		}
	}
}

func TestProtectedResourceMetadata(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *Config) { c.AuthorizationServers = []string{"https://auth.example.com"} })
	resp, err := http.Get(e.url + "/.well-known/oauth-protected-resource/mcp")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		BearerMethods        []string `json:"bearer_methods_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if md.Resource != e.url+"/mcp" || !slices.Equal(md.AuthorizationServers, []string{"https://auth.example.com"}) ||
		!slices.Equal(md.BearerMethods, []string{"header"}) {
		t.Fatalf("metadata = %+v", md)
	}
}

func TestUnknownToolIsJSONRPCError(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	ctx := ctxT(t)
	for _, p := range protocols {
		cli := e.connect(t, "/mcp", keyAll, p.version)
		if _, err := callTool(ctx, cli, "nope__tool", nil); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("%s: unknown tool error = %v", p.name, err)
		}
	}
}

func TestPaginationPages(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *Config) { c.PageSize = 3 })
	ctx := ctxT(t)
	cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
	page, err := cli.ListToolsByPage(ctx, mcp.ListToolsRequest{})
	if err != nil || len(page.Tools) != 3 || page.NextCursor == "" {
		t.Fatalf("first page = %d tools, cursor %q, %v", len(page.Tools), page.NextCursor, err)
	}
	all, err := cli.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil || len(all.Tools) != 8 {
		t.Fatalf("all pages = %d tools, %v", len(all.Tools), err)
	}
}

// TestNotificationsReachTheCaller checks that the progress an upstream sends
// while it works on a call reaches the client that made the call, with the
// client's own token. TestLogMessagesFollowTheCallersLevel does the same for
// log messages.
func TestNotificationsReachTheCaller(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	cases := []struct {
		name   string
		method mcp.MCPMethod
		token  func(server string) mcp.ProgressToken
		check  func(server string, fields map[string]any) error
	}{
		{
			name: "progress", method: mcp.MethodNotificationProgress,
			token: func(server string) mcp.ProgressToken { return "tok-" + server },
			check: func(server string, f map[string]any) error {
				if tok := f["progressToken"]; tok != "tok-"+server {
					return fmt.Errorf("progress token = %v, want the client's", tok)
				}
				return nil
			},
		},
	}
	for _, tc := range cases {
		for _, p := range protocols {
			t.Run(tc.name+"/"+p.name, func(t *testing.T) {
				ctx := ctxT(t)
				cli := e.connect(t, "/mcp", keyAll, p.version)
				got := make(chan mcp.JSONRPCNotification, 16)
				cli.OnNotification(func(n mcp.JSONRPCNotification) {
					if n.Method == string(tc.method) {
						got <- n
					}
				})
				for _, server := range []string{"weather", "files"} {
					req := mcp.CallToolRequest{}
					req.Params.Name = server + "__slow"
					req.Params.Arguments = map[string]any{"ms": 200}
					if tok := tc.token(server); tok != nil {
						req.Params.Meta = &mcp.Meta{ProgressToken: tok}
					}
					if res, err := cli.CallTool(ctx, req); err != nil || res.IsError {
						t.Fatalf("%s slow = %+v, %v", server, res, err)
					}
					select {
					case n := <-got:
						if err := tc.check(server, n.Params.AdditionalFields); err != nil {
							t.Fatalf("%s: %v", server, err)
						}
					case <-ctx.Done():
						t.Fatalf("%s: no %s reached the caller", server, tc.method)
					}
					for len(got) > 0 {
						<-got
					}
				}
			})
		}
	}
}

func TestCallTimesOutAsToolError(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *Config) { c.Servers[0].Timeout = 300 * time.Millisecond })
	ctx := ctxT(t)
	cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
	res, err := callTool(ctx, cli, "weather__slow", map[string]any{"ms": 5000})
	if err != nil || !res.IsError || !strings.Contains(resultText(res), "timed out") {
		t.Fatalf("slow call past timeout = %+v, %v", res, err)
	}
}

// deniedRecorder notes the refusals the gateway reports for the audit log.
type deniedRecorder struct {
	Governor
	mu  sync.Mutex
	got []governance.Denial
}

func (r *deniedRecorder) Denied(d governance.Denial) {
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	r.Governor.Denied(d)
}

// A call of a tool the key's ACL hides is answered like a call of a tool
// that does not exist, and audited with the ACL rule that hid it, on the
// direct path and on mcp-go's (a call with a progress token); so is a
// prompts/get of a hidden prompt and a resources/read of a hidden resource.
func TestHiddenItemRequestIsAudited(t *testing.T) {
	t.Parallel()
	rec := &deniedRecorder{}
	// files first: its weather://cities, which the weather key may not read, is the one the URI reaches.
	e := startWith(t, func(c *Config) { c.Servers[0], c.Servers[1] = c.Servers[1], c.Servers[0] }, quietLogger(),
		func(d *Deps) { rec.Governor = d.Governor; d.Governor = rec })
	ctx := ctxT(t)
	for _, p := range protocols {
		cli := e.connect(t, "/mcp", keyWeather, p.version)
		for _, progress := range []bool{false, true} {
			req := mcp.CallToolRequest{}
			req.Params.Name, req.Params.Arguments = "files__add", map[string]any{"a": 1, "b": 2}
			if progress {
				req.Params.Meta = &mcp.Meta{ProgressToken: "p1"}
			}
			if _, err := cli.CallTool(ctx, req); err == nil {
				t.Fatalf("%s, progress %v: the hidden tool answered", p.name, progress)
			}
		}
		if _, err := cli.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: "files__weather_report",
			Arguments: map[string]string{"city": "Oslo"}}}); err == nil {
			t.Fatalf("%s: the hidden prompt answered", p.name)
		}
		if _, err := cli.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "weather://cities"}}); err == nil {
			t.Fatalf("%s: the hidden resource answered", p.name)
		}
		// Neither a template the key may use (weather's serves the URI) nor an unknown item is a refusal.
		if _, err := cli.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "weather://forecast/Oslo"}}); err != nil {
			t.Fatalf("%s: the weather forecast template: %v", p.name, err)
		}
		if _, err := cli.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: "files__no_such_prompt"}}); err == nil {
			t.Fatalf("%s: an unknown prompt answered", p.name)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := map[string]int{"files__add": 2 * len(protocols), "files__weather_report": len(protocols), "files__cities": len(protocols)}
	got := map[string]int{}
	for _, d := range rec.got {
		got[d.Name]++
		var ge *governance.Error
		if d.Kind != governance.KindTool || d.Principal == nil || d.Principal.KeyName != "weather" ||
			!errors.As(d.Err, &ge) || !strings.HasPrefix(ge.Rule, "acl:") {
			t.Errorf("refusal %+v (err %v)", d, d.Err)
		}
	}
	if !maps.Equal(got, want) {
		t.Fatalf("refusals audited by name %v, want %v", got, want)
	}
}

// A prompts/get on a view that has not listed any prompt yet (its server
// never connected) is answered by mcp-go as unknown, not a panic at the edge.
func TestPromptBeforeAnyListingIsUnknown(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	v := e.gw.newView("never-synced")
	hr := &server.HTTPRequest{Method: http.MethodPost, Header: http.Header{}, Context: ctxT(t),
		Body: []byte(`{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"greet"}}`)}
	if v.prefetch(httptest.NewRecorder(), hr, nil, string(mcp.MethodPromptsGet), json.RawMessage("1")) {
		t.Fatal("the edge answered a prompt it has no handler for")
	}
}
