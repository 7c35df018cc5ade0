package app

import (
	"net/http"
	"strings"
	"testing"
)

var aliceAuth = map[string]string{"Authorization": "Bearer " + secAliceKey}

// Oversized headers and bodies are refused at the door on every route, before authentication or any upstream; a
// body over the limit is answered in the route's own error shape.
func TestSecurityOversizedRequests(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	big := strings.Repeat("a", 64<<10)
	for _, rf := range routeFamilies {
		t.Run(rf.name+"/64 KiB header", func(t *testing.T) {
			before := g.upstreamWork()
			r := g.raw(t, rf.method, rf.path, withHeaders(withHeaders(rf.header, aliceAuth), map[string]string{"X-Big": big}), rf.body)
			if r.status != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("status %d, want 431 (body %.200s)", r.status, r.body)
			}
			if n := g.upstreamWork() - before; n != 0 {
				t.Errorf("%d upstream requests", n)
			}
			noSecret(t, r)
		})
		t.Run(rf.name+"/64 KiB bearer", func(t *testing.T) {
			r := g.raw(t, rf.method, rf.path, withHeaders(rf.header, map[string]string{"Authorization": "Bearer " + big}), rf.body)
			if r.status != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("status %d, want 431 (body %.200s)", r.status, r.body)
			}
		})
		// fasthttp's parse error quotes the raw header bytes; the answer must not, since they hold the key.
		t.Run(rf.name+"/malformed header beside the key", func(t *testing.T) {
			r := g.raw(t, rf.method, rf.path, withHeaders(withHeaders(rf.header, aliceAuth), map[string]string{"X-Bad": "a\x00b"}), rf.body)
			if r.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400 (body %.200s)", r.status, r.body)
			}
			noSecret(t, r)
		})
		if rf.method != http.MethodPost {
			continue
		}
		t.Run(rf.name+"/body over server.max_body_bytes", func(t *testing.T) {
			before := g.upstreamWork()
			body := rf.body[:len(rf.body)-1] + `,"pad":"` + strings.Repeat("x", secMaxBodyBytes) + `"}`
			r := g.raw(t, rf.method, rf.path, withHeaders(rf.header, aliceAuth), body)
			if r.status != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413 (body %.200s)", r.status, r.body)
			}
			checkShape(t, rf.shape, r)
			if n := g.upstreamWork() - before; n != 0 {
				t.Errorf("%d upstream requests", n)
			}
			noSecret(t, r)
		})
	}
	// A chunked body has no Content-Length to check up front; the limit still holds.
	t.Run("chunked body over server.max_body_bytes", func(t *testing.T) {
		before := g.upstreamWork()
		chunk := strings.Repeat("x", 32<<10)
		var wire strings.Builder
		wire.WriteString("POST /v1/chat/completions HTTP/1.1\r\nHost: " + g.addr + "\r\nAuthorization: Bearer " + secAliceKey +
			"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
		wire.WriteString("13\r\n{\"model\":\"model-a\",\r\n")
		for range secMaxBodyBytes/len(chunk) + 1 {
			wire.WriteString("8000\r\n" + chunk + "\r\n")
		}
		wire.WriteString("0\r\n\r\n")
		r := g.rawBytes(t, "POST", wire.String())
		if r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413 (body %.200s)", r.status, r.body)
		}
		if n := g.upstreamWork() - before; n != 0 {
			t.Errorf("%d upstream requests", n)
		}
		noSecret(t, r)
	})
	assertLogsClean(t, g)
}

