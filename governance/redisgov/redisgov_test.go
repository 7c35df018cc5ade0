package redisgov

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/governance/countertest"
)

// testAddr is the Redis the tests use (deploy/redis.sh starts one); tests
// that need it skip when SWITCHBOARD_TEST_REDIS is unset.
func testAddr(t testing.TB) string {
	addr := os.Getenv("SWITCHBOARD_TEST_REDIS")
	if addr == "" {
		t.Skip("SWITCHBOARD_TEST_REDIS is unset (deploy/redis.sh start; SWITCHBOARD_TEST_REDIS=127.0.0.1:6379)")
	}
	return addr
}

// testPrefix keeps tests apart in one Redis.
func testPrefix(t testing.TB) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "sbtest:" + hex.EncodeToString(b) + ":"
}

func openAt(t testing.TB, cfg governance.RedisConfig, reg prometheus.Registerer) *Shared {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		keys, _ := s.client.Keys(ctx, cfg.Prefix+"*").Result()
		if len(keys) > 0 {
			s.client.Del(ctx, keys...)
		}
		_ = s.Close(ctx)
	})
	return s
}

func openTest(t testing.TB) *Shared {
	return openAt(t, governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 5 * time.Second}, nil)
}

func TestCountersBehaveLikeMemory(t *testing.T) {
	t.Parallel()
	testAddr(t)
	countertest.Run(t, func(t *testing.T) governance.Counters { return openTest(t).Counters() })
}

// Two replicas (two connections with their own replica ids) share limits exactly.
func TestReplicasShareLimitsExactly(t *testing.T) {
	t.Parallel()
	cfg := governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 5 * time.Second}
	a, b := openAt(t, cfg, nil), openAt(t, cfg, nil)
	rk := governance.CounterKey{Scope: governance.ScopeKey, Metric: governance.MetricRequests, ID: "k"}
	gk := governance.CounterKey{Scope: governance.ScopeKey, Metric: governance.MetricParallel, ID: "k"}
	sk := governance.CounterKey{Scope: governance.ScopeKey, Metric: governance.MetricSpend, ID: "k"}
	const period, limit, cost = 1_800_000_000, 1_000, 7
	var mu sync.Mutex
	var admitted, slots, held int
	var wg sync.WaitGroup
	now := countertest.Epoch
	for i := range 400 {
		s := []*Shared{a, b}[i%2]
		wg.Go(func() {
			r := s.Counters().RateCounter(rk).Take(100, 1, now)
			g := s.Counters().ConcurrencyCounter(gk).Acquire(50)
			h := s.Counters().SpendCounter(sk).Hold(period, limit, cost)
			mu.Lock()
			defer mu.Unlock()
			if r.Allowed {
				admitted++
			}
			if g.Allowed {
				slots++
			}
			if h.Allowed {
				held++
			}
		})
	}
	wg.Wait()
	if admitted != 100 || slots != 50 || held != limit/cost {
		t.Fatalf("admitted %d of rpm 100, %d slots of 50, %d holds of %d", admitted, slots, held, limit/cost)
	}
	if n := a.Counters().ConcurrencyCounter(gk).InFlight(); n != 50 {
		t.Fatalf("in flight %d, want 50", n)
	}
}

// A replica that dies holding slots and budget holds loses them when its
// lease lapses; one that closes cleanly loses them at once.
func TestDeadReplicaReleasesSlotsAndHolds(t *testing.T) {
	t.Parallel()
	cfg := governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 5 * time.Second}
	live, dying := openAt(t, cfg, nil), openAt(t, cfg, nil)
	gk := governance.CounterKey{Scope: governance.ScopeKey, Metric: governance.MetricParallel, ID: "k"}
	sk := governance.CounterKey{Scope: governance.ScopeKey, Metric: governance.MetricSpend, ID: "k"}
	for range 2 {
		if !dying.Counters().ConcurrencyCounter(gk).Acquire(2).Allowed {
			t.Fatal("acquire")
		}
	}
	if !dying.Counters().SpendCounter(sk).Hold(0, 100, 100).Allowed {
		t.Fatal("hold")
	}
	if live.Counters().ConcurrencyCounter(gk).Acquire(2).Allowed || live.Counters().SpendCounter(sk).Hold(0, 100, 1).Allowed {
		t.Fatal("the dying replica's slots and holds were not counted")
	}
	// Expire the lease as if the replica had stopped heartbeating.
	ctx := context.Background()
	if err := live.client.ZAdd(ctx, live.leaseKey, redisZ(1, dying.replica)).Err(); err != nil {
		t.Fatal(err)
	}
	if !live.Counters().ConcurrencyCounter(gk).Acquire(2).Allowed {
		t.Fatal("slots of a replica whose lease lapsed still count")
	}
	if r := live.Counters().SpendCounter(sk).Hold(0, 100, 100); !r.Allowed || r.Held != 100 {
		t.Fatalf("holds of a replica whose lease lapsed still count: %+v", r)
	}
	// The dying replica comes back: its heartbeat rewrites its books.
	if err := dying.renewLease(ctx); err != nil {
		t.Fatal(err)
	}
	dying.counters.repair(ctx, true)
	if n := live.Counters().ConcurrencyCounter(gk).InFlight(); n != 3 {
		t.Fatalf("in flight %d after the replica came back, want 3", n)
	}
	if _, held := live.Counters().SpendCounter(sk).Spent(0); held != 200 {
		t.Fatalf("held %d after the replica came back, want 200", held)
	}
}

