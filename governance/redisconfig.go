package governance

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// RedisConfig is `governance.redis`: the Redis that replicas share.
type RedisConfig struct {
	Addr     string `yaml:"addr" mapstructure:"addr"` // host:port
	Username string `yaml:"username" mapstructure:"username"`
	Password string `yaml:"password" mapstructure:"password"` // usually env:NAME
	DB       int    `yaml:"db" mapstructure:"db"`
	// Prefix namespaces every key, so gateways of several deployments can share one Redis.
	Prefix string `yaml:"prefix" mapstructure:"prefix"`
	// Timeout bounds every Redis operation on the request path.
	Timeout time.Duration `yaml:"timeout" mapstructure:"timeout"`
	// FailMode is what a request gets while Redis does not answer: "closed"
	// (default) refuses it with 503, "open" admits it without enforcing rate
	// limits, concurrency limits or budgets.
	FailMode string `yaml:"fail_mode" mapstructure:"fail_mode"`
}

// Defaults of RedisConfig.
const (
	DefaultRedisPrefix  = "switchboard:"
	DefaultRedisTimeout = 50 * time.Millisecond
	FailClosed          = "closed"
	FailOpen            = "open"
)

// WithDefaults fills the unset fields.
func (c RedisConfig) WithDefaults() RedisConfig {
	if c.Prefix == "" {
		c.Prefix = DefaultRedisPrefix
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultRedisTimeout
	}
	if c.FailMode == "" {
		c.FailMode = FailClosed
	}
	return c
}

// Validate names the bad field under `governance.redis`.
func (c *RedisConfig) Validate() error {
	var errs []error
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		errs = append(errs, fmt.Errorf("redis.addr: must be host:port, got %q", c.Addr))
	}
	if c.DB < 0 || c.DB > 15 {
		errs = append(errs, fmt.Errorf("redis.db: must be 0..15"))
	}
	if strings.ContainsAny(c.Prefix, " \t\r\n") || len(c.Prefix) > 64 {
		errs = append(errs, fmt.Errorf("redis.prefix: at most 64 characters without spaces"))
	}
	if c.Timeout < 0 || c.Timeout > 10*time.Second {
		errs = append(errs, fmt.Errorf("redis.timeout: must be between 0 (default %v) and 10s", DefaultRedisTimeout))
	}
	switch c.FailMode {
	case "", FailClosed, FailOpen:
	default:
		errs = append(errs, fmt.Errorf("redis.fail_mode: must be %q or %q", FailClosed, FailOpen))
	}
	return errors.Join(errs...)
}
