// Package mcp is the MCP gateway: it federates upstream MCP servers (Streamable
// HTTP, the older HTTP+SSE transport and stdio subprocesses) behind /mcp and
// /mcp/<server>, with per-key tool filtering, governance and one span per tool
// call.
package mcp

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Defaults applied by Config.withDefaults.
const (
	DefaultTimeout         = 30 * time.Second
	DefaultHealthInterval  = 15 * time.Second
	DefaultMaxMessageBytes = 4 << 20
	// DefaultMaxResponseBytes is far above any tool result a model can use,
	// and low enough that a runaway upstream cannot exhaust memory.
	DefaultMaxResponseBytes = 16 << 20
	DefaultPageSize         = 100
)

// nameSeparator joins a server and an item name in the federated view.
const nameSeparator = "__"

var serverNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Config is the YAML under the top-level `mcp:` key.
type Config struct {
	Servers []ServerConfig `yaml:"servers" mapstructure:"servers"`
	// MaxMessageBytes caps a client's JSON-RPC message; larger bodies get 413.
	MaxMessageBytes int64 `yaml:"max_message_bytes" mapstructure:"max_message_bytes"`
	// MaxResponseBytes caps one upstream answer: a JSON body, one event of
	// an SSE stream, or one line (message) of a stdio server. A larger one
	// fails the call; a stdio server is restarted.
	MaxResponseBytes int64 `yaml:"max_response_bytes" mapstructure:"max_response_bytes"`
	// PageSize is how many items one list page holds (cursor pagination).
	PageSize int `yaml:"page_size" mapstructure:"page_size"`
	// PublicURL is the gateway's external base URL (e.g. https://gw.example.com),
	// used in the OAuth protected-resource metadata and WWW-Authenticate. When
	// empty the address the client's connection arrived on is used, never the
	// Host header.
	PublicURL string `yaml:"public_url" mapstructure:"public_url"`
	// AuthorizationServers are advertised in the protected-resource metadata.
	AuthorizationServers []string `yaml:"authorization_servers" mapstructure:"authorization_servers"`
}

// Transports of a url server.
const (
	TransportStreamableHTTP = "streamable_http"
	TransportSSE            = "sse" // the HTTP+SSE transport of protocol 2024-11-05
)

// ServerConfig declares one upstream MCP server: exactly one of URL
// (Streamable HTTP, or HTTP+SSE with transport: sse) and Command (stdio
// subprocess).
type ServerConfig struct {
	Name string `yaml:"name" mapstructure:"name"`
	URL  string `yaml:"url" mapstructure:"url"`
	// Transport of a url server: streamable_http (default) or sse, where URL
	// is the server's SSE endpoint (e.g. http://host/sse).
	Transport string            `yaml:"transport" mapstructure:"transport"`
	Command   []string          `yaml:"command" mapstructure:"command"`
	Env       map[string]string `yaml:"env" mapstructure:"env"`
	// Headers are sent on every request to an HTTP upstream (e.g. its API key).
	Headers map[string]string `yaml:"headers" mapstructure:"headers"`
	// ForwardClientHeader passes the client's x-mcp-<name>-authorization header
	// on as Authorization, overriding a static Authorization header.
	ForwardClientHeader bool `yaml:"forward_client_header" mapstructure:"forward_client_header"`
	// CostPerCallUSD is booked for every answered tool call ("0.001").
	CostPerCallUSD string `yaml:"cost_per_call_usd" mapstructure:"cost_per_call_usd"`
	// ToolCostsUSD overrides CostPerCallUSD per tool (original tool name).
	ToolCostsUSD map[string]string `yaml:"tool_costs_usd" mapstructure:"tool_costs_usd"`
	// Timeout bounds one request to the upstream.
	Timeout time.Duration `yaml:"timeout" mapstructure:"timeout"`
	// HealthInterval is how often a connected upstream is re-listed; a
	// failure reconnects (HTTP) or restarts the process (stdio).
	HealthInterval time.Duration `yaml:"health_interval" mapstructure:"health_interval"`
	// ClientRequests declares elicitation and sampling to a 2025-11-25
	// Streamable HTTP server, and passes those requests, sent during a tool
	// call, to the client that made the call. Off, the server is told the
	// client supports neither, so a server that can do without them does.
	ClientRequests bool `yaml:"client_requests" mapstructure:"client_requests"`
}

// Validate checks the config and names the first bad field by its path.
func (c *Config) Validate() error {
	if c.MaxMessageBytes < 0 {
		return errors.New("mcp.max_message_bytes: must not be negative")
	}
	if c.MaxResponseBytes < 0 {
		return errors.New("mcp.max_response_bytes: must not be negative")
	}
	if c.PageSize < 0 {
		return errors.New("mcp.page_size: must not be negative")
	}
	if c.PublicURL != "" {
		if err := checkHTTPURL(c.PublicURL); err != nil {
			return fmt.Errorf("mcp.public_url: %w", err)
		}
	}
	for i, a := range c.AuthorizationServers {
		if err := checkHTTPURL(a); err != nil {
			return fmt.Errorf("mcp.authorization_servers[%d]: %w", i, err)
		}
	}
	seen := make(map[string]int, len(c.Servers))
	for i := range c.Servers {
		s := &c.Servers[i]
		path := fmt.Sprintf("mcp.servers[%d]", i)
		if err := s.validate(path); err != nil {
			return err
		}
		if j, dup := seen[s.Name]; dup {
			return fmt.Errorf("%s.name: %q already used by mcp.servers[%d]", path, s.Name, j)
		}
		seen[s.Name] = i
	}
	return nil
}

