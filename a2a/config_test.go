package a2a

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	ok := AgentConfig{Name: "researcher", CardURL: "http://127.0.0.1:19301/.well-known/agent-card.json"}
	inline := map[string]any{"name": "x", "supportedInterfaces": []any{
		map[string]any{"url": "http://127.0.0.1:1", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
	}}
	with := func(f func(*AgentConfig)) Config {
		a := ok
		f(&a)
		return Config{Agents: []AgentConfig{a}}
	}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{"minimal", Config{Agents: []AgentConfig{ok}}, ""},
		{"inline mapping", with(func(a *AgentConfig) { a.CardURL, a.Card = "", inline }), ""},
		{"inline JSON text", with(func(a *AgentConfig) {
			a.CardURL, a.Card = "", `{"supportedInterfaces":[{"url":"https://a.example","protocolBinding":"JSONRPC"}]}`
		}), ""},
		{"all options", with(func(a *AgentConfig) {
			a.Headers, a.CostPerCallUSD, a.Refresh, a.Timeout = map[string]string{"Authorization": "Bearer s3cret"}, "0.01", time.Minute, time.Second
		}), ""},
		{"public url", Config{PublicURL: "ftp://x"}, "a2a.public_url: must be an http(s) URL"},
		{"max response bytes", Config{MaxResponseBytes: 1 << 20, Agents: []AgentConfig{ok}}, ""},
		{"negative max response bytes", Config{MaxResponseBytes: -1}, "a2a.max_response_bytes: must not be negative"},
		{"empty name", with(func(a *AgentConfig) { a.Name = "" }), "a2a.agents[0].name:"},
		{"slash in name", with(func(a *AgentConfig) { a.Name = "a/b" }), "a2a.agents[0].name:"},
		{"no card", with(func(a *AgentConfig) { a.CardURL = "" }), "a2a.agents[0]: one of card_url or card is required"},
		{"both cards", with(func(a *AgentConfig) { a.Card = inline }), "mutually exclusive"},
		{"card url scheme", with(func(a *AgentConfig) { a.CardURL = "file:///etc/passwd" }), "a2a.agents[0].card_url: must be an http(s) URL"},
		{"card url credentials", with(func(a *AgentConfig) { a.CardURL = "http://u:p@h/" }), "a2a.agents[0].card_url: must not carry credentials"},
		{"inline not a card", with(func(a *AgentConfig) { a.CardURL, a.Card = "", map[string]any{"name": "x"} }), "a2a.agents[0].card: card lists no interface"},
		{"inline bad JSON", with(func(a *AgentConfig) { a.CardURL, a.Card = "", "{" }), "a2a.agents[0].card: not valid JSON"},
		{"header name", with(func(a *AgentConfig) { a.Headers = map[string]string{"Bad Header": "s3cret"} }), `a2a.agents[0].headers: "Bad Header"`},
		{"cost", with(func(a *AgentConfig) { a.CostPerCallUSD = "ten" }), "a2a.agents[0].cost_per_call_usd:"},
		{"refresh", with(func(a *AgentConfig) { a.Refresh = time.Millisecond }), "a2a.agents[0].refresh:"},
		{"duplicate", Config{Agents: []AgentConfig{ok, ok}}, `a2a.agents[1].name: "researcher" already used by a2a.agents[0]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Fatalf("error leaks a header value: %v", err)
			}
		})
	}
}

func TestParseUSDIsExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
		bad  bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{"0.01", 10_000_000, false},
		{"0.1", 100_000_000, false},
		{"1.000000001", 1_000_000_001, false},
		{"12345.678901234", 12_345_678_901_234, false},
		{"0.0000000001", 0, true},
		{"-1", 0, true},
		{"1e400", 0, true},
		{"abc", 0, true},
	}
	for _, tt := range tests {
		got, err := parseUSD(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("parseUSD(%q) = %d, %v; want %d, bad=%v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestMaxResponseBytesDefault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		set, want int64
	}{
		{0, 16 << 20},
		{1 << 10, 1 << 10},
	}
	for _, tt := range tests {
		if got := (Config{MaxResponseBytes: tt.set}).maxResponseBytes(); got != tt.want {
			t.Errorf("max_response_bytes %d: limit %d, want %d", tt.set, got, tt.want)
		}
	}
}
