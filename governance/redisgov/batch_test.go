package redisgov

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/governance/countertest"
)

// batchConfig denies often at every level: key, per-model, team and org
// rate, concurrency and budget limits.
func batchConfig() governance.Config {
	allow := governance.ACLConfig{Models: []string{"*"}, Tools: []string{"*"}, Agents: []string{"*"}}
	return governance.Config{
		Secret: testSecret, AdminKey: testAdminKey,
		Orgs: []governance.OrgConfig{{Name: "acme", Budget: governance.BudgetConfig{USD: "0.0004", Period: "monthly"}}},
		Teams: []governance.TeamConfig{{Name: "platform", Org: "acme", Allow: allow,
			Budget: governance.BudgetConfig{USD: "0.0003", Period: "weekly"},
			Limits: governance.LimitsConfig{RPM: 40, TPM: 3000, MaxParallel: 5, ToolRPM: 8}}},
		Keys: []governance.KeyConfig{
			{Name: "a", Key: "sk-batch-a-0123456789", Team: "platform", Allow: allow,
				Limits: governance.LimitsConfig{RPM: 25, TPM: 2000, MaxParallel: 3, ToolRPM: 6, AgentRPM: 4,
					PerModel: map[string]governance.ModelLimits{"gpt-*": {RPM: 12, TPM: 900}, "gpt-4o": {TPM: 500}}},
				Budget: governance.BudgetConfig{USD: "0.0002", Period: "daily"}},
			{Name: "b", Key: "sk-batch-b-0123456789", Team: "platform", Allow: allow},
			{Name: "c", Key: "sk-batch-c-0123456789", Allow: allow,
				Limits: governance.LimitsConfig{RPM: 15, MaxParallel: 2}, Budget: governance.BudgetConfig{USD: "0.0001"}},
			{Name: "solo", Key: "sk-batch-solo-0123456789", Allow: allow},
		},
	}
}

// The batch path (one script per Reserve and per Settle) decides exactly as
// the in-memory counters one call at a time: same admissions, same errors
// with the same Retry-After and x-ratelimit headers, same headers on
// admitted requests, same spend and holds.
func TestBatchDecidesLikeMemory(t *testing.T) {
	t.Parallel()
	testAddr(t)
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			now := countertest.Epoch
			clock := func() time.Time { return now }
			newGov := func(c governance.Counters) *governance.Governor {
				g, err := governance.New(batchConfig(), nil, slog.New(slog.DiscardHandler), nil,
					governance.WithCounters(c), governance.WithClock(clock))
				if err != nil {
					t.Fatal(err)
				}
				return g
			}
			mem, red := newGov(governance.NewMemoryCounters()), newGov(openTest(t).Counters())
			keys := []string{"sk-batch-a-0123456789", "sk-batch-b-0123456789", "sk-batch-c-0123456789", "sk-batch-solo-0123456789"}
			kinds := []governance.Kind{governance.KindModel, governance.KindModel, governance.KindTool, governance.KindAgent}
			names := []string{"gpt-4o", "gpt-4o-mini", "claude-3"}
			type pair struct{ mem, red *governance.Reservation }
			var open []pair
			rng := rand.New(rand.NewPCG(seed, 11))
			var admitted, denied int
			for i := range 600 {
				now = now.Add(time.Duration(rng.IntN(400)) * time.Millisecond)
				if len(open) > 0 && (rng.IntN(3) == 0 || len(open) > 6) {
					j := rng.IntN(len(open))
					cost, tokens := rng.Int64N(60_000), rng.Int64N(400)
					open[j].mem.Settle(cost, tokens)
					open[j].red.Settle(cost, tokens)
					open = append(open[:j], open[j+1:]...)
					continue
				}
				raw := keys[rng.IntN(len(keys))]
				req := governance.Request{Kind: kinds[rng.IntN(len(kinds))], Name: names[rng.IntN(len(names))],
					EstimatedTokens: rng.Int64N(300), EstimatedCostNanoUSD: rng.Int64N(50_000)}
				pm, pr := mustPrincipal(t, mem, raw), mustPrincipal(t, red, raw)
				rm, errM := mem.Reserve(pm, req)
				rr, errR := red.Reserve(pr, req)
				step := fmt.Sprintf("step %d: %s %+v", i, raw[:10], req)
				if got, want := describe(rr, errR), describe(rm, errM); got != want {
					t.Fatalf("%s\nredis:  %s\nmemory: %s", step, got, want)
				}
				if errM != nil {
					denied++
					continue
				}
				admitted++
				open = append(open, pair{rm, rr})
			}
			for _, p := range open {
				p.mem.Settle(1, 1)
				p.red.Settle(1, 1)
			}
			if got, want := red.Budgets(""), mem.Budgets(""); !reflect.DeepEqual(got, want) {
				t.Fatalf("budgets differ\nredis:  %+v\nmemory: %+v", got, want)
			}
			if admitted < 50 || denied < 50 {
				t.Fatalf("admitted %d, denied %d: the sequence should exercise both", admitted, denied)
			}
		})
	}
}

func mustPrincipal(t *testing.T, g *governance.Governor, raw string) *governance.Principal {
	t.Helper()
	p, err := g.Authenticate(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// describe is everything a client sees of a Reserve: the error and its
// headers, or the admitted request's headers.
func describe(r *governance.Reservation, err error) string {
	var b strings.Builder
	set := func(name, value string) { fmt.Fprintf(&b, " %s=%s", name, value) }
	if err != nil {
		ge := err.(*governance.Error)
		fmt.Fprintf(&b, "%s %q retry=%v", ge.Kind, ge.Message, ge.RetryAfter)
		ge.RateLimitHeaders(set)
		return b.String()
	}
	b.WriteString("admitted")
	r.RateLimitHeaders(set)
	return b.String()
}

// With Redis unreachable a Reserve costs one failed call, not one per
// counter, and answers by the fail mode; a fail-open reservation settles
// without panicking and counts the failure under op "settle".
func TestBatchFailModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{governance.FailClosed, governance.FailOpen} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			s := openAt(t, governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 50 * time.Millisecond, FailMode: mode}, reg)
			g, err := governance.New(batchConfig(), nil, slog.New(slog.DiscardHandler), nil,
				governance.WithCounters(newCounters(deadShared(t, s))))
			if err != nil {
				t.Fatal(err)
			}
			p := mustPrincipal(t, g, "sk-batch-a-0123456789")
			r, err := g.Reserve(p, governance.Request{Kind: governance.KindModel, Name: "gpt-4o", EstimatedTokens: 10, EstimatedCostNanoUSD: 10})
			if n := errorCount(t, reg, "reserve"); n != 1 {
				t.Fatalf("switchboard_governance_redis_errors_total{op=reserve} = %v, want 1", n)
			}
			if mode == governance.FailClosed {
				if ge, ok := err.(*governance.Error); !ok || ge.Kind != governance.Unavailable {
					t.Fatalf("fail closed: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("fail open: %v", err)
			}
			r.RateLimitHeaders(func(name, _ string) { t.Errorf("header %s on a request no counter saw", name) })
			r.Settle(5, 5)
			if n := errorCount(t, reg, "settle"); n != 1 {
				t.Fatalf("switchboard_governance_redis_errors_total{op=settle} = %v, want 1", n)
			}
		})
	}
}
