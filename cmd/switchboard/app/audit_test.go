package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	sbmcp "github.com/switchboard-gw/switchboard/mcp"
	"github.com/switchboard-gw/switchboard/storage"
)

const (
	auditAdminKey = "sk-audit-admin-0a1b2c3d4e5f6a7b8c"
	auditAliceKey = "sk-audit-alice-1122334455667788aa"
	auditBobKey   = "sk-audit-bob-99aabbccddeeff001122"
	auditWrongKey = "sk-audit-wrong-ffeeddccbbaa998877"
	auditSecret   = "audit-test-secret-0123456789abcdef"
)

// auditGateway serves models, a tool server and an agent to alice (team platform, one tool call a minute)
// and bob (team other, who may not call the agent).
func auditGateway(t *testing.T) (*started, config.Config) {
	t.Helper()
	llmUp, toolUp, agentUp := startUpstreams(t, mock.LLMOptions{})
	var cfg config.Config
	s := start(t, func(c *config.Config) {
		deployment := []llm.DeploymentConfig{{Provider: llm.ProviderOpenAI, BaseURL: llmUp.URL + "/v1"}}
		c.Models = []llm.ModelConfig{{Name: "model-a", Deployments: deployment}, {Name: "model-b", Deployments: deployment}}
		c.MCP = sbmcp.Config{Servers: []sbmcp.ServerConfig{{Name: "weather", URL: toolUp.URL + "/mcp"}}}
		c.A2A = sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "researcher", CardURL: agentUp.URL + "/.well-known/agent-card.json"}}}
		c.Governance = governance.Config{Secret: auditSecret, AdminKey: auditAdminKey,
			Teams: []governance.TeamConfig{{Name: "platform"}, {Name: "other"}},
			Keys: []governance.KeyConfig{
				{Name: "alice", Key: auditAliceKey, Team: "platform", Allow: governance.ACLConfig{Models: []string{"model-a"}},
					Limits: governance.LimitsConfig{ToolRPM: 1}},
				{Name: "bob", Key: auditBobKey, Team: "other", Deny: governance.ACLConfig{Agents: []string{"researcher"}, Tools: []string{"weather__*"}}},
			}}
		cfg = *c
	}, nil)
	s.waitReady(t)
	return s, cfg
}

// send makes one request with a key and a request id, and returns the status and body.
func send(t *testing.T, s *started, method, path, key, requestID, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-ID", requestID)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func auditEvents(t *testing.T, s *started, key, query string) (int, []storage.AuditEvent) {
	t.Helper()
	status, body := send(t, s, http.MethodGet, "/admin/audit"+query, key, "audit-read", "", nil)
	var r struct{ Events []storage.AuditEvent }
	if status == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("audit: %v: %s", err, body)
		}
	}
	return status, r.Events
}

