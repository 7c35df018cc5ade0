// Package config loads the gateway's YAML configuration: the file, SWITCHBOARD_* environment overrides and
// env:NAME secret references, checked so that every error names the field and, where it comes from the file,
// its line.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/mcp"
	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// Config is the whole gateway configuration. Each section belongs to the package that uses it; this package
// only composes them and knows where in the file each field came from.
type Config struct {
	Server     ServerConfig      `yaml:"server" mapstructure:"server"`
	Log        LogConfig         `yaml:"log" mapstructure:"log"`
	Models     []llm.ModelConfig `yaml:"models" mapstructure:"models"`
	Router     llm.RouterConfig  `yaml:"router" mapstructure:"router"`
	MCP        mcp.Config        `yaml:"mcp" mapstructure:"mcp"`
	A2A        a2a.Config        `yaml:"a2a" mapstructure:"a2a"`
	Governance governance.Config `yaml:"governance" mapstructure:"governance"`
	Trace      trace.Config      `yaml:"trace" mapstructure:"trace"`
	Storage    storage.Config    `yaml:"storage" mapstructure:"storage"`
}

// MCPConfig is the tool gateway's part of the config, with the server's public URL as its default.
func (c *Config) MCPConfig() mcp.Config {
	m := c.MCP
	if m.PublicURL == "" {
		m.PublicURL = c.Server.PublicURL
	}
	return m
}

// A2AConfig is the agent gateway's part of the config, with the server's public URL as its default.
func (c *Config) A2AConfig() a2a.Config {
	a := c.A2A
	if a.PublicURL == "" {
		a.PublicURL = c.Server.PublicURL
	}
	return a
}

// LLM is the model gateway's part of the config.
func (c *Config) LLM() llm.Config { return llm.Config{Models: c.Models, Router: c.Router} }

// ServerConfig is the listener and the limits every request shares.
type ServerConfig struct {
	Listen string `yaml:"listen" mapstructure:"listen"`
	// PublicURL is how clients reach the gateway (https://gw.example.com); links the gateway hands out (A2A
	// cards, MCP auth metadata) use it unless their own section sets one.
	PublicURL       string        `yaml:"public_url" mapstructure:"public_url"`
	MaxBodyBytes    int           `yaml:"max_body_bytes" mapstructure:"max_body_bytes"`
	MaxHeaderBytes  int           `yaml:"max_header_bytes" mapstructure:"max_header_bytes"`
	ReadTimeout     time.Duration `yaml:"read_timeout" mapstructure:"read_timeout"`
	IdleTimeout     time.Duration `yaml:"idle_timeout" mapstructure:"idle_timeout"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" mapstructure:"shutdown_timeout"`
	Concurrency     int           `yaml:"concurrency" mapstructure:"concurrency"`
	// MaxConnsPerIP caps open connections from one client address; 0 means no cap, the default, because
	// behind a load balancer every connection comes from the balancer's address.
	MaxConnsPerIP int `yaml:"max_conns_per_ip" mapstructure:"max_conns_per_ip"`
	// MaxConcurrentStreams caps responses streamed at once (LLM streams, A2A streams, MCP GET streams): each
	// holds a goroutine, buffers and an upstream connection for as long as it runs.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams" mapstructure:"max_concurrent_streams"`
	// MaxStreamDuration is how long a streamed response may run before the gateway ends it.
	MaxStreamDuration time.Duration `yaml:"max_stream_duration" mapstructure:"max_stream_duration"`
	// MetricsAuth makes /metrics answer only a scrape with MetricsToken or the admin key as its Bearer; off,
	// it is public, as Prometheus expects by default.
	MetricsAuth  bool   `yaml:"metrics_auth" mapstructure:"metrics_auth"`
	MetricsToken string `yaml:"metrics_token" mapstructure:"metrics_token"` // usually env:NAME
}

// LogConfig chooses the log format and level.
type LogConfig struct {
	Format string `yaml:"format" mapstructure:"format"` // json | text
	Level  string `yaml:"level" mapstructure:"level"`   // debug | info | warn | error
}

