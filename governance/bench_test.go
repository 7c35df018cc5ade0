package governance

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
)

// benchConfig is a realistic key: team and org, allow lists with globs, every
// rate limit, a per-model limit and budgets at three levels, so the benchmark
// walks the whole decision path. Limits are high enough never to deny.
func benchConfig(keys int) Config {
	cfg := Config{
		Secret:   testSecret,
		AdminKey: testAdminKey,
		Orgs:     []OrgConfig{{Name: "acme", Budget: BudgetConfig{USD: "1000000", Period: "monthly"}}},
		Teams: []TeamConfig{{Name: "platform", Org: "acme", Budget: BudgetConfig{USD: "1000000", Period: "monthly"},
			Limits: LimitsConfig{RPM: maxLimit, TPM: maxLimit, MaxParallel: 10_000},
			Allow:  ACLConfig{Models: []string{"gpt-4o*", "claude-*"}}}},
	}
	for i := range keys {
		cfg.Keys = append(cfg.Keys, KeyConfig{
			Name: fmt.Sprintf("k%d", i), Key: rawKey(fmt.Sprintf("k%d", i)), Team: "platform",
			Allow:  ACLConfig{Models: []string{"gpt-4o-mini", "claude-*"}, Tools: []string{"weather__*"}},
			Deny:   ACLConfig{Models: []string{"gpt-4o-realtime*"}},
			Limits: LimitsConfig{RPM: maxLimit, TPM: maxLimit, MaxParallel: 10_000, PerModel: map[string]ModelLimits{"gpt-4o*": {RPM: maxLimit, TPM: maxLimit}}},
			Budget: BudgetConfig{USD: "1000000", Period: "daily"},
		})
	}
	return cfg
}

func step(b *testing.B, g *Governor, raw string) {
	p, err := g.Authenticate(raw)
	if err != nil {
		b.Fatal(err)
	}
	if d := g.Authorize(p, KindModel, "gpt-4o-mini"); !d.Allowed {
		b.Fatal(d.Rule)
	}
	r, err := g.Reserve(p, Request{Kind: KindModel, Name: "gpt-4o-mini", EstimatedTokens: 1, EstimatedCostNanoUSD: 1000})
	if err != nil {
		b.Fatal(err)
	}
	r.Settle(900, 1)
}

// BenchmarkDecisionPath is authenticate → authorize → reserve → settle for one request.
func BenchmarkDecisionPath(b *testing.B) {
	g, err := New(benchConfig(1), nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	raw := rawKey("k0")
	b.ReportAllocs()
	for b.Loop() {
		step(b, g, raw)
	}
}

// BenchmarkDecisionPathParallel spreads requests over 64 keys of one team
// from every core, so team counters are contended as in production.
func BenchmarkDecisionPathParallel(b *testing.B) {
	g, err := New(benchConfig(64), nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		raw := rawKey(fmt.Sprintf("k%d", next.Add(1)%64))
		for pb.Next() {
			step(b, g, raw)
		}
	})
}
