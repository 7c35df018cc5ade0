package storage

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	ch := func(mod func(c *ClickHouseConfig)) Config {
		c := ClickHouseConfig{Addr: "127.0.0.1:9000"}
		mod(&c)
		return Config{ClickHouse: &c}
	}
	tests := []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"sqlite default", Config{}, ""},
		{"single node", ch(func(*ClickHouseConfig) {}), ""},
		{"cluster", ch(func(c *ClickHouseConfig) { c.Cluster = "prod_cluster_2" }), ""},
		{"audit ttl", ch(func(c *ClickHouseConfig) { c.AuditTTL = 90 * 24 * time.Hour }), ""},
		{"cluster with a quote", ch(func(c *ClickHouseConfig) { c.Cluster = "x` ON CLUSTER y" }), "storage.clickhouse.cluster: must be letters"},
		{"cluster with a dash", ch(func(c *ClickHouseConfig) { c.Cluster = "prod-eu" }), "storage.clickhouse.cluster: must be letters"},
		{"cluster starting with a digit", ch(func(c *ClickHouseConfig) { c.Cluster = "1st" }), "storage.clickhouse.cluster: must be letters"},
		{"cluster too long", ch(func(c *ClickHouseConfig) { c.Cluster = strings.Repeat("c", 65) }), "storage.clickhouse.cluster: must be letters"},
		{"negative audit ttl", ch(func(c *ClickHouseConfig) { c.AuditTTL = -time.Hour }), "storage.clickhouse.audit_ttl: must be at least 1s"},
		{"sub-second audit ttl", ch(func(c *ClickHouseConfig) { c.AuditTTL = time.Millisecond }), "storage.clickhouse.audit_ttl: must be at least 1s"},
		{"bad database", ch(func(c *ClickHouseConfig) { c.Database = "a.b" }), "storage.clickhouse.database: must be letters"},
		{"missing addr", ch(func(c *ClickHouseConfig) { c.Addr = "" }), "storage.clickhouse.addr: is required"},
		{"sqlite file and clickhouse", Config{SQLite: SQLiteConfig{Path: "x.db"}, ClickHouse: &ClickHouseConfig{Addr: "127.0.0.1:9000"}},
			"storage.sqlite: set together with storage.clickhouse"},
		{"sqlite file alone", Config{SQLite: SQLiteConfig{Path: "x.db"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestSpanFlushIntervalFollowsTheStore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want time.Duration
	}{
		{"sqlite leaves the recorder's default", Config{}, 0},
		{"sqlite file", Config{SQLite: SQLiteConfig{Path: "x.db"}}, 0},
		{"clickhouse batches longer", Config{ClickHouse: &ClickHouseConfig{Addr: "127.0.0.1:9000"}}, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.cfg.SpanFlushInterval(); got != tc.want {
				t.Errorf("SpanFlushInterval() = %v, want %v", got, tc.want)
			}
		})
	}
}
