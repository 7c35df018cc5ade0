package governance

import (
	"encoding/json"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestValidateNamesTheBadField(t *testing.T) {
	t.Parallel()
	base := func() Config {
		return Config{
			Secret:   testSecret,
			AdminKey: testAdminKey,
			Orgs:     []OrgConfig{{Name: "acme"}},
			Teams:    []TeamConfig{{Name: "platform", Org: "acme"}},
			Keys:     []KeyConfig{{Name: "ci", Key: rawKey("ci"), Team: "platform"}},
		}
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"empty config needs no secret", func(c *Config) { *c = Config{} }, ""},
		{"short secret", func(c *Config) { c.Secret = "short" }, "secret:"},
		{"short secret without keys (it signs MCP sessions)", func(c *Config) { *c = Config{Secret: "short"} }, "secret:"},
		{"short admin key", func(c *Config) { c.AdminKey = "short" }, "admin_key:"},
		{"bad org name", func(c *Config) { c.Orgs[0].Name = "a/b" }, "orgs[0].name:"},
		{"duplicate team", func(c *Config) { c.Teams = append(c.Teams, TeamConfig{Name: "platform"}) }, "teams[1].name: duplicate"},
		{"unknown org", func(c *Config) { c.Teams[0].Org = "nope" }, `teams[0].org: unknown org "nope"`},
		{"unknown team", func(c *Config) { c.Keys[0].Team = "nope" }, `keys[0].team: unknown team "nope"`},
		{"key and hash", func(c *Config) { c.Keys[0].KeyHash = strings.Repeat("a", 64) }, "keys[0]: set key or key_hash"},
		{"no key", func(c *Config) { c.Keys[0].Key = "" }, "keys[0].key: required"},
		{"short key", func(c *Config) { c.Keys[0].Key = "sk-short" }, "keys[0].key: must be at least"},
		{"bad hash", func(c *Config) { c.Keys[0].Key, c.Keys[0].KeyHash = "", "xyz" }, "keys[0].key_hash:"},
		{"hash ok", func(c *Config) {
			c.Keys[0].Key, c.Keys[0].KeyHash = "", "hmac-sha256:"+HashKey(testSecret, rawKey("x"))
		}, ""},
		{"same key twice", func(c *Config) { c.Keys = append(c.Keys, KeyConfig{Name: "ci2", Key: rawKey("ci")}) }, "keys[1]: same key"},
		{"key equals admin", func(c *Config) { c.Keys[0].Key = testAdminKey }, "keys[0].key: must differ from admin_key"},
		{"duplicate key name", func(c *Config) { c.Keys = append(c.Keys, KeyConfig{Name: "ci", Key: rawKey("other")}) }, "keys[1].name: duplicate"},
		{"bad expires", func(c *Config) { c.Keys[0].Expires = "tomorrow" }, "keys[0].expires:"},
		{"date expires", func(c *Config) { c.Keys[0].Expires = "2027-01-31" }, ""},
		{"bad budget usd", func(c *Config) { c.Keys[0].Budget.USD = "ten" }, "keys[0].budget.usd:"},
		{"too precise usd", func(c *Config) { c.Keys[0].Budget.USD = "0.0000000001" }, "keys[0].budget.usd: more than 9"},
		{"negative usd", func(c *Config) { c.Teams[0].Budget.USD = "-1" }, "teams[0].budget.usd:"},
		{"bad period", func(c *Config) { c.Orgs[0].Budget.Period = "fortnightly" }, "orgs[0].budget.period:"},
		{"alias period", func(c *Config) { c.Teams[0].Budget = BudgetConfig{USD: "100", Period: "30d"} }, ""},
		{"negative rpm", func(c *Config) { c.Keys[0].Limits.RPM = -1 }, "keys[0].limits.rpm:"},
		{"huge tpm", func(c *Config) { c.Teams[0].Limits.TPM = maxLimit + 1 }, "teams[0].limits.tpm:"},
		{"bad per_model", func(c *Config) {
			c.Keys[0].Limits.PerModel = map[string]ModelLimits{"gpt-4o*": {RPM: -5}}
		}, `keys[0].limits.per_model["gpt-4o*"].rpm:`},
		{"empty glob", func(c *Config) { c.Keys[0].Allow.Tools = []string{"weather__*", ""} }, "keys[0].allow.tools[1]: must not be empty"},
		{"empty deny glob", func(c *Config) { c.Teams[0].Deny.Agents = []string{""} }, "teams[0].deny.agents[0]:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := base()
			tt.change(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want error containing %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), rawKey("ci")) {
				t.Fatalf("error leaks the key: %v", err)
			}
		})
	}
}

func TestUSDParsesExactly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   USD
		want int64
		bad  bool
	}{
		{"", 0, false},
		{"0.1", 100_000_000, false},
		{"10", 10 * nanoPerUSD, false},
		{"0.000000001", 1, false},
		{"1e-9", 1, false},
		{"123.456789012", 123_456_789_012, false},
		{"0.0000000005", 0, true},
		{"abc", 0, true},
		{"-0.5", 0, true},
		{"1000000001", 0, true},
	}
	for _, tt := range tests {
		got, err := tt.in.NanoUSD()
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("USD(%q).NanoUSD() = %d, %v; want %d, bad=%v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestConfigDecodesUserYAML(t *testing.T) {
	t.Parallel()
	const doc = `
admin_key: sk-admin-0123456789abcdef
secret: test-secret-0123456789abcdef
orgs: [{name: acme, budget: {usd: 1000, period: monthly}}]
teams: [{name: platform, org: acme, budget: {usd: 100.25, period: 30d}, limits: {rpm: 100}}]
keys:
  - name: ci-agent
    key: sk-test-ci-0123456789abcdef
    team: platform
    allow: {models: ["gpt-4o-mini"], tools: ["weather__*"], agents: ["researcher"]}
    limits: {rpm: 600, tpm: 100000, max_parallel: 10, per_model: {"gpt-4o*": {rpm: 5}}}
    budget: {usd: 0.1, period: 1d}
`
	var c Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	k := c.Keys[0]
	if n, _ := k.Budget.USD.NanoUSD(); n != 100_000_000 {
		t.Errorf("key budget = %d nano-USD, want 100000000", n)
	}
	if n, _ := c.Teams[0].Budget.USD.NanoUSD(); n != 100_250_000_000 {
		t.Errorf("team budget = %d nano-USD", n)
	}
	if k.Limits.PerModel["gpt-4o*"].RPM != 5 || k.Limits.MaxParallel != 10 || k.Allow.Tools[0] != "weather__*" {
		t.Errorf("decoded %+v", k)
	}
	// The admin API takes the same shapes as JSON, with numbers or strings for usd.
	var b BudgetConfig
	if err := json.Unmarshal([]byte(`{"usd": 12.5, "period": "weekly"}`), &b); err != nil || b.USD != "12.5" {
		t.Fatalf("json budget = %+v, %v", b, err)
	}
	if err := json.Unmarshal([]byte(`{"usd": "0.3"}`), &b); err != nil || b.USD != "0.3" {
		t.Fatalf("json string budget = %+v, %v", b, err)
	}
	out, _ := json.Marshal(BudgetConfig{USD: "1.50"})
	if string(out) != `{"usd":1.5}` {
		t.Errorf("marshal = %s", out)
	}
}
