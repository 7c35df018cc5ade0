package llm

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is the LLM gateway's part of the YAML: the top-level `models:` list
// and the `router:` block.
type Config struct {
	Models []ModelConfig `yaml:"models" mapstructure:"models"`
	Router RouterConfig  `yaml:"router" mapstructure:"router"`
}

// ModelConfig is one public model name (a model group) and the deployments
// that serve it.
type ModelConfig struct {
	Name                   string             `yaml:"name" mapstructure:"name"`
	Strategy               Strategy           `yaml:"strategy" mapstructure:"strategy"`
	Deployments            []DeploymentConfig `yaml:"deployments" mapstructure:"deployments"`
	Fallbacks              []string           `yaml:"fallbacks" mapstructure:"fallbacks"`
	ContextWindowFallbacks []string           `yaml:"context_window_fallbacks" mapstructure:"context_window_fallbacks"`
	// Pricing applies to every deployment of the group that has none of its own.
	Pricing *PricingConfig `yaml:"pricing" mapstructure:"pricing"`
}

// DeploymentConfig is one upstream that can serve a model group.
type DeploymentConfig struct {
	Provider Provider `yaml:"provider" mapstructure:"provider"`
	BaseURL  string   `yaml:"base_url" mapstructure:"base_url"`
	// Model is the upstream's model name; empty means the group's name.
	Model  string `yaml:"model" mapstructure:"model"`
	APIKey string `yaml:"api_key" mapstructure:"api_key"`
	// Deployment and APIVersion address an Azure OpenAI deployment.
	Deployment  string         `yaml:"deployment" mapstructure:"deployment"`
	APIVersion  string         `yaml:"api_version" mapstructure:"api_version"`
	Weight      int            `yaml:"weight" mapstructure:"weight"`
	Timeout     time.Duration  `yaml:"timeout" mapstructure:"timeout"`
	MaxParallel int            `yaml:"max_parallel" mapstructure:"max_parallel"`
	Pricing     *PricingConfig `yaml:"pricing" mapstructure:"pricing"`
	// Headers are sent on every request to this deployment (e.g. OpenRouter's
	// HTTP-Referer); they cannot replace the credential or tracing headers.
	Headers map[string]string `yaml:"headers" mapstructure:"headers"`
	// MaxTokensField overrides the model-name guess for an Anthropic
	// request's max_tokens; empty means auto.
	MaxTokensField MaxTokensField `yaml:"max_tokens_field" mapstructure:"max_tokens_field"`
}

// PricingConfig holds USD prices per million tokens. They are strings so that
// "0.15" (or a YAML number, which the decoders hand over as its shortest text)
// is parsed exactly, never through a float.
type PricingConfig struct {
	InputPerMTok       string `yaml:"input_per_mtok" mapstructure:"input_per_mtok"`
	OutputPerMTok      string `yaml:"output_per_mtok" mapstructure:"output_per_mtok"`
	CachedInputPerMTok string `yaml:"cached_input_per_mtok" mapstructure:"cached_input_per_mtok"`
	// Anthropic bills prompt cache writes above plain input: 5-minute ones and 1-hour ones at their own prices.
	CacheWritePerMTok   string `yaml:"cache_write_per_mtok" mapstructure:"cache_write_per_mtok"`
	CacheWrite1hPerMTok string `yaml:"cache_write_1h_per_mtok" mapstructure:"cache_write_1h_per_mtok"`
	// LongPrompt prices every token of a call whose prompt is longer than its AboveTokens, as Anthropic bills
	// Sonnet 4 and 4.5 over 200K tokens.
	LongPrompt *LongPromptPricing `yaml:"long_prompt" mapstructure:"long_prompt"`
}

// LongPromptPricing is a dearer tier of PricingConfig for long prompts; its unset cache prices follow the same
// rules as the base tier's.
type LongPromptPricing struct {
	AboveTokens         int64  `yaml:"above_tokens" mapstructure:"above_tokens"`
	InputPerMTok        string `yaml:"input_per_mtok" mapstructure:"input_per_mtok"`
	OutputPerMTok       string `yaml:"output_per_mtok" mapstructure:"output_per_mtok"`
	CachedInputPerMTok  string `yaml:"cached_input_per_mtok" mapstructure:"cached_input_per_mtok"`
	CacheWritePerMTok   string `yaml:"cache_write_per_mtok" mapstructure:"cache_write_per_mtok"`
	CacheWrite1hPerMTok string `yaml:"cache_write_1h_per_mtok" mapstructure:"cache_write_1h_per_mtok"`
}

