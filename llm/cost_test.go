package llm

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseUSD(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0.15", 150_000_000, true},
		{"2", 2_000_000_000, true},
		{"0.075", 75_000_000, true},
		{".5", 500_000_000, true},
		{"10.", 10_000_000_000, true},
		{"0.000000001", 1, true},
		{"0.0000000001", 0, false},
		{"-1", 0, false},
		{"1e-3", 0, false},
		{"", 0, false},
		{".", 0, false},
		{"1,5", 0, false},
	} {
		got, ok := parseUSD(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseUSD(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCostIsExact(t *testing.T) {
	t.Parallel()
	p := Price{Input: 150_000_000, Output: 600_000_000, CachedInput: 75_000_000} // gpt-4o-mini
	for _, tc := range []struct {
		u    Usage
		want int64
	}{
		{Usage{}, 0},
		{Usage{Input: 1_000_000}, 150_000_000},
		{Usage{Input: 1_000_000, Cached: 1_000_000}, 75_000_000},
		{Usage{Input: 1000, Output: 500, Cached: 400}, 90_000 + 30_000 + 300_000},
		{Usage{Input: 7, Output: 3}, 1050 + 1800},
		{Usage{Input: 1 << 62, Output: 1 << 62}, 1<<63 - 1},
	} {
		if got := p.Cost(tc.u); got != tc.want {
			t.Errorf("Cost(%+v) = %d, want %d", tc.u, got, tc.want)
		}
	}
	// Fractions of a nano-USD are summed first and rounded once.
	tiny := Price{Input: 150, Output: 600}
	for _, tc := range []struct {
		u    Usage
		want int64
	}{
		{Usage{Input: 7000, Output: 3000}, 3}, // 1.05 + 1.8 = 2.85
		{Usage{Input: 3000}, 0},               // 0.45
		{Usage{Input: 10_000}, 2},             // 1.5 rounds half up
	} {
		if got := tiny.Cost(tc.u); got != tc.want {
			t.Errorf("tiny Cost(%+v) = %d, want %d", tc.u, got, tc.want)
		}
	}
	// Without a cached price, cached tokens cost the input price.
	if got := (Price{Input: 1_000_000_000}).Cost(Usage{Input: 10, Cached: 10}); got != 10_000 {
		t.Errorf("cached at input price = %d", got)
	}
}

func TestFormatUSD(t *testing.T) {
	t.Parallel()
	for in, want := range map[int64]string{0: "0", 1: "0.000000001", 1500: "0.0000015", 2_500_000_000: "2.5", -3: "-0.000000003",
		12_000_000_001: "12.000000001", math.MinInt64: "-9223372036.854775808"} {
		if got := FormatUSD(in); got != want {
			t.Errorf("FormatUSD(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestDeploymentPricing(t *testing.T) {
	t.Parallel()
	m := ModelConfig{Name: "pub", Pricing: &PricingConfig{InputPerMTok: "1", OutputPerMTok: "2"}}
	for _, tc := range []struct {
		name string
		m    ModelConfig
		dc   DeploymentConfig
		want Price
	}{
		{"deployment's own", m, DeploymentConfig{Model: "gpt-4o", Pricing: &PricingConfig{InputPerMTok: "0.5"}}, Price{Input: 500_000_000}},
		{"group's", m, DeploymentConfig{Model: "gpt-4o"}, Price{Input: 1_000_000_000, Output: 2_000_000_000}},
		{"built-in by longest prefix", ModelConfig{Name: "pub"}, DeploymentConfig{Model: "gpt-4o-mini-2024-07-18"}, Price{Input: 150_000_000, Output: 600_000_000, CachedInput: 75_000_000}},
		{"unknown is free", ModelConfig{Name: "pub"}, DeploymentConfig{Model: "my-llama"}, Price{}},
	} {
		got, err := deploymentPrice(tc.m, tc.dc, tc.dc.Model)
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := DeploymentConfig{Provider: ProviderOpenAI, BaseURL: "http://127.0.0.1:1/v1"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"valid", Config{Models: []ModelConfig{{Name: "a", Deployments: []DeploymentConfig{good}}}}, ""},
		{"no name", Config{Models: []ModelConfig{{Deployments: []DeploymentConfig{good}}}}, "models[0].name: is required"},
		{"duplicate", Config{Models: []ModelConfig{{Name: "a", Deployments: []DeploymentConfig{good}}, {Name: "a", Deployments: []DeploymentConfig{good}}}}, "models[1].name: duplicate"},
		{"no deployments", Config{Models: []ModelConfig{{Name: "a"}}}, "models[0].deployments: needs at least one"},
		{"bad url", Config{Models: []ModelConfig{{Name: "a", Deployments: []DeploymentConfig{good, {Provider: ProviderOpenAI, BaseURL: "ftp://x"}}}}}, "models[0].deployments[1].base_url: must be an http(s) URL"},
		{"bad provider", Config{Models: []ModelConfig{{Name: "a", Deployments: []DeploymentConfig{{Provider: "gemini", BaseURL: "http://x"}}}}}, "models[0].deployments[0].provider: unknown provider"},
		{"azure needs deployment", Config{Models: []ModelConfig{{Name: "a", Deployments: []DeploymentConfig{{Provider: ProviderAzure, BaseURL: "https://x", APIVersion: "v"}}}}}, "models[0].deployments[0].deployment: is required"},
		{"unknown fallback", Config{Models: []ModelConfig{{Name: "a", Deployments: []DeploymentConfig{good}, Fallbacks: []string{"b"}}}}, "models[0].fallbacks[0]: unknown model"},
		{"self fallback", Config{Models: []ModelConfig{{Name: "a", Deployments: []DeploymentConfig{good}, ContextWindowFallbacks: []string{"a"}}}}, "models[0].context_window_fallbacks[0]: a model cannot fall back to itself"},
		{"bad price", Config{Models: []ModelConfig{{Name: "a", Deployments: []DeploymentConfig{good}, Pricing: &PricingConfig{OutputPerMTok: "0.1234567891"}}}}, "models[0].pricing.output_per_mtok"},
		{"bad strategy", Config{Router: RouterConfig{Strategy: "fastest"}}, "router.strategy"},
		{"negative timeout", Config{Router: RouterConfig{Timeout: -time.Second}}, "router.timeout: must not be negative"},
		{"negative max_response_bytes", Config{Router: RouterConfig{MaxResponseBytes: -1}}, "router.max_response_bytes: must not be negative"},
		{"reserved header", Config{Models: []ModelConfig{{Name: "a", Deployments: []DeploymentConfig{{Provider: ProviderOpenAI, BaseURL: "http://x", Headers: map[string]string{"Authorization": "x"}}}}}}, "models[0].deployments[0].headers.Authorization"},
		{"max_tokens_field auto", withMaxTokensField(good, MaxTokensFieldAuto), ""},
		{"max_tokens_field max_tokens", withMaxTokensField(good, MaxTokensFieldMaxTokens), ""},
		{"max_tokens_field max_completion_tokens", withMaxTokensField(good, MaxTokensFieldMaxCompletionTokens), ""},
		{"max_tokens_field misspelt", withMaxTokensField(good, "max_completion_token"),
			`models[0].deployments[0].max_tokens_field: unknown value "max_completion_token" (auto, max_tokens or max_completion_tokens)`},
		{"max_tokens_field in capitals", withMaxTokensField(good, "MAX_TOKENS"), "models[0].deployments[0].max_tokens_field: unknown value"},
	} {
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

// withMaxTokensField is a one-group config whose deployment d sets f.
func withMaxTokensField(d DeploymentConfig, f MaxTokensField) Config {
	d.MaxTokensField = f
	return Config{Models: []ModelConfig{{Name: "a", Deployments: []DeploymentConfig{d}}}}
}