// Default is the configuration a field takes when the file leaves it out.
func Default() Config {
	return Config{
		Server: ServerConfig{
			Listen:          "127.0.0.1:8080",
			MaxBodyBytes:    8 << 20,
			MaxHeaderBytes:  16 << 10,
			ReadTimeout:     30 * time.Second,
			IdleTimeout:     120 * time.Second,
			ShutdownTimeout: 30 * time.Second,
			Concurrency:     256 * 1024,
			// Far above what one replica streams on two cores, low enough that a flood of stream requests
			// is refused before it exhausts memory or upstream connections.
			MaxConcurrentStreams: 4096,
			// Long reasoning streams run for minutes; an hour-long one is a stuck client or upstream.
			MaxStreamDuration: 30 * time.Minute,
		},
		Log: LogConfig{Format: "json", Level: "info"},
		// Retries must be set here: in the llm package zero means "no retries", which a user who leaves the
		// field out does not expect.
		Router: llm.RouterConfig{Retries: 2},
	}
}

// Validate checks every section and returns all problems at once, each prefixed with its field path.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, msg string) { errs = append(errs, &FieldError{Path: path, Msg: msg}) }

	if _, port, err := net.SplitHostPort(c.Server.Listen); err != nil || port == "" {
		add("server.listen", fmt.Sprintf("must be host:port, got %q", c.Server.Listen))
	}
	if c.Server.MaxBodyBytes <= 0 {
		add("server.max_body_bytes", "must be positive")
	}
	if c.Server.MaxHeaderBytes < 1024 {
		add("server.max_header_bytes", "must be at least 1024")
	}
	if c.Server.ReadTimeout < 0 || c.Server.IdleTimeout < 0 || c.Server.ShutdownTimeout < 0 {
		add("server", "timeouts must not be negative")
	}
	if c.Server.Concurrency <= 0 {
		add("server.concurrency", "must be positive")
	}
	if c.Server.MaxConnsPerIP < 0 {
		add("server.max_conns_per_ip", "must not be negative (0 means no cap)")
	}
	if c.Server.MaxConcurrentStreams <= 0 {
		add("server.max_concurrent_streams", "must be positive")
	}
	if c.Server.MaxStreamDuration <= 0 {
		add("server.max_stream_duration", "must be positive")
	}
	switch {
	case c.Server.MetricsToken != "" && !c.Server.MetricsAuth:
		add("server.metrics_token", "set without server.metrics_auth: true, so /metrics would stay public")
	case c.Server.MetricsToken != "" && len(c.Server.MetricsToken) < 16:
		add("server.metrics_token", "must be at least 16 characters")
	case c.Server.MetricsAuth && c.Server.MetricsToken == "" && c.Governance.AdminKey == "":
		add("server.metrics_auth", "needs server.metrics_token or governance.admin_key, or no scrape could authenticate")
	}
	if _, err := ParseLevel(c.Log.Level); err != nil {
		add("log.level", err.Error())
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		add("log.format", fmt.Sprintf("must be json or text, got %q", c.Log.Format))
	}
	// Each package names fields by their path inside its own section (or, for llm, from the top).
	errs = append(errs, sectionErrors("", c.LLM().Validate())...)
	mcpCfg, a2aCfg := c.MCPConfig(), c.A2AConfig()
	errs = append(errs, sectionErrors("", mcpCfg.Validate())...)
	errs = append(errs, sectionErrors("", a2aCfg.Validate())...)
	errs = append(errs, sectionErrors("governance.", c.Governance.Validate())...)
	errs = append(errs, sectionErrors("", c.Trace.Validate())...)
	errs = append(errs, sectionErrors("", c.Storage.Validate())...)
	return errors.Join(errs...)
}

// sectionErrors turns a package's "path: message" errors into FieldErrors under prefix.
func sectionErrors(prefix string, err error) []error {
	if err == nil {
		return nil
	}
	var out []error
	for _, e := range flatten(err) {
		path, msg, ok := strings.Cut(e.Error(), ": ")
		if !ok || strings.ContainsAny(path, " \t") {
			path, msg = "", e.Error()
		}
		out = append(out, &FieldError{Path: prefix + path, Msg: msg})
	}
	return out
}

// ParseLevel turns a level name from the config into a slog level.
func ParseLevel(name string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(name)); err != nil {
		return 0, fmt.Errorf("must be debug, info, warn or error, got %q", name)
	}
	return l, nil
}

// FieldError is a problem with one field. Line is 0 when the value did not come from the file (a default or an
// environment override); Env names the SWITCHBOARD_* variable that set it, if one did.
type FieldError struct {
	File string
	Line int
	Path string
	Msg  string
	Env  string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Env != "" {
		fmt.Fprintf(&b, " (set by %s)", e.Env)
	}
	return b.String()
}