// RouterConfig holds the defaults every model group uses.
type RouterConfig struct {
	Strategy Strategy `yaml:"strategy" mapstructure:"strategy"`
	// Retries is the number of extra attempts within one model group.
	Retries int `yaml:"retries" mapstructure:"retries"`
	// AllowedFails consecutive failures put a deployment in cooldown.
	AllowedFails int           `yaml:"allowed_fails" mapstructure:"allowed_fails"`
	Cooldown     time.Duration `yaml:"cooldown" mapstructure:"cooldown"`
	// Timeout bounds a non-streamed upstream call, and a streamed one until
	// its response headers; deployments may override it.
	Timeout time.Duration `yaml:"timeout" mapstructure:"timeout"`
	// StreamIdleTimeout is the longest gap between two reads of a stream.
	StreamIdleTimeout time.Duration `yaml:"stream_idle_timeout" mapstructure:"stream_idle_timeout"`
	// RetryBackoff is the base of the jittered exponential backoff.
	RetryBackoff time.Duration `yaml:"retry_backoff" mapstructure:"retry_backoff"`
	// MaxBodyBytes caps request bodies; larger ones get 413.
	MaxBodyBytes int `yaml:"max_body_bytes" mapstructure:"max_body_bytes"`
	// MaxResponseBytes caps what the gateway reads of one upstream reply, or
	// of one event of a streamed reply; a larger one fails the attempt.
	MaxResponseBytes int `yaml:"max_response_bytes" mapstructure:"max_response_bytes"`
}

// Provider names an upstream dialect.
type Provider string

// Providers the gateway speaks.
const (
	ProviderOpenAI    Provider = "openai"
	ProviderAzure     Provider = "azure"
	ProviderAnthropic Provider = "anthropic"
)

// Strategy picks a deployment within a model group.
type Strategy string

// Routing strategies.
const (
	StrategyWeighted      Strategy = "weighted"
	StrategyLeastBusy     Strategy = "least-busy"
	StrategyLowestLatency Strategy = "lowest-latency"
	StrategyLowestCost    Strategy = "lowest-cost"
)

// MaxTokensField names the OpenAI field that carries an Anthropic request's
// max_tokens to an openai or azure deployment. auto goes by the upstream
// model's name, which cannot tell a reasoning model behind an Azure
// deployment name or a server's alias; the other two say it outright.
type MaxTokensField string

// Values of max_tokens_field.
const (
	MaxTokensFieldAuto                MaxTokensField = "auto"
	MaxTokensFieldMaxTokens           MaxTokensField = "max_tokens"
	MaxTokensFieldMaxCompletionTokens MaxTokensField = "max_completion_tokens"
)

const (
	defaultAllowedFails = 3
	defaultCooldown     = 30 * time.Second
	defaultTimeout      = 60 * time.Second
	defaultIdleTimeout  = 30 * time.Second
	defaultBackoff      = 100 * time.Millisecond
	defaultMaxBody      = 8 << 20
	// Room for a full batch of large embeddings (2,048 inputs of 1,536
	// floats as JSON text is about 60 MB).
	defaultMaxResponse  = 64 << 20
	defaultAnthropicVer = "2023-06-01"
)

// withDefaults fills zero values; negative values stay so Validate rejects them.
func (r RouterConfig) withDefaults() RouterConfig {
	if r.Strategy == "" {
		r.Strategy = StrategyWeighted
	}
	if r.AllowedFails == 0 {
		r.AllowedFails = defaultAllowedFails
	}
	if r.Cooldown == 0 {
		r.Cooldown = defaultCooldown
	}
	if r.Timeout == 0 {
		r.Timeout = defaultTimeout
	}
	if r.StreamIdleTimeout == 0 {
		r.StreamIdleTimeout = defaultIdleTimeout
	}
	if r.RetryBackoff == 0 {
		r.RetryBackoff = defaultBackoff
	}
	if r.MaxBodyBytes == 0 {
		r.MaxBodyBytes = defaultMaxBody
	}
	if r.MaxResponseBytes == 0 {
		r.MaxResponseBytes = defaultMaxResponse
	}
	return r
}

func (s Strategy) valid() bool {
	switch s {
	case StrategyWeighted, StrategyLeastBusy, StrategyLowestLatency, StrategyLowestCost:
		return true
	}
	return false
}

func (f MaxTokensField) valid() bool {
	switch f {
	case MaxTokensFieldAuto, MaxTokensFieldMaxTokens, MaxTokensFieldMaxCompletionTokens:
		return true
	}
	return false
}

