package config

import (
	"os"
	"reflect"
	"testing"
)

// FuzzParse feeds arbitrary YAML to Parse. Properties: no panic; a refusal
// is a message, not an empty error; an accepted config validates again and
// parsing is deterministic (same config or same error twice).
func FuzzParse(f *testing.F) {
	if demo, err := os.ReadFile("../demo.yaml"); err == nil {
		f.Add(demo)
	}
	for _, s := range []string{
		"",
		"# only a comment\n",
		"server:\n  listen: 127.0.0.1:8080\n  read_timeout: 30s\n",
		"server:\n  listen: [\n",
		"log: {level: debug, format: json}\nrouter: {retries: 2, cooldown: 30s}\n",
		"models:\n  - name: m\n    deployments:\n      - {provider: openai, base_url: 'http://127.0.0.1:1/v1'}\n    pricing: {input_per_mtok: 0.15, output_per_mtok: 1e-3}\n",
		"governance:\n  secret: 0123456789abcdef0123\n  keys:\n    - {name: a, key: sk-a, budget: {usd: 12.5, period: weekly}, allow: {models: ['gpt-*']}}\n",
		"governance:\n  keys:\n    - &k {name: a, key: sk-a}\n    - *k\n",
		"a: &a [1, 2]\nb: &b [*a, *a]\nc: [*b, *b]\n",
		"mcp:\n  servers:\n    - {name: w, url: 'http://127.0.0.1:1/mcp', tool_costs_usd: {add: '0.000000002'}}\n",
		"a2a:\n  agents:\n    - {name: r, card_url: 'http://127.0.0.1:1/card', cost_per_call_usd: '0.01'}\n",
		"server: 8080\n",
		"!!binary AAAA\n",
		"server:\n  listen: env:SWITCHBOARD_FUZZ_SURELY_UNSET\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := Parse(raw, "fuzz.yaml")
		again, err2 := Parse(raw, "fuzz.yaml")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("refusal with an empty message")
			}
			if err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second parse: %v, first: %v", err2, err)
			}
			if cfg != nil {
				t.Fatalf("refusal %q returned a config", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails validation: %v", err)
		}
		if err2 != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("second parse differs: %v", err2)
		}
	})
}
