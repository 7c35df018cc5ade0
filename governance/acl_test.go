package governance

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"gpt-4o*", "gpt-4o", true},
		{"gpt-4o*", "gpt-4o-mini", true},
		{"gpt-4o*", "gpt-4", false},
		{"gpt-4o*", "GPT-4o", false},
		{"weather__*", "weather__get_forecast", true},
		{"weather__*", "weatherx__get", false},
		{"*", "", true},
		{"*__delete", "files__delete", true},
		{"*__delete", "files__delete_all", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "a-b-b-c", true},
		{"a*b*c", "acb", false},
		{"a*a", "a", false},
		{"openai/*", "openai/gpt-4o", true},
		{"exact", "exact", true},
		{"exact", "exact2", false},
	}
	for _, tt := range tests {
		g := compileGlob(tt.pattern, "")
		if got := g.match(tt.name); got != tt.want {
			t.Errorf("glob %q match %q = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	cfg := Config{
		AdminKey: testAdminKey,
		Teams: []TeamConfig{
			{Name: "open"},
			{Name: "research", Allow: ACLConfig{Models: []string{"gpt-4o*", "claude-*"}}, Deny: ACLConfig{Tools: []string{"files__delete"}}},
			{Name: "no-agents", Allow: ACLConfig{Agents: []string{"nobody"}}},
		},
		Keys: []KeyConfig{
			{Name: "free", Key: rawKey("free")},
			{Name: "scoped", Key: rawKey("scoped"), Allow: ACLConfig{Models: []string{"gpt-4o-mini"}, Tools: []string{"weather__*"}, Agents: []string{"researcher"}}},
			{Name: "deny-wins", Key: rawKey("deny-wins"), Allow: ACLConfig{Tools: []string{"weather__*"}}, Deny: ACLConfig{Tools: []string{"weather__admin*"}}},
			{Name: "in-research", Key: rawKey("in-research"), Team: "research", Allow: ACLConfig{Models: []string{"gpt-4o", "o3"}, Tools: []string{"files__*"}}},
			{Name: "team-only", Key: rawKey("team-only"), Team: "research"},
			{Name: "in-open", Key: rawKey("in-open"), Team: "open", Deny: ACLConfig{Agents: []string{"*"}}},
			{Name: "no-agents-key", Key: rawKey("no-agents-key"), Team: "no-agents", Allow: ACLConfig{Agents: []string{"researcher"}}},
		},
	}
	g, _ := newGov(t, cfg)
	tests := []struct {
		key  string
		kind Kind
		name string
		ok   bool
		rule string
	}{
		{"free", KindModel, "anything", true, ruleDefaultAllow},
		{"free", KindTool, "files__delete", true, ruleDefaultAllow},
		{"scoped", KindModel, "gpt-4o-mini", true, `key.allow.models["gpt-4o-mini"]`},
		{"scoped", KindModel, "gpt-4o", false, "key.allow.models (no match)"},
		{"scoped", KindModel, "GPT-4O-MINI", false, "key.allow.models (no match)"},
		{"scoped", KindTool, "weather__get_forecast", true, `key.allow.tools["weather__*"]`},
		{"scoped", KindTool, "files__read", false, "key.allow.tools (no match)"},
		{"scoped", KindAgent, "researcher", true, `key.allow.agents["researcher"]`},
		{"scoped", KindAgent, "writer", false, "key.allow.agents (no match)"},
		{"deny-wins", KindTool, "weather__get", true, `key.allow.tools["weather__*"]`},
		{"deny-wins", KindTool, "weather__admin_reset", false, `key.deny.tools["weather__admin*"]`},
		{"deny-wins", KindModel, "any-model", true, ruleDefaultAllow},
		// Team and key must both allow: the key allows o3 but the team doesn't.
		{"in-research", KindModel, "gpt-4o", true, `key.allow.models["gpt-4o"]`},
		{"in-research", KindModel, "o3", false, "team.allow.models (no match)"},
		{"in-research", KindModel, "claude-haiku", false, "key.allow.models (no match)"},
		// The team's deny beats the key's allow.
		{"in-research", KindTool, "files__read", true, `key.allow.tools["files__*"]`},
		{"in-research", KindTool, "files__delete", false, `team.deny.tools["files__delete"]`},
		{"team-only", KindModel, "claude-haiku", true, `team.allow.models["claude-*"]`},
		{"team-only", KindModel, "llama", false, "team.allow.models (no match)"},
		{"team-only", KindAgent, "anyone", true, ruleDefaultAllow},
		{"in-open", KindAgent, "researcher", false, `key.deny.agents["*"]`},
		{"in-open", KindModel, "m", true, ruleDefaultAllow},
		{"no-agents-key", KindAgent, "researcher", false, "team.allow.agents (no match)"},
		{"free", Kind("widget"), "x", false, ruleUnknownKind},
	}
	for _, tt := range tests {
		t.Run(tt.key+"/"+string(tt.kind)+"/"+tt.name, func(t *testing.T) {
			t.Parallel()
			d := g.Authorize(mustAuth(t, g, tt.key), tt.kind, tt.name)
			if d.Allowed != tt.ok || d.Rule != tt.rule {
				t.Fatalf("Authorize = %+v, want allowed=%v rule %q", d, tt.ok, tt.rule)
			}
			err := d.Err()
			if tt.ok != (err == nil) {
				t.Fatalf("Err() = %v", err)
			}
			var ge *Error
			if err != nil && (!errors.As(err, &ge) || ge.HTTPStatus() != http.StatusForbidden || strings.Contains(ge.Message, tt.name)) {
				t.Fatalf("denial error %v must be 403 and not name the target", err)
			}
		})
	}
	admin, err := g.Authenticate(testAdminKey)
	if err != nil {
		t.Fatal(err)
	}
	if d := g.Authorize(admin, KindTool, "files__delete"); !d.Allowed || d.Rule != ruleAdmin {
		t.Fatalf("admin: %+v", d)
	}
	if d := g.Authorize(nil, KindModel, "m"); d.Allowed {
		t.Fatal("nil principal allowed")
	}
	if d := g.Authorize(&Principal{KeyID: "forged"}, KindModel, "m"); d.Allowed {
		t.Fatal("principal not made by Authenticate allowed")
	}
}
