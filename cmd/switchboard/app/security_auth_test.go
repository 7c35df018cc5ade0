package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/switchboard-gw/switchboard/storage"
)

// routeFamily is one kind of request the gateway answers, as a client with a valid key would send it.
type routeFamily struct {
	name, method, path, body string
	header                   map[string]string
	shape                    string
	adminOnly                bool // only the admin key may use it
	public                   bool // answers without a key by design
}

func mcpCall(tool string) string {
	return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"` + tool + `","arguments":{"city":"Paris"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
}

func mcpHeader(tool string) map[string]string {
	return map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": tool,
		"Accept": "application/json, text/event-stream"}
}

const a2aSend = `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`

var a2aHeader = map[string]string{"A2A-Version": "1.0"}

var routeFamilies = []routeFamily{
	{name: "chat", method: "POST", path: "/v1/chat/completions", shape: shapeOpenAI,
		body: `{"model":"model-a","messages":[{"role":"user","content":"hi"}]}`},
	{name: "models", method: "GET", path: "/v1/models", shape: shapeOpenAI},
	{name: "embeddings", method: "POST", path: "/v1/embeddings", shape: shapeOpenAI, body: `{"model":"embed-a","input":"hi"}`},
	{name: "anthropic-messages", method: "POST", path: "/v1/messages", shape: shapeAnthropic,
		body: `{"model":"model-a","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`},
	{name: "mcp", method: "POST", path: "/mcp", shape: shapeJSONRPC, body: mcpCall("weather__get_forecast"),
		header: mcpHeader("weather__get_forecast")},
	{name: "mcp-server", method: "POST", path: "/mcp/weather", shape: shapeJSONRPC, body: mcpCall("get_forecast"),
		header: mcpHeader("get_forecast")},
	{name: "a2a", method: "POST", path: "/a2a/researcher", shape: shapeJSONRPC, body: a2aSend, header: a2aHeader},
	{name: "a2a-card", method: "GET", path: "/a2a/researcher/.well-known/agent-card.json", shape: shapeJSONRPC, header: a2aHeader},
	{name: "admin-keys", method: "GET", path: "/admin/keys", shape: shapeAdmin, adminOnly: true},
	{name: "admin-spend", method: "GET", path: "/admin/spend", shape: shapeAdmin},
	{name: "admin-traces", method: "GET", path: "/admin/traces", shape: shapeAdmin},
	{name: "pprof", method: "GET", path: "/admin/debug/pprof/", shape: shapeAdmin, adminOnly: true},
	{name: "ui-session", method: "GET", path: "/ui/session", public: true},
	{name: "metrics", method: "GET", path: "/metrics", public: true},
}

