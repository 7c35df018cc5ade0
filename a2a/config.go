package a2a

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/shopspring/decimal"
)

// Config is the YAML under the top-level `a2a:` key.
type Config struct {
	// PublicURL is the base the rewritten cards point at ("http://gw:8080").
	// Empty: the address the client's connection actually reached (never
	// the Host header, which a client can spoof).
	PublicURL string        `yaml:"public_url" mapstructure:"public_url"`
	Agents    []AgentConfig `yaml:"agents" mapstructure:"agents"`
	// TaskTTL is how long the gateway remembers which key owns a task.
	TaskTTL time.Duration `yaml:"task_ttl" mapstructure:"task_ttl"`
	// MaxTasks bounds the ownership map; the oldest entries go first.
	MaxTasks int `yaml:"max_tasks" mapstructure:"max_tasks"`
	// StreamKeepAlive is how often an idle stream writes an SSE comment.
	// Writing is how the gateway notices a client that went away (and then
	// closes the upstream stream), and it keeps idle-timeout proxies from
	// cutting long tasks. Default 15s.
	StreamKeepAlive time.Duration `yaml:"stream_keepalive" mapstructure:"stream_keepalive"`
	// MaxResponseBytes bounds one agent answer: a JSON body, or one event of
	// a stream. A larger one fails the call. 0: 16 MiB.
	MaxResponseBytes int64 `yaml:"max_response_bytes" mapstructure:"max_response_bytes"`
}

// AgentConfig is one upstream agent, known by its card URL or an inline card.
type AgentConfig struct {
	Name    string `yaml:"name" mapstructure:"name"`
	CardURL string `yaml:"card_url" mapstructure:"card_url"`
	// Card is an inline agent card (a YAML mapping or a JSON string).
	Card any `yaml:"card" mapstructure:"card"`
	// Headers go to the upstream on every call and card fetch (e.g. its auth).
	Headers map[string]string `yaml:"headers" mapstructure:"headers"`
	// CostPerCallUSD is charged per message sent, as an exact decimal.
	CostPerCallUSD string `yaml:"cost_per_call_usd" mapstructure:"cost_per_call_usd"`
	// Refresh is the card re-fetch interval (card_url agents only).
	Refresh time.Duration `yaml:"refresh" mapstructure:"refresh"`
	// Timeout bounds one non-streaming upstream call; streams have no total
	// timeout and end when either side closes.
	Timeout time.Duration `yaml:"timeout" mapstructure:"timeout"`
	// PushNotifications lets callers register push notification webhooks
	// with the agent. Off by default: the agent, not the gateway, calls the
	// webhook URL a caller chose, from the agent's own network, so the
	// gateway neither checks nor records those calls.
	PushNotifications bool `yaml:"push_notifications" mapstructure:"push_notifications"`
}

const (
	defaultRefresh   = 5 * time.Minute
	defaultTimeout   = 5 * time.Minute
	defaultTaskTTL   = 24 * time.Hour
	defaultMaxTasks  = 100_000
	defaultKeepAlive = 15 * time.Second
	defaultMaxAnswer = 16 << 20
)

// Agent names appear in URL paths, span names and ACL globs.
var agentNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// Validate names the first bad field by its YAML path.
func (c Config) Validate() error {
	if c.PublicURL != "" {
		if err := checkHTTPURL(c.PublicURL); err != nil {
			return fmt.Errorf("a2a.public_url: %w", err)
		}
	}
	if c.TaskTTL < 0 {
		return errors.New("a2a.task_ttl: must not be negative")
	}
	if c.StreamKeepAlive < 0 {
		return errors.New("a2a.stream_keepalive: must not be negative")
	}
	if c.MaxTasks < 0 {
		return errors.New("a2a.max_tasks: must not be negative")
	}
	if c.MaxResponseBytes < 0 {
		return errors.New("a2a.max_response_bytes: must not be negative")
	}
	seen := make(map[string]int, len(c.Agents))
	for i, a := range c.Agents {
		path := fmt.Sprintf("a2a.agents[%d]", i)
		if err := a.validate(path); err != nil {
			return err
		}
		if j, dup := seen[a.Name]; dup {
			return fmt.Errorf("%s.name: %q already used by a2a.agents[%d]", path, a.Name, j)
		}
		seen[a.Name] = i
	}
	return nil
}

