package llm

import (
	"testing"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"
)

const sampleYAML = `
models:
  - name: gpt-4o-mini
    strategy: least-busy
    deployments:
      - {provider: openai, base_url: "http://127.0.0.1:19101/v1", model: gpt-4o-mini, api_key: "sk-x", weight: 2, timeout: 30s, max_parallel: 4}
      - {provider: azure, base_url: "https://x.openai.azure.com", deployment: my-dep, api_version: "2024-10-21", api_key: "k", max_tokens_field: max_completion_tokens}
      - {provider: anthropic, base_url: "https://api.anthropic.com", model: claude-3-5-haiku-latest, api_key: "k"}
    fallbacks: [claude-haiku]
    context_window_fallbacks: [claude-haiku]
    pricing: {input_per_mtok: 0.15, output_per_mtok: "0.60", cached_input_per_mtok: 0.075}
  - name: claude-haiku
    deployments:
      - {provider: anthropic, base_url: "https://api.anthropic.com", model: claude-3-5-haiku-latest, api_key: "k"}
    pricing:
      input_per_mtok: 3
      output_per_mtok: 15
      cache_write_1h_per_mtok: "6.5"
      long_prompt: {above_tokens: 200000, input_per_mtok: 6, output_per_mtok: "22.50", cache_write_per_mtok: "7.5"}
router: {strategy: least-busy, retries: 2, allowed_fails: 3, cooldown: 30s, timeout: 60s, stream_idle_timeout: 30s}
`

// TestConfigDecodes checks the YAML users write maps onto Config through
// both decoders the loader may use, with prices exact either way.
func TestConfigDecodes(t *testing.T) {
	t.Parallel()
	var viaYAML Config
	if err := yaml.Unmarshal([]byte(sampleYAML), &viaYAML); err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := yaml.Unmarshal([]byte(sampleYAML), &generic); err != nil {
		t.Fatal(err)
	}
	var viaMapstructure Config
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result: &viaMapstructure, WeaklyTypedInput: true, // as viper decodes
		DecodeHook: mapstructure.StringToTimeDurationHookFunc(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(generic); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{"yaml": viaYAML, "mapstructure": viaMapstructure} {
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m := cfg.Models[0]
		p, ferr := m.Pricing.parse("")
		if ferr != nil || p != (Price{Input: 150_000_000, Output: 600_000_000, CachedInput: 75_000_000}) {
			t.Fatalf("%s: pricing %+v %v from %+v", name, p, ferr, m.Pricing)
		}
		// An anthropic deployment's unset cache write prices, in both tiers, are Anthropic's rule.
		p, ferr = cfg.Models[1].Pricing.parse(ProviderAnthropic)
		if ferr != nil || p.Long == nil || p.LongAbove != 200_000 ||
			*p.Long != (Price{Input: 6_000_000_000, Output: 22_500_000_000, CacheWrite: 7_500_000_000, CacheWrite1h: 12_000_000_000}) {
			t.Fatalf("%s: long prompt pricing %+v %v", name, p.Long, ferr)
		}
		p.Long = nil
		if p != (Price{Input: 3_000_000_000, Output: 15_000_000_000, CacheWrite: 3_750_000_000, CacheWrite1h: 6_500_000_000, LongAbove: 200_000}) {
			t.Fatalf("%s: pricing %+v", name, p)
		}
		d := m.Deployments[0]
		if m.Strategy != StrategyLeastBusy || d.Weight != 2 || d.MaxParallel != 4 || m.Deployments[1].APIVersion != "2024-10-21" ||
			m.Deployments[1].MaxTokensField != MaxTokensFieldMaxCompletionTokens ||
			cfg.Router.Cooldown != 30*time.Second || cfg.Router.Retries != 2 || m.ContextWindowFallbacks[0] != "claude-haiku" {
			t.Fatalf("%s: decoded %+v", name, cfg)
		}
		if name == "mapstructure" && d.Timeout != 30*time.Second {
			t.Fatalf("timeout = %v", d.Timeout)
		}
	}
}