// A failed Release leaves Redis wrong until the heartbeat rewrites it from the replica's books.
func TestRepairAfterFailedCall(t *testing.T) {
	t.Parallel()
	s := openTest(t)
	gk := governance.CounterKey{Scope: governance.ScopeKey, Metric: governance.MetricParallel, ID: "k"}
	g := s.Counters().ConcurrencyCounter(gk).(*gauge)
	if !g.Acquire(1).Allowed {
		t.Fatal("acquire")
	}
	// As if the release script had failed: the books say 0, Redis says 1.
	g.mine.Add(-1)
	g.dirty.Store(true)
	if g.Acquire(1).Allowed {
		t.Fatal("redis should still count the slot")
	}
	s.counters.repair(context.Background(), false)
	if !g.Acquire(1).Allowed {
		t.Fatal("repair did not rewrite the slot count")
	}
}

func TestUnreachableRedisFailsOpenOrClosedQuickly(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{governance.FailClosed, governance.FailOpen} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			s := openAt(t, governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 50 * time.Millisecond, FailMode: mode}, reg)
			c := newCounters(deadShared(t, s))
			open := mode == governance.FailOpen
			rk := governance.CounterKey{Scope: governance.ScopeKey, Metric: governance.MetricRequests, ID: "k"}
			if r := c.RateCounter(rk).Take(1, 1, time.Now()); r.Allowed != open || !r.Unavailable {
				t.Fatalf("take: %+v", r)
			}
			if r := c.ConcurrencyCounter(rk).Acquire(1); r.Allowed != open || !r.Unavailable {
				t.Fatalf("acquire: %+v", r)
			}
			if r := c.SpendCounter(rk).Hold(0, 10, 1); r.Allowed != open || !r.Unavailable {
				t.Fatalf("hold: %+v", r)
			}
			if n := errorCount(t, reg, "rate_take"); n != 1 {
				t.Fatalf("switchboard_governance_redis_errors_total{op=rate_take} = %v", n)
			}
		})
	}
}

func TestGovernorFailClosedAnswers503(t *testing.T) {
	t.Parallel()
	s := openAt(t, governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 50 * time.Millisecond}, nil)
	g, raw := testGovernor(t, nil, governance.WithCounters(newCounters(deadShared(t, s))))
	p, err := g.Authenticate(raw)
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Reserve(p, governance.Request{Kind: governance.KindModel, Name: "m", EstimatedCostNanoUSD: 1})
	ge, ok := err.(*governance.Error)
	if !ok || ge.Kind != governance.Unavailable || ge.HTTPStatus() != 503 {
		t.Fatalf("reserve with redis down: %v", err)
	}
}

func errorCount(t *testing.T, reg *prometheus.Registry, op string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_governance_redis_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "op" && l.GetValue() == op {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// deadShared is s pointed at a port nobody listens on, as if Redis died.
func deadShared(t *testing.T, s *Shared) *Shared {
	return &Shared{client: deadClient(t), log: s.log, prefix: s.prefix, timeout: s.timeout, failOpen: s.failOpen,
		replica: s.replica, leaseKey: s.leaseKey, errors: s.errors, stop: make(chan struct{})}
}

// BenchmarkDecisionPath is governance's authenticate → authorize → reserve →
// settle with the Redis counters and with the in-memory ones, in one run.
func BenchmarkDecisionPath(b *testing.B) {
	for _, tc := range []struct {
		name     string
		counters func(b *testing.B) governance.Counters
	}{
		{"memory", func(*testing.B) governance.Counters { return governance.NewMemoryCounters() }},
		{"redis", func(b *testing.B) governance.Counters {
			return openAt(b, governance.RedisConfig{Addr: testAddr(b), Prefix: testPrefix(b), Timeout: time.Second}, nil).Counters()
		}},
	} {
		for _, par := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/callers=%d×GOMAXPROCS", tc.name, par), func(b *testing.B) {
				benchDecisions(b, tc.counters(b), par)
			})
		}
	}
}

