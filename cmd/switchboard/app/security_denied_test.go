package app

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// A name a key may not use is answered exactly as a name that does not exist, on every layer, so a key cannot
// enumerate the models, tools, prompts and agents behind the gateway. Both an allow list that misses (alice) and a
// deny list that hits (which lets unknown names through the ACL to the lookup) are tried. The admin key still sees the difference.
func TestSecurityDeniedNameAnswersAsUnknown(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	admin := map[string]string{"Authorization": "Bearer " + secAdminKey}
	newKey := func(name, acl string) map[string]string {
		created := g.raw(t, "POST", "/admin/keys", admin, `{"name":"`+name+`","team":"platform",`+acl+`}`)
		var key struct{ Key string }
		if created.status != http.StatusCreated || json.Unmarshal([]byte(created.body), &key) != nil || key.Key == "" {
			t.Fatalf("create key %s: %d %s", name, created.status, created.body)
		}
		return map[string]string{"Authorization": "Bearer " + key.Key}
	}
	allower := newKey("allower", `"allow":{"models":["model-a"],"tools":["weather__get_forecast"],"agents":["writer"]}`)
	denier := newKey("denier", `"deny":{"models":["model-b"],"tools":["weather__add","weather__weather_report"],"agents":["researcher"]}`)

	mcpPrompt := func(name string) string {
		return `{"jsonrpc":"2.0","id":7,"method":"prompts/get","params":{"name":"` + name + `","arguments":{"city":"Paris"},` +
			`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	}
	mcpPromptHeader := func(name string) map[string]string {
		h := mcpHeader(name)
		h["Mcp-Method"] = "prompts/get"
		return h
	}
	type request struct {
		method, path, body string
		header             map[string]string
	}
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	cases := []struct {
		name           string
		denied, absent string // a name the key may not use, and one nobody serves
		req            func(name string) request
	}{
		{"chat", "model-b", "model-zz", func(n string) request {
			return request{"POST", "/v1/chat/completions", `{"model":"` + n + `",` + msgs + `}`, nil}
		}},
		{"chat stream", "model-b", "model-zz", func(n string) request {
			return request{"POST", "/v1/chat/completions", `{"model":"` + n + `","stream":true,` + msgs + `}`, nil}
		}},
		{"embeddings", "model-b", "model-zz", func(n string) request {
			return request{"POST", "/v1/embeddings", `{"model":"` + n + `","input":"hi"}`, nil}
		}},
		{"anthropic messages", "model-b", "model-zz", func(n string) request {
			return request{"POST", "/v1/messages", `{"model":"` + n + `","max_tokens":16,` + msgs + `}`, nil}
		}},
		{"responses", "model-b", "model-zz", func(n string) request {
			return request{"POST", "/v1/responses", `{"model":"` + n + `","input":"hi"}`, nil}
		}},
		{"model object", "model-b", "model-zz", func(n string) request { return request{"GET", "/v1/models/" + n, "", nil} }},
		{"mcp tools/call", "weather__add", "weather__zz", func(n string) request {
			return request{"POST", "/mcp", mcpCall(n), mcpHeader(n)}
		}},
		{"mcp prompts/get", "weather__weather_report", "weather__zz", func(n string) request {
			return request{"POST", "/mcp", mcpPrompt(n), mcpPromptHeader(n)}
		}},
		{"a2a send", "researcher", "zz", func(n string) request {
			return request{"POST", "/a2a/" + n, a2aSend, a2aHeader}
		}},
		{"a2a stream", "researcher", "zz", func(n string) request {
			return request{"POST", "/a2a/" + n, strings.Replace(a2aSend, "SendMessage", "SendStreamingMessage", 1), a2aHeader}
		}},
		{"a2a card", "researcher", "zz", func(n string) request {
			return request{"GET", "/a2a/" + n + "/.well-known/agent-card.json", "", a2aHeader}
		}},
	}
	// What may differ between two answers: the request id, and the name asked for where the answer quotes it.
	requestID := regexp.MustCompile(`"request_id":"[^"]*"`)
	normal := func(r rawResponse, name string) string {
		return requestID.ReplaceAllString(strings.ReplaceAll(r.body, name, "NAME"), "")
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []struct {
				who  string
				auth map[string]string
			}{{"allow list", allower}, {"deny list", denier}} {
				before := g.upstreamWork()
				d, a := tc.req(tc.denied), tc.req(tc.absent)
				denied := g.raw(t, d.method, d.path, withHeaders(d.header, k.auth), d.body)
				absent := g.raw(t, a.method, a.path, withHeaders(a.header, k.auth), a.body)
				noSecret(t, denied)
				if denied.status != absent.status || normal(denied, tc.denied) != normal(absent, tc.absent) {
					t.Errorf("%s: denied %q: %d %s\nunknown %q: %d %s", k.who, tc.denied, denied.status, denied.body,
						tc.absent, absent.status, absent.body)
				}
				if denied.status == http.StatusForbidden || strings.Contains(denied.body, "not allowed") {
					t.Errorf("%s: the denial shows: %d %s", k.who, denied.status, denied.body)
				}
				if n := g.upstreamWork() - before; n != 0 {
					t.Errorf("%s: %d upstream requests", k.who, n)
				}
			}
			// The admin key may use everything, so it learns what exists; that is its job.
			d := tc.req(tc.absent)
			if r := g.raw(t, d.method, d.path, withHeaders(d.header, admin), d.body); r.status == http.StatusForbidden {
				t.Errorf("admin, unknown name: %d %s", r.status, r.body)
			}
		})
	}
}
