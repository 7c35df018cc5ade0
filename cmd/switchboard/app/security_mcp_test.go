package app

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// mcpAnswer is a tools/call answer with what may legitimately differ between two calls (the request id, the
// name the caller asked for, the trace context) replaced by placeholders.
func mcpAnswer(r rawResponse, name string) string {
	body := rpcPayload(r)
	var v map[string]any
	if json.Unmarshal([]byte(body), &v) != nil {
		return body
	}
	v["id"] = "ID"
	if res, ok := v["result"].(map[string]any); ok {
		delete(res, "_meta")
	}
	b, _ := json.Marshal(v)
	quoted, _ := json.Marshal(name)
	out := strings.ReplaceAll(string(b), strings.Trim(string(quoted), `"`), "NAME")
	return out
}

// A tool hidden by the key's ACL is indistinguishable from a tool that does not exist, byte for byte apart from
// ids, on /mcp and /mcp/<server>; names built to escape the namespace reach nothing.
func TestSecurityMCPToolNames(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	call := func(t *testing.T, path, tool string, id int) rawResponse {
		t.Helper()
		body := strings.Replace(mcpCall(tool), `"id":7`, `"id":`+strconv.Itoa(id), 1)
		return g.raw(t, "POST", path, withHeaders(mcpHeader(tool), aliceAuth), body)
	}

	// The allowed tool works: the refusals below are about the names.
	if r := call(t, "/mcp", "weather__get_forecast", 1); r.status != 200 || !strings.Contains(r.body, "Forecast for Paris") {
		t.Fatalf("allowed tool: %d %.300s", r.status, r.body)
	}
	if r := call(t, "/mcp/weather", "get_forecast", 1); r.status != 200 || !strings.Contains(r.body, "Forecast for Paris") {
		t.Fatalf("allowed tool on /mcp/weather: %d %.300s", r.status, r.body)
	}

	for _, ep := range []struct{ path, hidden, missing string }{
		{"/mcp", "weather__add", "weather__no_such_tool"},
		{"/mcp/weather", "add", "no_such_tool"},
	} {
		t.Run("hidden equals missing on "+ep.path, func(t *testing.T) {
			before := g.upstreamWork()
			hidden := call(t, ep.path, ep.hidden, 11)
			missing := call(t, ep.path, ep.missing, 12)
			if n := g.upstreamWork() - before; n != 0 {
				t.Errorf("%d upstream requests", n)
			}
			if hidden.status != missing.status {
				t.Errorf("status hidden %d, missing %d", hidden.status, missing.status)
			}
			if h, m := mcpAnswer(hidden, ep.hidden), mcpAnswer(missing, ep.missing); h != m {
				t.Errorf("answers differ:\nhidden  %s\nmissing %s", h, m)
			}
			if !strings.Contains(hidden.body, `"error"`) && !strings.Contains(hidden.body, `"isError":true`) {
				t.Errorf("the hidden tool did not fail: %.300s", hidden.body)
			}
			for _, h := range []string{"Content-Type", "Www-Authenticate"} {
				if hidden.header.Get(h) != missing.header.Get(h) {
					t.Errorf("header %s: hidden %q, missing %q", h, hidden.header.Get(h), missing.header.Get(h))
				}
			}
		})
	}

	// Prompts and resources follow the same rule as tools.
	for _, tc := range []struct{ method, hidden, missing, params string }{
		{"prompts/get", "weather__weather_report", "weather__no_such_prompt", `{"name":"NAME","arguments":{"city":"Paris"}`},
		{"resources/read", "weather://cities", "weather://no-such-resource", `{"uri":"NAME"`},
		{"resources/read", "weather://forecast/Paris", "nowhere://forecast/Paris", `{"uri":"NAME"`},
	} {
		t.Run("hidden equals missing: "+tc.method+" "+tc.hidden, func(t *testing.T) {
			send := func(name string, id int) rawResponse {
				h := withHeaders(mcpHeader(name), aliceAuth)
				h["Mcp-Method"] = tc.method
				if tc.method == "resources/read" {
					delete(h, "Mcp-Name")
				}
				params := strings.Replace(tc.params, "NAME", name, 1) +
					`,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`
				return g.raw(t, "POST", "/mcp", h, `{"jsonrpc":"2.0","id":`+strconv.Itoa(id)+`,"method":"`+tc.method+`","params":`+params+`}`)
			}
			before := g.mcp.work.Load()
			hidden, missing := send(tc.hidden, 51), send(tc.missing, 52)
			if n := g.mcp.work.Load() - before; n != 0 {
				t.Errorf("%d upstream requests: %s", n, g.mcp.lastBody())
			}
			if hidden.status != missing.status || mcpAnswer(hidden, tc.hidden) != mcpAnswer(missing, tc.missing) {
				t.Errorf("answers differ:\nhidden  %d %s\nmissing %d %s", hidden.status, hidden.body, missing.status, missing.body)
			}
			checkShape(t, shapeJSONRPC, hidden)
		})
	}

	// The same on the 2025-11-25 session protocol.
	t.Run("hidden equals missing in a 2025-11-25 session", func(t *testing.T) {
		h := withHeaders(aliceAuth, map[string]string{"Accept": "application/json, text/event-stream"})
		init := g.raw(t, "POST", "/mcp", h, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",`+
			`"capabilities":{},"clientInfo":{"name":"sec","version":"1"}}}`)
		session := init.header.Get("Mcp-Session-Id")
		if init.status != 200 || session == "" {
			t.Fatalf("initialize: %d %q %.300s", init.status, session, init.body)
		}
		h = withHeaders(h, map[string]string{"Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"})
		g.raw(t, "POST", "/mcp", h, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		sessionCall := func(tool string, id int) rawResponse {
			return g.raw(t, "POST", "/mcp", h, `{"jsonrpc":"2.0","id":`+strconv.Itoa(id)+`,"method":"tools/call","params":{"name":"`+
				tool+`","arguments":{"city":"Paris","a":1,"b":2}}}`)
		}
		if r := sessionCall("weather__get_forecast", 2); !strings.Contains(r.body, "Forecast for Paris") {
			t.Fatalf("allowed tool in the session: %d %.300s", r.status, r.body)
		}
		before := g.tools.Calls()
		hidden, missing := sessionCall("weather__add", 3), sessionCall("weather__no_such_tool", 4)
		if n := g.tools.Calls() - before; n != 0 {
			t.Errorf("%d upstream tool calls", n)
		}
		if hidden.status != missing.status || mcpAnswer(hidden, "weather__add") != mcpAnswer(missing, "weather__no_such_tool") {
			t.Errorf("answers differ:\nhidden  %d %s\nmissing %d %s", hidden.status, hidden.body, missing.status, missing.body)
		}
	})

	// The Mcp-Name header and the body disagree: the body's hidden tool must not run under the header's name.
	t.Run("Mcp-Name header differs from the body", func(t *testing.T) {
		before := g.tools.Calls()
		r := g.raw(t, "POST", "/mcp", withHeaders(mcpHeader("weather__get_forecast"), aliceAuth), mcpCall("weather__add"))
		if n := g.tools.Calls() - before; n != 0 {
			t.Errorf("%d upstream tool calls: %.300s", n, r.body)
		}
		if r.status >= 500 || (!strings.Contains(r.body, `"error"`) && !strings.Contains(r.body, `"isError":true`)) {
			t.Errorf("status %d %.300s", r.status, r.body)
		}
	})

	// Names that a lax parser could map onto weather__add (hidden) or onto another server.
	escapes := []string{
		"a__b__c", "weather__add__x", "weather__get_forecast__add", "weather/add", "weather__../add", "../weather__add",
		"weather__add/", "weather\uff3f\uff3fadd", "weather\uff3f\uff3fget_forecast", "weather__add ", " weather__add",
		"weather__add\u0000", "Weather__add", "WEATHER__ADD", "weather__ADD", "weather___add", "weather_add", "__add",
		"weather__", "weather__get_forecast\u200b", "weather__get_f\u043erecast", "weather__add\t",
	}
	for _, name := range escapes {
		for _, path := range []string{"/mcp", "/mcp/weather"} {
			t.Run(path+"/"+name, func(t *testing.T) {
				before := g.tools.Calls()
				r := call(t, path, name, 21)
				if n := g.tools.Calls() - before; n != 0 {
					t.Errorf("the upstream ran %d tool calls (last %q)", n, g.mcp.lastBody())
				}
				if r.status >= 500 {
					t.Errorf("status %d %.300s", r.status, r.body)
				}
				if r.status == http.StatusOK && !strings.Contains(r.body, `"error"`) && !strings.Contains(r.body, `"isError":true`) {
					t.Errorf("the call succeeded: %.300s", r.body)
				}
				noSecret(t, r)
			})
		}
	}

	// A duplicate "name" in params: the tool the gateway authorizes is the tool the upstream runs.
	t.Run("duplicate name in params", func(t *testing.T) {
		for _, body := range []string{
			`{"jsonrpc":"2.0","id":31,"method":"tools/call","params":{"name":"weather__get_forecast","name":"weather__add","arguments":{"a":1,"b":2,"city":"Paris"}}}`,
			`{"jsonrpc":"2.0","id":32,"method":"tools/call","params":{"name":"weather__add","name":"weather__get_forecast","arguments":{"a":1,"b":2,"city":"Paris"}}}`,
			`{"jsonrpc":"2.0","id":33,"method":"tools/call","params":{"name":"weather__get_forecast","Name":"weather__add","arguments":{"a":1,"b":2,"city":"Paris"}}}`,
			`{"jsonrpc":"2.0","id":34,"method":"tools/call","params":{"name":"weather__get_forecast","arguments":{"city":"Paris"}},"params":{"name":"weather__add","arguments":{"a":1,"b":2}}}`,
			`{"jsonrpc":"2.0","id":35,"method":"tools/list","method":"tools/call","params":{"name":"weather__add","arguments":{"a":1,"b":2}}}`,
		} {
			r := g.raw(t, "POST", "/mcp", withHeaders(mcpHeader("weather__get_forecast"), aliceAuth), body)
			if strings.Contains(g.mcp.lastBody(), `"add"`) {
				t.Errorf("the upstream was asked for the hidden tool: %s (answer %d %.300s)", g.mcp.lastBody(), r.status, r.body)
			}
			if strings.Contains(r.body, `"text":"3"`) {
				t.Errorf("the hidden tool ran: %.300s", r.body)
			}
		}
	})

	// tools/list shows only the allowed tool.
	t.Run("tools/list", func(t *testing.T) {
		body := `{"jsonrpc":"2.0","id":41,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
		h := withHeaders(mcpHeader(""), aliceAuth)
		h["Mcp-Method"] = "tools/list"
		delete(h, "Mcp-Name")
		r := g.raw(t, "POST", "/mcp", h, body)
		if r.status != 200 || !strings.Contains(r.body, "weather__get_forecast") || strings.Contains(r.body, "weather__add") {
			t.Errorf("list: %d %.400s", r.status, r.body)
		}
	})
	assertLogsClean(t, g)
}