// benchDecisions runs the decision path from par×GOMAXPROCS goroutines: a
// gateway serves many requests at once, and Redis round trips overlap.
func benchDecisions(b *testing.B, counters governance.Counters, par int) {
	g, err := governance.New(benchConfig(), nil, slog.New(slog.DiscardHandler), nil, governance.WithCounters(counters))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(par)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p, err := g.Authenticate(testKey)
			if err != nil {
				b.Fatal(err)
			}
			if d := g.Authorize(p, governance.KindModel, "gpt-4o-mini"); !d.Allowed {
				b.Fatal(d.Rule)
			}
			r, err := g.Reserve(p, governance.Request{Kind: governance.KindModel, Name: "gpt-4o-mini", EstimatedTokens: 1, EstimatedCostNanoUSD: 1000})
			if err != nil {
				b.Fatal(err)
			}
			r.Settle(900, 1)
		}
	})
}

// benchConfig is governance's benchmark key: a team in an org, every rate
// limit, a per-model limit and budgets at three levels, never denying.
func benchConfig() governance.Config {
	const huge = 100_000_000
	return governance.Config{
		Secret: testSecret, AdminKey: testAdminKey,
		Orgs: []governance.OrgConfig{{Name: "acme", Budget: governance.BudgetConfig{USD: "1000000", Period: "monthly"}}},
		Teams: []governance.TeamConfig{{Name: "platform", Org: "acme", Budget: governance.BudgetConfig{USD: "1000000", Period: "monthly"},
			Limits: governance.LimitsConfig{RPM: huge, TPM: huge, MaxParallel: 10_000}}},
		Keys: []governance.KeyConfig{{Name: "k0", Key: testKey, Team: "platform",
			Allow:  governance.ACLConfig{Models: []string{"gpt-4o-mini", "claude-*"}},
			Limits: governance.LimitsConfig{RPM: huge, TPM: huge, MaxParallel: 10_000, PerModel: map[string]governance.ModelLimits{"gpt-4o*": {RPM: huge, TPM: huge}}},
			Budget: governance.BudgetConfig{USD: "1000000", Period: "daily"}}},
	}
}

// Two replicas whose clocks are a second apart straddle midnight: the one still in yesterday must not take the
// shared budget back to yesterday's counter and so wipe today's spend, which would let today's calls past the
// budget.
func TestSkewedReplicasAtPeriodEndKeepTheNewPeriodsSpend(t *testing.T) {
	t.Parallel()
	cfg := governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 5 * time.Second}
	midnight := time.Date(2027, 3, 2, 0, 0, 0, 0, time.UTC)
	gcfg := governance.Config{Secret: "skew-secret-0123456789",
		Keys: []governance.KeyConfig{{Name: "k", Key: "sk-skew-0123456789abcdef", Budget: governance.BudgetConfig{USD: "1", Period: "daily"}}}}
	replica := func(clock time.Time) (*governance.Governor, *governance.Principal) {
		s := openAt(t, cfg, nil)
		g, err := governance.New(gcfg, nil, slog.New(slog.DiscardHandler), nil, governance.WithCounters(s.Counters()),
			governance.WithClock(func() time.Time { return clock }))
		if err != nil {
			t.Fatal(err)
		}
		p, err := g.Authenticate("sk-skew-0123456789abcdef")
		if err != nil {
			t.Fatal(err)
		}
		return g, p
	}
	ahead, pa := replica(midnight.Add(time.Second))
	behind, pb := replica(midnight.Add(-time.Second))
	const cents = 10_000_000 // nano-USD
	steps := []struct {
		name   string
		g      *governance.Governor
		p      *governance.Principal
		cost   int64
		wantOK bool
	}{
		{"today's first call", ahead, pa, 60 * cents, true},
		{"a call on the replica still in yesterday", behind, pb, 10 * cents, true},
		{"today's call past the budget", ahead, pa, 60 * cents, false},
		{"the late replica's call past today's budget", behind, pb, 40 * cents, false},
		{"what is left of today", ahead, pa, 30 * cents, true},
	}
	for _, st := range steps {
		res, err := st.g.Reserve(st.p, governance.Request{Kind: governance.KindModel, Name: "m", EstimatedCostNanoUSD: st.cost})
		if (err == nil) != st.wantOK {
			t.Fatalf("%s: %v, want admitted %v", st.name, err, st.wantOK)
		}
		res.Settle(st.cost, 0)
	}
}