func (a AgentConfig) validate(path string) error {
	if !agentNameRE.MatchString(a.Name) {
		return fmt.Errorf("%s.name: must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit", path)
	}
	switch {
	case a.CardURL == "" && a.Card == nil:
		return fmt.Errorf("%s: one of card_url or card is required", path)
	case a.CardURL != "" && a.Card != nil:
		return fmt.Errorf("%s: card_url and card are mutually exclusive", path)
	case a.CardURL != "":
		if err := checkHTTPURL(a.CardURL); err != nil {
			return fmt.Errorf("%s.card_url: %w", path, err)
		}
	default:
		raw, err := a.inlineCardJSON()
		if err != nil {
			return fmt.Errorf("%s.card: %w", path, err)
		}
		if _, err := parseCard(raw); err != nil {
			return fmt.Errorf("%s.card: %w", path, err)
		}
	}
	for name := range a.Headers {
		if !headerNameRE.MatchString(name) {
			// The value may be a secret: only the name goes in the error.
			return fmt.Errorf("%s.headers: %q is not a valid header name", path, name)
		}
	}
	if _, err := parseUSD(a.CostPerCallUSD); err != nil {
		return fmt.Errorf("%s.cost_per_call_usd: %w", path, err)
	}
	if a.Refresh != 0 && a.Refresh < time.Second {
		return fmt.Errorf("%s.refresh: must be at least 1s", path)
	}
	if a.Timeout < 0 {
		return fmt.Errorf("%s.timeout: must not be negative", path)
	}
	return nil
}

// inlineCardJSON accepts the card as YAML decoded it (a mapping) or as a
// JSON string.
func (a AgentConfig) inlineCardJSON() ([]byte, error) {
	switch v := a.Card.(type) {
	case string:
		if !json.Valid([]byte(v)) {
			return nil, errors.New("not valid JSON")
		}
		return []byte(v), nil
	case []byte:
		if !json.Valid(v) {
			return nil, errors.New("not valid JSON")
		}
		return v, nil
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("not representable as JSON: %w", err)
		}
		return raw, nil
	}
}

func (c Config) streamKeepAlive() time.Duration {
	if c.StreamKeepAlive > 0 {
		return c.StreamKeepAlive
	}
	return defaultKeepAlive
}

func (c Config) maxResponseBytes() int64 {
	if c.MaxResponseBytes > 0 {
		return c.MaxResponseBytes
	}
	return defaultMaxAnswer
}

func (a AgentConfig) refresh() time.Duration {
	if a.Refresh > 0 {
		return a.Refresh
	}
	return defaultRefresh
}

func (a AgentConfig) timeout() time.Duration {
	if a.Timeout > 0 {
		return a.Timeout
	}
	return defaultTimeout
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http(s) URL")
	}
	if u.User != nil {
		return errors.New("must not carry credentials (use headers)")
	}
	return nil
}

// parseUSD turns a decimal USD amount into exact nano-USD; "" is zero.
func parseUSD(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return 0, errors.New("must be a decimal number of USD")
	}
	if d.IsNegative() {
		return 0, errors.New("must not be negative")
	}
	nano := d.Shift(9)
	if !nano.Equal(nano.Truncate(0)) {
		return 0, errors.New("must have at most 9 decimal places (nano-USD)")
	}
	if nano.GreaterThan(decimal.NewFromInt(1 << 62)) {
		return 0, errors.New("too large")
	}
	return nano.IntPart(), nil
}