func withHeaders(base map[string]string, extra map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

// credentialAttacks are requests that carry no usable key.
var credentialAttacks = []struct {
	name   string
	header map[string]string
	query  string
}{
	{name: "no key"},
	{name: "empty bearer", header: map[string]string{"Authorization": "Bearer "}},
	{name: "empty x-api-key", header: map[string]string{"x-api-key": ""}},
	{name: "wrong key", header: map[string]string{"Authorization": "Bearer " + secWrongKey}},
	{name: "expired key", header: map[string]string{"Authorization": "Bearer " + secExpiredKey}},
	{name: "disabled key", header: map[string]string{"x-api-key": secDisabledKey}},
	{name: "key in ?api_key=", query: "api_key=" + secAliceKey},
	{name: "key in ?key=", query: "key=" + secAdminKey},
	{name: "basic auth with the key", header: map[string]string{"Authorization": "Basic " + secAliceKey}},
	{name: "key in a cookie that is not the session cookie", header: map[string]string{"Cookie": "api_key=" + secAliceKey}},
}

// Every route refuses a request without a usable key, in its protocol's error shape, before any upstream hears
// of it; public routes answer but never as an authenticated session.
func TestSecurityCredentials(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	for _, rf := range routeFamilies {
		for _, atk := range credentialAttacks {
			t.Run(rf.name+"/"+atk.name, func(t *testing.T) {
				path := rf.path
				if atk.query != "" {
					path += "?" + atk.query
				}
				before := g.upstreamWork()
				r := g.raw(t, rf.method, path, withHeaders(rf.header, atk.header), rf.body)
				noSecret(t, r)
				if n := g.upstreamWork() - before; n != 0 {
					t.Errorf("%d upstream requests", n)
				}
				if rf.public {
					if r.status != http.StatusOK || strings.Contains(r.body, `"authenticated":true`) {
						t.Errorf("status %d body %.200s", r.status, r.body)
					}
					return
				}
				if r.status != http.StatusUnauthorized {
					t.Errorf("status %d, want 401 (body %.300s)", r.status, r.body)
				}
				checkShape(t, rf.shape, r)
			})
		}
	}
	// A team key is refused on admin-only routes; other routes accept it, which proves the refusals above were
	// about the key.
	for _, rf := range routeFamilies {
		if rf.public {
			continue
		}
		t.Run(rf.name+"/team key", func(t *testing.T) {
			r := g.raw(t, rf.method, rf.path, withHeaders(rf.header, map[string]string{"Authorization": "Bearer " + secAliceKey}), rf.body)
			noSecret(t, r)
			switch {
			case rf.adminOnly && r.status != http.StatusForbidden && r.status != http.StatusUnauthorized:
				t.Errorf("status %d, want 401/403 (body %.300s)", r.status, r.body)
			case rf.adminOnly:
				checkShape(t, rf.shape, r)
			case r.status != http.StatusOK:
				t.Errorf("status %d, want 200 (body %.300s)", r.status, r.body)
			}
		})
	}
	// The dashboard's session cookie (even the admin's) reads the dashboard API only: the admin API and the
	// protocol routes take the key from headers, so a cross-site request riding the cookie gets nowhere.
	t.Run("admin session cookie on the admin API", func(t *testing.T) {
		login := g.raw(t, "POST", "/ui/login", nil, `{"key":"`+secAdminKey+`"}`)
		cookie := strings.SplitN(login.header.Get("Set-Cookie"), ";", 2)[0]
		if login.status != http.StatusOK || !strings.HasPrefix(cookie, "switchboard_key=") {
			t.Fatalf("login: %d %q", login.status, cookie)
		}
		if r := g.raw(t, "GET", "/admin/spend?range=24h", map[string]string{"Cookie": cookie}, ""); r.status != http.StatusOK {
			t.Errorf("the cookie does not read the dashboard API: %d", r.status)
		}
		before := g.upstreamWork()
		for _, rf := range routeFamilies {
			if rf.public || rf.name == "admin-spend" || rf.name == "admin-traces" {
				continue
			}
			r := g.raw(t, rf.method, rf.path, withHeaders(rf.header, map[string]string{"Cookie": cookie}), rf.body)
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s with only the cookie: %d %.200s", rf.name, r.status, r.body)
			}
		}
		if r := g.raw(t, "POST", "/admin/keys", map[string]string{"Cookie": cookie}, `{"name":"csrf"}`); r.status != http.StatusUnauthorized {
			t.Errorf("creating a key with only the cookie: %d %.200s", r.status, r.body)
		}
		if n := g.upstreamWork() - before; n != 0 {
			t.Errorf("%d upstream requests", n)
		}
		r := g.raw(t, "POST", "/ui/login", map[string]string{"Origin": "http://evil.example"}, `{"key":"`+secAliceKey+`"}`)
		if r.status != http.StatusForbidden || r.header.Get("Set-Cookie") != "" {
			t.Errorf("cross-origin login: %d %q", r.status, r.header.Get("Set-Cookie"))
		}
	})
	assertLogsClean(t, g)
}

