package app

import (
	"io"
	"net/http"
	"strings"
	"testing"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	sbmcp "github.com/switchboard-gw/switchboard/mcp"
)

const (
	goodKey     = "sk-test-good-00000000000000000000"
	expiredKey  = "sk-test-expired-00000000000000000"
	disabledKey = "sk-test-disabled-0000000000000000"
)

// A request that does not carry a valid key is refused at the door on every protocol, and no upstream hears of it.
func TestInvalidKeysNeverReachAnUpstream(t *testing.T) {
	t.Parallel()
	llmUp, toolUp, agentUp := startUpstreams(t, mock.LLMOptions{})

	s := start(t, func(c *config.Config) {
		c.Models = []llm.ModelConfig{{Name: "gpt-4o-mini",
			Deployments: []llm.DeploymentConfig{{Provider: llm.ProviderOpenAI, BaseURL: llmUp.URL + "/v1"}}}}
		c.MCP = sbmcp.Config{Servers: []sbmcp.ServerConfig{{Name: "weather", URL: toolUp.URL + "/mcp"}}}
		c.A2A = sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "researcher", CardURL: agentUp.URL + "/.well-known/agent-card.json"}}}
		c.Governance = governance.Config{Secret: "keys-test-secret-0123456789", Keys: []governance.KeyConfig{
			{Name: "good", Key: goodKey},
			{Name: "expired", Key: expiredKey, Expires: "2020-01-01"},
			{Name: "disabled", Key: disabledKey, Disabled: true},
		}}
	}, nil)

	s.waitReady(t)

	type route struct {
		name, path, body string
		header           map[string]string
	}
	routes := []route{
		{name: "chat", path: "/v1/chat/completions",
			body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`},
		{name: "mcp tools/call", path: "/mcp",
			body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather__get_forecast","arguments":{"city":"x"},` +
				`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`,
			header: map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "weather__get_forecast",
				"Accept": "application/json, text/event-stream"}},
		{name: "a2a send", path: "/a2a/researcher",
			body:   `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`,
			header: map[string]string{"A2A-Version": "1.0"}},
	}
	credentials := []struct {
		name   string
		set    func(*http.Request)
		secret string // must not appear in the answer
	}{
		{name: "no key", set: func(*http.Request) {}},
		{name: "empty bearer", set: func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }},
		{name: "wrong key", set: func(r *http.Request) { r.Header.Set("Authorization", "Bearer sk-sb-wrong-000000000000") }, secret: "sk-sb-wrong"},
		{name: "expired key", set: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+expiredKey) }, secret: expiredKey},
		{name: "disabled key", set: func(r *http.Request) { r.Header.Set("x-api-key", disabledKey) }, secret: disabledKey},
		{name: "key in the query string", set: func(r *http.Request) {
			q := r.URL.Query()
			q.Set("api_key", goodKey)
			q.Set("key", goodKey)
			r.URL.RawQuery = q.Encode()
		}, secret: goodKey},
		{name: "good key with a prefix", set: func(r *http.Request) { r.Header.Set("Authorization", "Bearer x"+goodKey) }, secret: goodKey},
	}
	do := func(rt route, set func(*http.Request)) (int, string) {
		req, _ := http.NewRequest("POST", s.url+rt.path, strings.NewReader(rt.body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range rt.header {
			req.Header.Set(k, v)
		}
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	for _, rt := range routes {
		for _, cred := range credentials {
			t.Run(rt.name+"/"+cred.name, func(t *testing.T) {
				code, body := do(rt, cred.set)
				if code != http.StatusUnauthorized {
					t.Errorf("status %d, want 401 (body %s)", code, body)
				}
				if cred.secret != "" && strings.Contains(body, cred.secret) {
					t.Errorf("the answer repeats the key: %s", body)
				}
			})
		}
	}
	if n := llmUp.Requests(); n != 0 {
		t.Errorf("the LLM upstream saw %d requests", n)
	}
	if n := toolUp.Calls(); n != 0 {
		t.Errorf("the MCP upstream saw %d tool calls", n)
	}
	if n := agentUp.Messages(); n != 0 {
		t.Errorf("the A2A upstream saw %d messages", n)
	}

	// The same requests with the good key do reach each upstream: the refusals above were about the key.
	for _, rt := range routes {
		if code, body := do(rt, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+goodKey) }); code != http.StatusOK {
			t.Errorf("%s with the good key: %d %s", rt.name, code, body)
		}
	}
	if llmUp.Requests() != 1 || toolUp.Calls() != 1 || agentUp.Messages() != 1 {
		t.Errorf("good key: upstreams saw llm=%d mcp=%d a2a=%d", llmUp.Requests(), toolUp.Calls(), agentUp.Messages())
	}
}