// Validate checks the whole block and names the first bad field by its path.
func (c Config) Validate() error {
	var errs []error
	bad := func(path, msg string) { errs = append(errs, fmt.Errorf("%s: %s", path, msg)) }
	r := c.Router
	if r.Strategy != "" && !r.Strategy.valid() {
		bad("router.strategy", "must be one of weighted, least-busy, lowest-latency, lowest-cost")
	}
	for name, v := range map[string]time.Duration{"cooldown": r.Cooldown, "timeout": r.Timeout, "stream_idle_timeout": r.StreamIdleTimeout, "retry_backoff": r.RetryBackoff} {
		if v < 0 {
			bad("router."+name, "must not be negative")
		}
	}
	if r.Retries < 0 {
		bad("router.retries", "must not be negative")
	}
	if r.AllowedFails < 0 {
		bad("router.allowed_fails", "must not be negative")
	}
	if r.MaxBodyBytes < 0 {
		bad("router.max_body_bytes", "must not be negative")
	}
	if r.MaxResponseBytes < 0 {
		bad("router.max_response_bytes", "must not be negative")
	}
	names := make(map[string]bool, len(c.Models))
	for i, m := range c.Models {
		p := fmt.Sprintf("models[%d]", i)
		switch {
		case m.Name == "":
			bad(p+".name", "is required")
		case names[m.Name]:
			bad(p+".name", fmt.Sprintf("duplicate model name %q", m.Name))
		}
		names[m.Name] = true
		if m.Strategy != "" && !m.Strategy.valid() {
			bad(p+".strategy", "must be one of weighted, least-busy, lowest-latency, lowest-cost")
		}
		if len(m.Deployments) == 0 {
			bad(p+".deployments", "needs at least one deployment")
		}
		if m.Pricing != nil {
			if _, err := m.Pricing.parse(""); err != nil {
				bad(p+".pricing."+err.field, err.msg)
			}
		}
		for j, d := range m.Deployments {
			validateDeployment(fmt.Sprintf("%s.deployments[%d]", p, j), d, bad)
		}
	}
	for i, m := range c.Models {
		for j, f := range m.Fallbacks {
			if !names[f] {
				bad(fmt.Sprintf("models[%d].fallbacks[%d]", i, j), fmt.Sprintf("unknown model %q", f))
			} else if f == m.Name {
				bad(fmt.Sprintf("models[%d].fallbacks[%d]", i, j), "a model cannot fall back to itself")
			}
		}
		for j, f := range m.ContextWindowFallbacks {
			if !names[f] {
				bad(fmt.Sprintf("models[%d].context_window_fallbacks[%d]", i, j), fmt.Sprintf("unknown model %q", f))
			} else if f == m.Name {
				bad(fmt.Sprintf("models[%d].context_window_fallbacks[%d]", i, j), "a model cannot fall back to itself")
			}
		}
	}
	return errors.Join(errs...)
}

func validateDeployment(p string, d DeploymentConfig, bad func(path, msg string)) {
	switch d.Provider {
	case ProviderOpenAI, ProviderAnthropic:
	case ProviderAzure:
		if d.Deployment == "" {
			bad(p+".deployment", "is required for provider azure")
		}
		if d.APIVersion == "" {
			bad(p+".api_version", "is required for provider azure")
		}
	case "":
		bad(p+".provider", "is required (openai, azure or anthropic)")
	default:
		bad(p+".provider", fmt.Sprintf("unknown provider %q (openai, azure or anthropic)", d.Provider))
	}
	u, err := url.Parse(d.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		bad(p+".base_url", "must be an http(s) URL without query")
	}
	if d.Weight < 0 {
		bad(p+".weight", "must not be negative")
	}
	if d.Timeout < 0 {
		bad(p+".timeout", "must not be negative")
	}
	if d.MaxParallel < 0 {
		bad(p+".max_parallel", "must not be negative")
	}
	if d.MaxTokensField != "" && !d.MaxTokensField.valid() {
		bad(p+".max_tokens_field", fmt.Sprintf("unknown value %q (auto, max_tokens or max_completion_tokens)", d.MaxTokensField))
	}
	if strings.ContainsAny(d.APIKey, "\r\n") {
		bad(p+".api_key", "must not contain line breaks")
	}
	if d.Pricing != nil {
		if _, err := d.Pricing.parse(d.Provider); err != nil {
			bad(p+".pricing."+err.field, err.msg)
		}
	}
	for name, v := range d.Headers {
		switch strings.ToLower(name) {
		case "authorization", "api-key", "x-api-key", "traceparent", "tracestate", "host", "content-length", "content-type":
			bad(p+".headers."+name, "is set by the gateway")
		}
		if name == "" || strings.ContainsAny(name+v, "\r\n") || strings.ContainsAny(name, " :") {
			bad(p+".headers."+name, "is not a valid header")
		}
	}
}