// assertLogsClean fails when a secret reached the gateway's log or spans, or a gateway key reached an upstream.
func assertLogsClean(t *testing.T, g *secGateway) {
	t.Helper()
	for name, p := range map[string]*countingProxy{"mcp": g.mcp, "a2a": g.a2a} {
		if seen := p.gatewayKeysSeen(); len(seen) > 0 {
			t.Errorf("the %s upstream received a gateway key: %.300s", name, seen[0])
		}
	}
	if last := g.llm.LastRequest(); strings.Contains(fmt.Sprint(last.Header)+string(last.Body), "sk-sec-") {
		t.Errorf("the LLM upstream received a gateway key: %v", last.Header)
	}
	ctx := context.Background()
	recent, err := g.app.Store().RecentTraces(ctx, storage.TraceFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, sum := range recent {
		nodes, err := g.app.Store().Trace(ctx, sum.TraceID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(nodes)
		for _, s := range secSecrets {
			if strings.Contains(string(b), s) {
				t.Errorf("a span carries the secret %.12s…: %.300s", s, b)
			}
		}
	}
	logs := g.logs.String()
	for _, s := range secSecrets {
		if strings.Contains(logs, s) {
			i := strings.Index(logs, s)
			t.Errorf("the log carries the secret %.12s…: %q", s, logs[max(0, i-200):min(len(logs), i+50)])
		}
	}
}

// A key made through the admin API stops working everywhere the moment it is disabled, expired or deleted.
func TestSecurityRevokedRuntimeKey(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	admin := map[string]string{"Authorization": "Bearer " + secAdminKey}
	revocations := []struct{ name, method, path, body string }{
		{"disabled", "POST", "/disable", ""},
		{"expired", "PATCH", "", `{"expires":"2020-01-01"}`},
		{"deleted", "DELETE", "", ""},
	}
	for _, rv := range revocations {
		t.Run(rv.name, func(t *testing.T) {
			r := g.raw(t, "POST", "/admin/keys", admin, `{"name":"runtime-`+rv.name+`","team":"platform"}`)
			var created struct {
				ID  string `json:"id"`
				Key string `json:"key"`
			}
			if r.status != http.StatusCreated || json.Unmarshal([]byte(r.body), &created) != nil || created.Key == "" {
				t.Fatalf("create: %d %.300s", r.status, r.body)
			}
			auth := map[string]string{"Authorization": "Bearer " + created.Key}
			for _, rf := range routeFamilies[:7] {
				if r := g.raw(t, rf.method, rf.path, withHeaders(rf.header, auth), rf.body); r.status != http.StatusOK {
					t.Fatalf("%s before revocation: %d %.300s", rf.name, r.status, r.body)
				}
			}
			mcpH := withHeaders(auth, map[string]string{"Accept": "application/json, text/event-stream"})
			init := g.raw(t, "POST", "/mcp", mcpH, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",`+
				`"capabilities":{},"clientInfo":{"name":"sec","version":"1"}}}`)
			if init.header.Get("Mcp-Session-Id") == "" {
				t.Fatalf("initialize: %d %.300s", init.status, init.body)
			}
			mcpH = withHeaders(mcpH, map[string]string{"Mcp-Session-Id": init.header.Get("Mcp-Session-Id"), "MCP-Protocol-Version": "2025-11-25"})
			g.raw(t, "POST", "/mcp", mcpH, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
			if r := g.raw(t, rv.method, "/admin/keys/"+created.ID+rv.path, admin, rv.body); r.status >= 300 {
				t.Fatalf("revoke: %d %.300s", r.status, r.body)
			}
			before := g.upstreamWork()
			for _, rf := range routeFamilies {
				if rf.public {
					continue
				}
				r := g.raw(t, rf.method, rf.path, withHeaders(rf.header, auth), rf.body)
				if r.status != http.StatusUnauthorized && !(rf.adminOnly && r.status == http.StatusForbidden) {
					t.Errorf("%s after revocation: %d %.300s", rf.name, r.status, r.body)
				}
				if strings.Contains(r.body+fmt.Sprint(r.header), created.Key) {
					t.Errorf("%s: the answer repeats the key", rf.name)
				}
			}
			// A session opened before the revocation does not outlive the key.
			r = g.raw(t, "POST", "/mcp", mcpH, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"weather__get_forecast","arguments":{"city":"Paris"}}}`)
			if r.status != http.StatusUnauthorized {
				t.Errorf("MCP session after revocation: %d %.300s", r.status, r.body)
			}
			if n := g.upstreamWork() - before; n != 0 {
				t.Errorf("%d upstream requests after revocation", n)
			}
			if strings.Contains(g.logs.String(), created.Key) {
				t.Error("the log carries the runtime key")
			}
		})
	}
	assertLogsClean(t, g)
}