// Hostile JSON from a valid key: what the gateway authorizes is what the upstream acts on, and parsers survive
// deep nesting and numbers no type can hold.
func TestSecurityHostileJSON(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	deep := strings.Repeat("[", 100_000)
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct {
		name, path, body string
		header           map[string]string
		shape            string
		status           []int // any of these
	}{
		// alice may use model-a, never model-b: no copy of "model" may carry her to model-b.
		{name: "chat forbidden model", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{404},
			body: `{"model":"model-b",` + msgs + `}`},
		{name: "embeddings forbidden model", path: "/v1/embeddings", shape: shapeOpenAI, status: []int{404},
			body: `{"model":"model-b","input":"hi"}`},
		{name: "chat duplicate model (allowed first)", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"model-a","model":"model-b",` + msgs + `}`},
		{name: "chat duplicate model (allowed last)", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"model-b","model":"model-a",` + msgs + `}`},
		{name: "chat case-variant model", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"model-a","Model":"model-b",` + msgs + `}`},
		{name: "chat escaped key name", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"model-a","\u006dodel":"model-b",` + msgs + `}`},
		{name: "chat duplicate stream", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"model-a","stream":false,"stream":true,` + msgs + `}`},
		{name: "embeddings duplicate model", path: "/v1/embeddings", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"embed-a","model":"model-b","input":"hi"}`},
		{name: "anthropic messages duplicate model", path: "/v1/messages", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"model-a","model":"model-b","max_tokens":16,` + msgs + `}`},
		{name: "anthropic messages forbidden model", path: "/v1/messages", shape: shapeOpenAI, status: []int{404},
			body: `{"model":"model-b","max_tokens":16,` + msgs + `}`},
		{name: "anthropic messages max_tokens 2^70", path: "/v1/messages", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"model-a","max_tokens":1180591620717411303424,` + msgs + `}`},
		{name: "upstream 401 quoting its key", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{401, 500, 502, 503},
			body: `{"model":"leaky-401",` + msgs + `}`},
		{name: "upstream 400 quoting its key", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400, 500, 502, 503},
			body: `{"model":"leaky-400",` + msgs + `}`},
		{name: "upstream 401 quoting its key, stream", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{401, 500, 502, 503},
			body: `{"model":"leaky-401","stream":true,` + msgs + `}`},
		{name: "upstream 400 quoting its key, anthropic ingress", path: "/v1/messages", shape: shapeOpenAI, status: []int{400, 500, 502, 503},
			body: `{"model":"leaky-400","max_tokens":16,` + msgs + `}`},
		{name: "chat deep nesting", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400}, body: deep},
		{name: "chat deep nesting inside messages", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"model-a","messages":` + deep},
		{name: "chat max_tokens 1e400", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"model-a","max_tokens":1e400,` + msgs + `}`},
		{name: "chat max_tokens 2^70", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"model-a","max_tokens":1180591620717411303424,` + msgs + `}`},
		{name: "chat max_tokens negative", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400},
			body: `{"model":"model-a","max_tokens":-1,` + msgs + `}`},
		{name: "chat model is a number", path: "/v1/chat/completions", shape: shapeOpenAI, status: []int{400},
			body: `{"model":1e400,` + msgs + `}`},
		{name: "mcp deep nesting", path: "/mcp", shape: shapeJSONRPC, status: []int{400, 200}, header: mcpHeader("weather__get_forecast"),
			body: deep},
		{name: "mcp deep nesting in arguments", path: "/mcp", shape: shapeJSONRPC, status: []int{400, 200}, header: mcpHeader("weather__get_forecast"),
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather__get_forecast","arguments":` + deep},
		{name: "mcp huge id", path: "/mcp", shape: shapeJSONRPC, status: []int{400, 200}, header: mcpHeader("weather__get_forecast"),
			body: `{"jsonrpc":"2.0","id":1e400,"method":"tools/call","params":{"name":"weather__nope"}}`},
		{name: "a2a deep nesting", path: "/a2a/researcher", shape: shapeJSONRPC, status: []int{400, 200}, header: a2aHeader, body: deep},
		{name: "a2a deep nesting in params", path: "/a2a/researcher", shape: shapeJSONRPC, status: []int{400, 200}, header: a2aHeader,
			body: `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":` + deep},
		{name: "a2a duplicate method", path: "/a2a/researcher", shape: shapeJSONRPC, status: []int{400, 200}, header: a2aHeader,
			body: `{"jsonrpc":"2.0","id":1,"method":"GetTask","method":"CancelTask","params":{"id":"t-1"}}`},
		{name: "admin deep nesting", path: "/admin/keys", shape: shapeAdmin, status: []int{400},
			header: map[string]string{"Authorization": "Bearer " + secAdminKey}, body: deep},
		{name: "admin huge number", path: "/admin/keys", shape: shapeAdmin, status: []int{400},
			header: map[string]string{"Authorization": "Bearer " + secAdminKey}, body: `{"name":"n","limits":{"rpm":1e400}}`},
		{name: "admin duplicate team", path: "/admin/keys", shape: shapeAdmin, status: []int{400, 201},
			header: map[string]string{"Authorization": "Bearer " + secAdminKey}, body: `{"name":"dup","team":"platform","team":"other"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			header := tc.header
			if header == nil || header["Authorization"] == "" {
				header = withHeaders(header, aliceAuth)
			}
			before := g.upstreamWork()
			r := g.raw(t, "POST", tc.path, header, tc.body)
			noSecret(t, r)
			ok := false
			for _, s := range tc.status {
				ok = ok || r.status == s
			}
			if !ok {
				t.Errorf("status %d, want one of %v (body %.300s)", r.status, tc.status, r.body)
			}
			if n := g.upstreamWork() - before; n != 0 {
				t.Errorf("%d upstream requests (last MCP %q, A2A %q)", n, g.mcp.lastBody(), g.a2a.lastBody())
			}
			if r.status >= 400 {
				checkShape(t, tc.shape, r)
			}
		})
	}
	assertLogsClean(t, g)
}