// waitAudit polls /admin/audit until every wanted request id is there: the writer is asynchronous.
func waitAudit(t *testing.T, s *started, requestIDs ...string) []storage.AuditEvent {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, events := auditEvents(t, s, auditAdminKey, "?limit=1000")
		seen := map[string]bool{}
		for _, e := range events {
			seen[e.RequestID] = true
		}
		missing := ""
		for _, id := range requestIDs {
			if !seen[id] {
				missing = id
			}
		}
		if missing == "" {
			return events
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit event %q never appeared; have %+v", missing, events)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAuditLogRecordsDenialsAndAdminActions(t *testing.T) {
	t.Parallel()
	s, cfg := auditGateway(t)
	begin := time.Now().UTC().Add(-time.Second)
	mcpHeaders := map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
		"Mcp-Name": "weather__get_forecast", "Accept": "application/json, text/event-stream"}
	mcpCall := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"weather__get_forecast","arguments":{"city":"Paris"},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	a2aSend := `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`

	steps := []struct {
		method, path, key, requestID, body string
		header                             map[string]string
		status                             int
	}{
		{"POST", "/v1/chat/completions", auditAliceKey, "req-chat-denied", `{"model":"model-b","messages":[{"role":"user","content":"hi"}]}`, nil, 404},
		{"POST", "/v1/chat/completions", auditAliceKey, "req-chat-ok", `{"model":"model-a","messages":[{"role":"user","content":"hi"}]}`, nil, 200},
		{"POST", "/mcp", auditAliceKey, "req-mcp-ok", mcpCall, mcpHeaders, 200},
		{"POST", "/mcp", auditAliceKey, "req-mcp-limited", mcpCall, mcpHeaders, 200}, // a tool error result, as MCP wants
		{"POST", "/a2a/researcher", auditBobKey, "req-a2a-denied", a2aSend, map[string]string{"A2A-Version": "1.0"}, 404},
		{"POST", "/mcp/weather", auditBobKey, "req-mcp-server-denied", mcpCall, mcpHeaders, 404},
		{"POST", "/v1/chat/completions", auditWrongKey, "req-unknown-key", `{"model":"model-a","messages":[]}`, nil, 401},
		{"GET", "/admin/keys", auditWrongKey, "req-admin-401", "", nil, 401},
	}
	for _, st := range steps {
		status, body := send(t, s, st.method, st.path, st.key, st.requestID, st.body, st.header)
		if status != st.status {
			t.Fatalf("%s: status %d, want %d: %.300s", st.requestID, status, st.status, body)
		}
		if st.requestID == "req-mcp-limited" && !strings.Contains(body, "rate limit exceeded") {
			t.Fatalf("second tool call was not rate limited: %.300s", body)
		}
	}
	status, body := send(t, s, "POST", "/admin/keys", auditAdminKey, "req-key-create", `{"name":"carol","team":"platform"}`, nil)
	if status != http.StatusCreated {
		t.Fatalf("create key: %d %s", status, body)
	}
	var created struct{ ID, Key string }
	if err := json.Unmarshal([]byte(body), &created); err != nil || created.Key == "" {
		t.Fatalf("create key: %v %s", err, body)
	}
	if status, body := send(t, s, "POST", "/admin/keys/"+created.ID+"/disable", auditAdminKey, "req-key-disable", "", nil); status != 200 {
		t.Fatalf("disable key: %d %s", status, body)
	}
	if err := s.app.Reload(&cfg); err != nil {
		t.Fatalf("reload: %v", err)
	}
	bad := cfg
	bad.Governance.Keys = append([]governance.KeyConfig{}, cfg.Governance.Keys...)
	bad.Governance.Keys[1].Team = "nowhere"
	if err := s.app.Reload(&bad); err == nil {
		t.Fatal("a reload with an unknown team succeeded")
	}
	// A file the watcher could not even parse never reaches Reload; it is audited all the same.
	_, parseErr := config.Parse([]byte("governance:\n  secret: env:SWITCHBOARD_AUDIT_TEST_SURELY_UNSET\n"), "sb.yaml")
	if parseErr == nil {
		t.Fatal("a config with a missing variable parsed")
	}
	s.app.ReloadRejected(parseErr)

	events := waitAudit(t, s, "req-chat-denied", "req-mcp-limited", "req-a2a-denied", "req-mcp-server-denied", "req-unknown-key", "req-admin-401",
		"req-key-create", "req-key-disable")
	alice, bob := "cfg_alice", "cfg_bob"
	for _, e := range events {
		if e.ActorName == "alice" {
			alice = e.Actor
		}
		if e.ActorName == "bob" {
			bob = e.Actor
		}
	}
	carol := "key:" + created.ID + " (carol)"
	want := map[string]storage.AuditEvent{
		"req-chat-denied": {Actor: alice, ActorName: "alice", Team: "platform", Action: "request.denied", Target: "model:model-b",
			Rule: "acl:key.allow.models (no match)", Status: "denied", RemoteAddr: "127.0.0.1",
			Detail: "/v1/chat/completions: model not allowed for this key"},
		"req-mcp-limited": {Actor: alice, ActorName: "alice", Team: "platform", Action: "request.denied",
			Target: "tool:weather__get_forecast", Rule: "rate_limit.key.tool_rpm", Status: "denied", RemoteAddr: "127.0.0.1",
			Detail: "/mcp: rate limit exceeded: key tool calls per minute"},
		"req-a2a-denied": {Actor: bob, ActorName: "bob", Team: "other", Action: "request.denied", Target: "agent:researcher",
			Rule: `acl:key.deny.agents["researcher"]`, Status: "denied", RemoteAddr: "127.0.0.1",
			Detail: "/a2a/researcher: agent not allowed for this key"},
		"req-mcp-server-denied": {Actor: bob, ActorName: "bob", Team: "other", Action: "request.denied", Target: "tool:weather__*",
			Rule: `acl:key.deny.tools["weather__*"]`, Status: "denied", RemoteAddr: "127.0.0.1",
			Detail: "/mcp/weather: tool not allowed for this key"},
		"req-unknown-key": {Action: "request.denied", Rule: "unknown_key", Status: "denied", RemoteAddr: "127.0.0.1",
			Detail: "/v1/chat/completions: invalid API key"},
		"req-admin-401": {Action: "request.denied", Rule: "unknown_key", Status: "denied", RemoteAddr: "127.0.0.1",
			Detail: "/admin/keys: invalid API key"},
		"req-key-create": {Actor: "admin", ActorName: "admin", Team: "platform", Action: "key.create", Target: carol, Status: "ok",
			RemoteAddr: "127.0.0.1", Detail: `{"name":"carol","team":"platform"}`},
		"req-key-disable": {Actor: "admin", ActorName: "admin", Team: "platform", Action: "key.disable", Target: carol, Status: "ok",
			RemoteAddr: "127.0.0.1"},
	}
	got := map[string][]storage.AuditEvent{}
	var reloads []storage.AuditEvent
	for _, e := range events {
		if e.Time.Before(begin) || e.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("event %s at %v, outside the test", e.RequestID, e.Time)
		}
		if e.Action == "config.reload" {
			reloads = append(reloads, e)
			continue
		}
		e.Time = time.Time{}
		got[e.RequestID] = append(got[e.RequestID], e)
	}
	for id, w := range want {
		w.RequestID = id
		if len(got[id]) != 1 || got[id][0] != w {
			t.Errorf("%s:\n got %+v\nwant [%+v]", id, got[id], w)
		}
	}
	for _, id := range []string{"req-chat-ok", "req-mcp-ok"} {
		if len(got[id]) != 0 {
			t.Errorf("an admitted request was audited: %+v", got[id])
		}
	}
	// Newest first: the unparsable file, the refused config, then the one that worked.
	if len(reloads) != 3 || reloads[2].Status != "ok" || reloads[1].Status != "failed" || reloads[1].Actor != "system" ||
		!strings.Contains(reloads[1].Detail, "unknown team") || reloads[0].Status != "failed" || reloads[0].Actor != "system" ||
		reloads[0].Detail != "sb.yaml:2: governance.secret: environment variable SWITCHBOARD_AUDIT_TEST_SURELY_UNSET is not set" {
		t.Errorf("config reloads: %+v", reloads)
	}

	// No key, and nothing derived from one, is in the audit table.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all, err := s.app.Store().Audit(ctx, storage.AuditQuery{Limit: storage.MaxAuditLimit})
	if err != nil {
		t.Fatal(err)
	}
	dump, _ := json.Marshal(all)
	for _, secret := range []string{auditAdminKey, auditAliceKey, auditBobKey, auditWrongKey, created.Key, auditSecret,
		governance.HashKey(auditSecret, auditWrongKey), governance.HashKey(auditSecret, created.Key), auditWrongKey[:12]} {
		if strings.Contains(string(dump), secret) {
			t.Errorf("the audit table holds %q", secret)
		}
	}
}

