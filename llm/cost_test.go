package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
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
	// Anthropic's cache writes: claude-3-7-sonnet's $3 input, $0.30 reads, $3.75 5-minute and $6 1-hour writes.
	sonnet, _ := builtinPrice("claude-3-7-sonnet-20250219")
	for _, tc := range []struct {
		name string
		u    Usage
		want int64
	}{
		{"plain", Usage{Input: 1_000_000}, 3_000_000_000},
		{"every kind", Usage{Input: 4_000_000, Cached: 1_000_000, CacheWrite: 1_000_000, CacheWrite1h: 1_000_000},
			3_000_000_000 + 300_000_000 + 3_750_000_000 + 6_000_000_000},
		// Parts that claim more than the prompt bill no more than the prompt's tokens.
		{"parts over the prompt", Usage{Input: 1_000_000, Cached: 600_000, CacheWrite: 600_000}, 180_000_000 + 1_500_000_000},
		{"negative parts", Usage{Input: 1_000_000, Cached: -5, CacheWrite1h: -5}, 3_000_000_000},
	} {
		if got := sonnet.Cost(tc.u); got != tc.want {
			t.Errorf("%s: Cost(%+v) = %d, want %d", tc.name, tc.u, got, tc.want)
		}
	}
	// Sonnet 4 and 4.5 bill every token of a call whose prompt, cache reads and writes included, is over 200K tokens
	// at $6 in, $22.50 out, $0.60 reads, $7.50 and $12 writes.
	for _, model := range []string{"claude-sonnet-4-20250514", "claude-sonnet-4-5-20250929"} {
		long, _ := builtinPrice(model)
		for _, tc := range []struct {
			name string
			u    Usage
			want int64
		}{
			{"at the threshold", Usage{Input: 200_000, Output: 1000}, 600_000_000 + 15_000_000},
			{"one over", Usage{Input: 200_001, Output: 1000}, 1_200_006_000 + 22_500_000},
			{"over through the cache", Usage{Input: 300_000, Cached: 100_000, CacheWrite: 100_000, CacheWrite1h: 50_000, Output: 1000},
				300_000_000 + 60_000_000 + 750_000_000 + 600_000_000 + 22_500_000},
		} {
			if got := long.Cost(tc.u); got != tc.want {
				t.Errorf("%s %s: Cost(%+v) = %d, want %d", model, tc.name, tc.u, got, tc.want)
			}
		}
	}
}

