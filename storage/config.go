package storage

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// Config is the `storage:` block. Without `clickhouse` the embedded SQLite
// store is used.
type Config struct {
	ClickHouse *ClickHouseConfig `yaml:"clickhouse" mapstructure:"clickhouse"`
	SQLite     SQLiteConfig      `yaml:"sqlite" mapstructure:"sqlite"`
}

// SQLiteConfig configures the embedded store.
type SQLiteConfig struct {
	// Path of the database file, created if missing; ":memory:" keeps
	// everything in memory. Default "data/switchboard.db".
	Path string `yaml:"path" mapstructure:"path"`
}

// DefaultSQLitePath is where the embedded store lives by default.
const DefaultSQLitePath = "data/switchboard.db"

// ClickHouseConfig configures the ClickHouse store (native protocol).
type ClickHouseConfig struct {
	// Addr is host:port of the native interface; several replicas may be
	// given separated by commas.
	Addr     string `yaml:"addr" mapstructure:"addr"`
	Database string `yaml:"database" mapstructure:"database"` // default "switchboard"; created if missing
	Username string `yaml:"username" mapstructure:"username"` // default "default"
	Password string `yaml:"password" mapstructure:"password"`
	// DialTimeout defaults to 5s, ReadTimeout to 30s.
	DialTimeout  time.Duration `yaml:"dial_timeout" mapstructure:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout" mapstructure:"read_timeout"`
	MaxOpenConns int           `yaml:"max_open_conns" mapstructure:"max_open_conns"` // default 10
	// Cluster, when set, names the cluster (remote_servers) every migration
	// runs on: replicated local tables plus Distributed tables the gateway
	// writes to and reads from. Every node needs the {shard} and {replica}
	// macros and internal_replication on its shards.
	Cluster string `yaml:"cluster" mapstructure:"cluster"`
	// AuditTTL, when set, deletes audit events older than this (whole
	// seconds). It needs ClickHouse 19.6 or later.
	AuditTTL time.Duration `yaml:"audit_ttl" mapstructure:"audit_ttl"`
}

// SpanFlushInterval is how long queued spans wait for a write to this store
// when trace.flush_interval is not set: 5s for ClickHouse, or 0 for the
// recorder's own default (1s). Every span insert makes new parts in spans and
// its three rollups, which ClickHouse then merges, so a batch of a thousand
// spans costs it several times what the spans themselves do. On a gateway at
// 1,000 calls/s, inserting every 5s instead of every second cut ClickHouse's
// CPU by more than half, and with it the gateway's p99 where both share the
// machine. Dashboards lag by as much.
func (c Config) SpanFlushInterval() time.Duration {
	if c.ClickHouse != nil {
		return ClickHouseSpanFlushInterval
	}
	return 0
}

// ClickHouseSpanFlushInterval is SpanFlushInterval's answer for ClickHouse.
const ClickHouseSpanFlushInterval = 5 * time.Second

// DefaultClickHouseDatabase is the database used when none is configured.
const DefaultClickHouseDatabase = "switchboard"

// identifier is what may be spliced into DDL as a database or cluster name.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// Validate names the bad field by its path under `storage`.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, msg string) { errs = append(errs, fmt.Errorf("storage.%s: %s", field, msg)) }
	if c.ClickHouse != nil && c.SQLite.Path != "" {
		// Open takes ClickHouse and never opens the file: spans, spend and keys a user expects in it would be
		// somewhere else without a word.
		bad("sqlite", "set together with storage.clickhouse; the gateway uses one store, so remove one of them")
	}
	if ch := c.ClickHouse; ch != nil {
		if strings.TrimSpace(ch.Addr) == "" {
			bad("clickhouse.addr", "is required")
		}
		for a := range strings.SplitSeq(ch.Addr, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
				bad("clickhouse.addr", fmt.Sprintf("%q must be host:port", a))
			}
		}
		if ch.Database != "" && !identifier.MatchString(ch.Database) {
			bad("clickhouse.database", "must be letters, digits and underscores, not starting with a digit")
		}
		if ch.Cluster != "" && !identifier.MatchString(ch.Cluster) {
			bad("clickhouse.cluster", "must be letters, digits and underscores, not starting with a digit")
		}
		if ch.AuditTTL < 0 || ch.AuditTTL > 0 && ch.AuditTTL < time.Second {
			bad("clickhouse.audit_ttl", "must be at least 1s (or unset to keep audit events)")
		}
		if ch.DialTimeout < 0 {
			bad("clickhouse.dial_timeout", "must not be negative")
		}
		if ch.ReadTimeout < 0 {
			bad("clickhouse.read_timeout", "must not be negative")
		}
		if ch.MaxOpenConns < 0 {
			bad("clickhouse.max_open_conns", "must not be negative")
		}
	}
	return errors.Join(errs...)
}

func (c ClickHouseConfig) withDefaults() ClickHouseConfig {
	if c.Database == "" {
		c.Database = DefaultClickHouseDatabase
	}
	if c.Username == "" {
		c.Username = "default"
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = 10
	}
	return c
}

func (c ClickHouseConfig) addrs() []string {
	var out []string
	for a := range strings.SplitSeq(c.Addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