func TestAuditLogIsScopedToTheReadersTeam(t *testing.T) {
	t.Parallel()
	s, _ := auditGateway(t)
	send(t, s, "POST", "/v1/chat/completions", auditAliceKey, "req-alice", `{"model":"model-b","messages":[]}`, nil)
	send(t, s, "POST", "/a2a/researcher", auditBobKey, "req-bob",
		`{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}`, map[string]string{"A2A-Version": "1.0"})
	send(t, s, "POST", "/v1/chat/completions", auditWrongKey, "req-anon", `{"model":"model-a","messages":[]}`, nil)
	waitAudit(t, s, "req-alice", "req-bob", "req-anon")

	ids := func(events []storage.AuditEvent) map[string]bool {
		m := map[string]bool{}
		for _, e := range events {
			m[e.RequestID] = true
		}
		return m
	}
	status, events := auditEvents(t, s, auditAliceKey, "")
	if got := ids(events); status != 200 || len(got) != 1 || !got["req-alice"] {
		t.Errorf("alice reads %d %+v, want only her team's event", status, events)
	}
	status, events = auditEvents(t, s, auditBobKey, "?action=request.denied")
	if got := ids(events); status != 200 || len(got) != 1 || !got["req-bob"] {
		t.Errorf("bob reads %d %+v, want only his team's event", status, events)
	}
	if status, events := auditEvents(t, s, auditAliceKey, "?team=other"); status != http.StatusForbidden {
		t.Errorf("alice asking for team other: %d %+v", status, events)
	}
	if status, _ := auditEvents(t, s, auditWrongKey, ""); status != http.StatusUnauthorized {
		t.Errorf("unknown key reading the audit log: %d", status)
	}
}
