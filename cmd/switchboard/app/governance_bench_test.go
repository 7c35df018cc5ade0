package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/loadtest/benchload"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

const (
	benchGovKey    = "sk-bench-governed-0000000000000000"
	benchGovSecret = "bench-governance-secret-0123456789"
	benchGovModel  = "gpt-4o-mini"
)

// benchGovBody is a small non-streamed chat: the upstream answers at once, so what the gateway adds dominates.
var benchGovBody = []byte(`{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"hello there, how are you today?"}]}`)

// BenchmarkChatGovernance measures non-streamed chat through the whole gateway with every governance counter
// kind in play (a key with rpm, tpm and max_parallel in a team with a budget), once with in-memory counters and
// once with Redis-backed ones, against the same zero-latency mock also called directly, in one run:
//
//	SWITCHBOARD_TEST_REDIS=127.0.0.1:6379 go test -run '^$' -bench BenchmarkChatGovernance -benchtime 3s ./cmd/switchboard/app/
//
// serial: one client, latency without queueing (p50/p99 in µs; memory and redis also report added-p50/p99-µs,
// their percentile minus direct's from the same run). parallel: 16 clients per core, the highest rate (req/s);
// client, gateway, mock and Redis share the machine's cores. The redis targets skip when SWITCHBOARD_TEST_REDIS
// is unset.
func BenchmarkChatGovernance(b *testing.B) {
	m, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close() })

	// redisURL stays empty, and the redis targets skip, without SWITCHBOARD_TEST_REDIS.
	var redisURL string
	if addr := os.Getenv("SWITCHBOARD_TEST_REDIS"); addr != "" {
		rc := &governance.RedisConfig{Addr: addr, Prefix: freshRedisPrefix(b, addr),
			// The 50 ms default would turn the scheduling stalls of a busy shared box into 503s: this measures
			// the cost of the shared counters, not the fail mode.
			Timeout: time.Second}
		redisURL = startBenchGateway(b, m.URL, rc) + "/v1/chat/completions"
	}
	targets := []struct{ name, url, key string }{
		{"direct", m.URL + "/v1/chat/completions", ""},
		{"memory", startBenchGateway(b, m.URL, nil) + "/v1/chat/completions", benchGovKey},
		{"redis", redisURL, benchGovKey},
	}

	// Direct's serial percentiles from this run, for the added-latency metrics of the gateway targets.
	var direct benchload.Latencies
	for _, mode := range []struct {
		name        string
		parallelism int
	}{{"serial", 0}, {"parallel", 16}} {
		for _, target := range targets {
			b.Run(mode.name+"/"+target.name, func(b *testing.B) {
				if target.url == "" {
					b.Skip("SWITCHBOARD_TEST_REDIS is unset (deploy/redis.sh start; SWITCHBOARD_TEST_REDIS=127.0.0.1:6379)")
				}
				got := benchload.Post(b, target.url, target.key, benchGovBody, mode.parallelism)
				if mode.parallelism != 0 || got.Empty() {
					return
				}
				if target.name == "direct" {
					direct = got
					return
				}
				if !direct.Empty() {
					b.ReportMetric(float64((got.P50() - direct.P50()).Microseconds()), "added-p50-µs")
					b.ReportMetric(float64((got.P99() - direct.P99()).Microseconds()), "added-p99-µs")
				}
			})
		}
	}
}

// startBenchGateway serves the mock's model through a gateway whose key carries every counter kind, with the
// counters in memory (rc nil) or in Redis, and returns its base URL once it is ready. The limits are far above
// what the benchmark reaches: every request runs the full check and settle, none is refused.
func startBenchGateway(b *testing.B, upstream string, rc *governance.RedisConfig) string {
	b.Helper()
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Storage.SQLite.Path = ":memory:"
	cfg.Trace.SpillDir = b.TempDir()
	cfg.Models = []llm.ModelConfig{{Name: benchGovModel,
		Deployments: []llm.DeploymentConfig{{Provider: llm.ProviderOpenAI, BaseURL: upstream + "/v1"}},
		Pricing:     &llm.PricingConfig{InputPerMTok: "0.15", OutputPerMTok: "0.6"}}}
	cfg.Governance = governance.Config{Secret: benchGovSecret, Redis: rc,
		Teams: []governance.TeamConfig{{Name: "bench",
			Budget: governance.BudgetConfig{USD: "1000000", Period: "monthly"}}},
		Keys: []governance.KeyConfig{{Name: "bench", Key: benchGovKey, Team: "bench",
			Limits: governance.LimitsConfig{RPM: 100_000_000, TPM: 100_000_000, MaxParallel: 10_000}}}}

	a, err := New(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	b.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				b.Errorf("gateway stopped: %v", err)
			}
		case <-time.After(10 * time.Second):
			b.Error("gateway did not stop")
		}
	})
	url := "http://" + ln.Addr().String()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("gateway not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freshRedisPrefix returns a key prefix no earlier run used, so counters and spend start empty, and deletes its
// keys when the benchmark ends (after the gateways, whose cleanups run first, have stopped writing).
func freshRedisPrefix(b testing.TB, addr string) string {
	b.Helper()
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		b.Fatal(err)
	}
	prefix := "sbbench:" + hex.EncodeToString(id) + ":"
	b.Cleanup(func() {
		client := redis.NewClient(&redis.Options{Addr: addr})
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			b.Errorf("listing the benchmark's redis keys: %v", err)
			return
		}
		if len(keys) > 0 {
			if err := client.Unlink(ctx, keys...).Err(); err != nil {
				b.Errorf("deleting the benchmark's redis keys: %v", err)
			}
		}
	})
	return prefix
}