func (s *ServerConfig) validate(path string) error {
	switch {
	case !serverNameRE.MatchString(s.Name):
		return fmt.Errorf("%s.name: %q must be 1-63 chars of [a-z0-9-], starting with a letter or digit", path, s.Name)
	case s.URL == "" && len(s.Command) == 0:
		return fmt.Errorf("%s: one of url or command is required", path)
	case s.URL != "" && len(s.Command) > 0:
		return fmt.Errorf("%s: url and command are mutually exclusive", path)
	case s.Timeout < 0:
		return fmt.Errorf("%s.timeout: must not be negative", path)
	case s.HealthInterval < 0:
		return fmt.Errorf("%s.health_interval: must not be negative", path)
	}
	if s.URL != "" {
		if err := checkHTTPURL(s.URL); err != nil {
			return fmt.Errorf("%s.url: %w", path, err)
		}
	}
	if len(s.Command) > 0 && s.Command[0] == "" {
		return fmt.Errorf("%s.command[0]: must name a program", path)
	}
	if s.URL == "" && len(s.Headers) > 0 {
		return fmt.Errorf("%s.headers: only for url servers", path)
	}
	if s.Transport != "" && s.URL == "" {
		return fmt.Errorf("%s.transport: only for url servers", path)
	}
	switch s.Transport {
	case "", TransportStreamableHTTP, TransportSSE:
	default:
		return fmt.Errorf("%s.transport: must be %s or %s", path, TransportStreamableHTTP, TransportSSE)
	}
	if s.URL != "" && len(s.Env) > 0 {
		return fmt.Errorf("%s.env: only for command servers", path)
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%s.env: invalid variable name %q", path, k)
		}
	}
	for k, v := range s.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") || strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("%s.headers: invalid header %q", path, k)
		}
	}
	if _, err := parseUSD(s.CostPerCallUSD); err != nil {
		return fmt.Errorf("%s.cost_per_call_usd: %w", path, err)
	}
	for tool, v := range s.ToolCostsUSD {
		if _, err := parseUSD(v); err != nil {
			return fmt.Errorf("%s.tool_costs_usd.%s: %w", path, tool, err)
		}
	}
	return nil
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http(s) URL")
	}
	return nil
}

// parseUSD turns an exact decimal USD amount into nano-USD; "" is zero.
func parseUSD(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	d, err := decimal.NewFromString(strings.TrimSpace(v))
	if err != nil {
		return 0, errors.New("must be a decimal USD amount")
	}
	if d.IsNegative() {
		return 0, errors.New("must not be negative")
	}
	nano := d.Shift(9)
	if !nano.IsInteger() {
		return 0, errors.New("finer than one nano-USD")
	}
	if nano.GreaterThan(decimal.NewFromInt(math.MaxInt64)) {
		return 0, errors.New("too large")
	}
	return nano.IntPart(), nil
}

// withDefaults returns a copy with zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxResponseBytes == 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	servers := make([]ServerConfig, len(c.Servers))
	for i, s := range c.Servers {
		if s.Timeout == 0 {
			s.Timeout = DefaultTimeout
		}
		if s.HealthInterval == 0 {
			s.HealthInterval = DefaultHealthInterval
		}
		servers[i] = s
	}
	c.Servers = servers
	return c
}

// costs holds a server's validated prices in nano-USD.
type costs struct {
	perCall int64
	perTool map[string]int64
}

func (s *ServerConfig) costs() costs {
	c := costs{perTool: make(map[string]int64, len(s.ToolCostsUSD))}
	c.perCall, _ = parseUSD(s.CostPerCallUSD)
	for tool, v := range s.ToolCostsUSD {
		c.perTool[tool], _ = parseUSD(v)
	}
	return c
}

func (c costs) of(tool string) int64 {
	if v, ok := c.perTool[tool]; ok {
		return v
	}
	return c.perCall
}

// envList renders Env as KEY=VALUE pairs in a stable order.
func (s *ServerConfig) envList() []string {
	out := make([]string, 0, len(s.Env))
	for k, v := range s.Env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// sameConnection reports whether two configs would open the same upstream
// connection; Reload keeps a server whose connection is unchanged.
func (s *ServerConfig) sameConnection(o *ServerConfig) bool {
	return s.URL == o.URL && s.transport() == o.transport() &&
		strings.Join(s.Command, "\x00") == strings.Join(o.Command, "\x00") &&
		strings.Join(s.envList(), "\x00") == strings.Join(o.envList(), "\x00") &&
		mapsEqual(s.Headers, o.Headers) &&
		s.ForwardClientHeader == o.ForwardClientHeader &&
		s.HealthInterval == o.HealthInterval
}

// transport is the effective transport of a url server.
func (s *ServerConfig) transport() string {
	if s.Transport == "" {
		return TransportStreamableHTTP
	}
	return s.Transport
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