func TestAnthropicCacheWrites(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, usage string
		want        Usage
	}{
		{"no cache", `{"input_tokens":10,"output_tokens":5}`, Usage{Input: 10, Output: 5}},
		{"writes without a split are 5-minute ones", `{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":100,"cache_creation_input_tokens":1000}`,
			Usage{Input: 1110, Output: 5, Cached: 100, CacheWrite: 1000}},
		{"split by lifetime", `{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":1000,"cache_creation":{"ephemeral_5m_input_tokens":400,"ephemeral_1h_input_tokens":600}}`,
			Usage{Input: 1010, Output: 5, CacheWrite: 400, CacheWrite1h: 600}},
		{"a 1-hour count over the total is capped", `{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":100,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":600}}`,
			Usage{Input: 110, Output: 5, CacheWrite1h: 100}},
	} {
		got, err := anthropicUsageOf([]byte(`{"usage":` + tc.usage + `}`))
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, err := anthropicUsageOf([]byte(`{"usage":{"input_tokens":1,"output_tokens":1,"cache_creation":{"ephemeral_1h_input_tokens":-9}}}`)); err == nil {
		t.Error("a negative 1-hour write count was taken")
	}
	// A stream's counts come from message_start and are completed by message_delta.
	var tr anthropicUsageTracker
	for _, ev := range []string{
		`{"type":"message_start","message":{"usage":{"input_tokens":10,"output_tokens":1,"cache_creation_input_tokens":1000,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":1000}}}}`,
		`{"type":"message_delta","usage":{"output_tokens":7}}`,
	} {
		var e anthropicEvent
		if err := json.Unmarshal([]byte(ev), &e); err != nil {
			t.Fatal(err)
		}
		tr.observe(&e)
	}
	if got, want := tr.u.usage(), (Usage{Input: 1010, Output: 7, CacheWrite1h: 1000}); got != want {
		t.Errorf("stream usage %+v, want %+v", got, want)
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
		{"explicitly free", m, DeploymentConfig{Model: "my-llama", Pricing: &PricingConfig{InputPerMTok: "0"}}, Price{}},
		{"built-in, OpenAI snapshot", ModelConfig{Name: "pub"}, DeploymentConfig{Model: "gpt-4o-mini-2024-07-18"}, Price{Input: 150_000_000, Output: 600_000_000, CachedInput: 75_000_000}},
		{"built-in, exact", ModelConfig{Name: "pub"}, DeploymentConfig{Model: "gpt-4o-mini"}, Price{Input: 150_000_000, Output: 600_000_000, CachedInput: 75_000_000}},
		{"built-in, gpt-5 snapshot", ModelConfig{Name: "pub"}, DeploymentConfig{Model: "gpt-5-2025-08-07"}, Price{Input: 1_250_000_000, Output: 10_000_000_000, CachedInput: 125_000_000}},
		{"built-in, a snapshot of its own", ModelConfig{Name: "pub"}, DeploymentConfig{Model: "gpt-4o-2024-05-13"}, Price{Input: 5_000_000_000, Output: 15_000_000_000}},
		{"built-in by the group's name", ModelConfig{Name: "gpt-4.1"}, DeploymentConfig{Model: "my-azure-deployment"}, Price{Input: 2_000_000_000, Output: 8_000_000_000, CachedInput: 500_000_000}},
		{"built-in, Anthropic snapshot", ModelConfig{Name: "pub"}, DeploymentConfig{Model: "claude-opus-4-5-20251101"},
			Price{Input: 5_000_000_000, Output: 25_000_000_000, CachedInput: 500_000_000, CacheWrite: 6_250_000_000, CacheWrite1h: 10_000_000_000}},
		{"built-in, -latest", ModelConfig{Name: "pub"}, DeploymentConfig{Model: "claude-3-5-haiku-latest"},
			Price{Input: 800_000_000, Output: 4_000_000_000, CachedInput: 80_000_000, CacheWrite: 1_000_000_000, CacheWrite1h: 1_600_000_000}},
		{"Anthropic's cache write rule for a configured price", ModelConfig{Name: "pub"},
			DeploymentConfig{Provider: ProviderAnthropic, Model: "claude-next", Pricing: &PricingConfig{InputPerMTok: "2", OutputPerMTok: "10"}},
			Price{Input: 2_000_000_000, Output: 10_000_000_000, CacheWrite: 2_500_000_000, CacheWrite1h: 4_000_000_000}},
		{"configured cache writes win", ModelConfig{Name: "pub"},
			DeploymentConfig{Provider: ProviderAnthropic, Model: "claude-next", Pricing: &PricingConfig{InputPerMTok: "2", CacheWritePerMTok: "2.2", CacheWrite1hPerMTok: "3"}},
			Price{Input: 2_000_000_000, CacheWrite: 2_200_000_000, CacheWrite1h: 3_000_000_000}},
	} {
		got, priced, err := deploymentPrice(tc.m, tc.dc, tc.dc.Model)
		if err != nil || !priced || got != tc.want {
			t.Errorf("%s: got %+v, %v, %v; want %+v", tc.name, got, priced, err, tc.want)
		}
	}
	// A newer or bigger model whose name starts with a listed one is not given that one's price: o3-pro costs ten
	// times o3, claude-opus-4-5 a third of claude-opus-4. It is unpriced, and New warns.
	for _, model := range []string{"my-llama", "o3-pro", "o1-pro-2025-03-19", "claude-opus-4-9", "gpt-4o-audio-preview", "gpt-4o-mini-tts", "gpt-5-pro", "gpt-5.4"} {
		if got, priced, err := deploymentPrice(ModelConfig{Name: "pub"}, DeploymentConfig{Model: model}, model); err != nil || priced || got != (Price{}) {
			t.Errorf("%s: got %+v, %v, %v; want unpriced", model, got, priced, err)
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

// TestUnpricedDeploymentsAreNamed: a model without a price costs $0, so no budget limits it; the platform team
// learns it from the log at start and at every reload, not from a dashboard that shows the model as free.
func TestUnpricedDeploymentsAreNamed(t *testing.T) {
	t.Parallel()
	gov, err := governance.New(testGovernance(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := trace.NewRecorder(trace.RecorderConfig{SpillDir: t.TempDir()}, &spanSink{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rec.Close(context.Background()) })
	var logs bytes.Buffer // New and Reload log on this goroutine
	dep := func(model string, pricing *PricingConfig) DeploymentConfig {
		return DeploymentConfig{Provider: ProviderOpenAI, BaseURL: "http://127.0.0.1:1/v1", Model: model, Pricing: pricing}
	}
	cfg := Config{Models: []ModelConfig{
		{Name: "listed", Deployments: []DeploymentConfig{dep("gpt-4o-mini", nil)}},
		{Name: "free-on-purpose", Deployments: []DeploymentConfig{dep("my-llama", &PricingConfig{InputPerMTok: "0"})}},
		{Name: "newer", Deployments: []DeploymentConfig{dep("o3-pro", nil)}},
	}}
	gw, err := New(cfg, Deps{Governor: gov, Tracer: trace.NewTracer(rec), Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	warned := func() []string {
		var models []string
		for line := range strings.Lines(logs.String()) {
			var l struct{ Level, Msg, Model string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Level == "WARN" && strings.Contains(l.Msg, "has no price") {
				models = append(models, l.Model)
			}
		}
		return models
	}
	if got := warned(); !slices.Equal(got, []string{"newer"}) {
		t.Fatalf("warned of %v at start, want [newer]", got)
	}
	cfg.Models = append(cfg.Models, ModelConfig{Name: "self-hosted", Deployments: []DeploymentConfig{dep("qwen3", nil)}})
	if err := gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := warned(); !slices.Equal(got, []string{"newer", "newer", "self-hosted"}) {
		t.Fatalf("warned of %v after the reload, want [newer newer self-hosted]", got)
	}
}

// The budget hold's price for a group must cover each deployment at every prompt length, long-prompt tiers included.
func TestMaxPriceCoversEveryTier(t *testing.T) {
	t.Parallel()
	sonnet4, _ := builtinPrice("claude-sonnet-4-5")
	opus, _ := builtinPrice("claude-opus-4-5")
	cheapLong := Price{Input: 1, Output: 1, Long: &Price{Input: 2, Output: 2}, LongAbove: 100}
	prices := []Price{sonnet4, opus, cheapLong, {Input: 10_000_000_000}}
	for i, a := range prices {
		for j, b := range prices {
			m := a.max(b)
			for _, in := range []int64{1, 100, 101, 200_000, 200_001, 1_000_000} {
				u := Usage{Input: in, Output: 1000, Cached: in / 4, CacheWrite: in / 4, CacheWrite1h: in / 8}
				if got := m.Cost(u); got < a.Cost(u) || got < b.Cost(u) {
					t.Errorf("prices %d and %d, %d tokens in: max costs %d, below %d or %d", i, j, in, got, a.Cost(u), b.Cost(u))
				}
			}
		}
	}
}
