package governance

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// race runs n goroutines that all start at once and returns how many f admitted.
func race(n int, f func(i int) bool) int64 {
	var admitted atomic.Int64
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			if f(i) {
				admitted.Add(1)
			}
		}()
	}
	start.Done()
	done.Wait()
	return admitted.Load()
}

func TestBudgetIsExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	const (
		goroutines = 1000
		estimate   = 10_000_000 // $0.01
	)
	tests := []struct {
		name         string
		actual       func(i int) int64
		wantAdmitted int64 // -1: only the spend bound is checked
	}{
		{"actual equals estimate", func(int) int64 { return estimate }, 5},
		{"actual below estimate", func(i int) int64 { return int64(i % estimate) }, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, _ := newGov(t, Config{
				Teams: []TeamConfig{{Name: "t", Budget: BudgetConfig{USD: "1", Period: "daily"}}},
				Keys: []KeyConfig{
					{Name: "a", Key: rawKey("a"), Team: "t"},
					{Name: "b", Key: rawKey("b"), Team: "t"},
				},
			})
			team := CounterKey{Scope: ScopeTeam, Metric: MetricSpend, ID: "t"}
			period := PeriodDaily.start(g.now())
			// Nearly spent: $0.95 of $1 already gone.
			g.counters.SpendCounter(team).SetSpent(period, 950_000_000)
			keys := [2]*Principal{mustAuth(t, g, "a"), mustAuth(t, g, "b")}
			var budgetErrs atomic.Int64
			admitted := race(goroutines, func(i int) bool {
				r, err := g.Reserve(keys[i%2], Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: estimate})
				if err != nil {
					var ge *Error
					if errors.As(err, &ge) && ge.Kind == BudgetExceeded {
						budgetErrs.Add(1)
					}
					return false
				}
				r.Settle(tt.actual(i), 0)
				return true
			})
			spent, held := g.counters.SpendCounter(team).Spent(period)
			if held != 0 {
				t.Fatalf("held = %d after every settle", held)
			}
			if spent > usd(1) {
				t.Fatalf("spent %d overshoots the $1 budget by %d", spent, spent-usd(1))
			}
			if tt.wantAdmitted >= 0 && admitted != tt.wantAdmitted {
				t.Fatalf("admitted %d, want exactly %d", admitted, tt.wantAdmitted)
			}
			if admitted+budgetErrs.Load() != goroutines {
				t.Fatalf("admitted %d + budget denials %d != %d", admitted, budgetErrs.Load(), goroutines)
			}
		})
	}
}

func TestBudgetAdmitsExactlyWhatFits(t *testing.T) {
	t.Parallel()
	g, _ := newGov(t, Config{Keys: []KeyConfig{{Name: "k", Key: rawKey("k"), Budget: BudgetConfig{USD: "1"}}}})
	p := mustAuth(t, g, "k")
	admitted := race(1000, func(int) bool {
		r, err := g.Reserve(p, Request{Kind: KindTool, Name: "t", EstimatedCostNanoUSD: usd(1) / 10})
		if err != nil {
			return false
		}
		r.Settle(usd(1)/10, 0)
		return true
	})
	spent, _ := g.counters.SpendCounter(CounterKey{Scope: ScopeKey, Metric: MetricSpend, ID: p.KeyID}).Spent(0)
	if admitted != 10 || spent != usd(1) {
		t.Fatalf("admitted %d spent %d, want 10 and exactly $1", admitted, spent)
	}
}

func TestRateLimitsAreExactUnderConcurrency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limits LimitsConfig
		req    Request
		settle bool
		want   int64
	}{
		{"rpm", LimitsConfig{RPM: 100}, Request{Kind: KindModel, Name: "m"}, true, 100},
		{"tpm", LimitsConfig{TPM: 5_000}, Request{Kind: KindModel, Name: "m", EstimatedTokens: 7}, false, 5_000 / 7},
		{"per_model rpm", LimitsConfig{PerModel: map[string]ModelLimits{"m*": {RPM: 37}}}, Request{Kind: KindModel, Name: "m1"}, true, 37},
		{"tool_rpm", LimitsConfig{ToolRPM: 250}, Request{Kind: KindTool, Name: "w__x"}, true, 250},
		{"agent_rpm", LimitsConfig{AgentRPM: 3}, Request{Kind: KindAgent, Name: "a"}, true, 3},
		{"max_parallel (never settled)", LimitsConfig{MaxParallel: 10}, Request{Kind: KindModel, Name: "m"}, false, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, _ := newGov(t, Config{Keys: []KeyConfig{{Name: "k", Key: rawKey("k"), Limits: tt.limits}}})
			p := mustAuth(t, g, "k")
			var mu sync.Mutex
			var open []*Reservation
			admitted := race(1000, func(int) bool {
				r, err := g.Reserve(p, tt.req)
				if err != nil {
					return false
				}
				if tt.settle {
					r.Settle(0, tt.req.EstimatedTokens)
				} else {
					mu.Lock()
					open = append(open, r)
					mu.Unlock()
				}
				return true
			})
			if admitted != tt.want {
				t.Fatalf("admitted %d, want exactly %d", admitted, tt.want)
			}
			for _, r := range open {
				r.Settle(0, tt.req.EstimatedTokens)
			}
			if n := g.counters.ConcurrencyCounter(CounterKey{Scope: ScopeKey, Metric: MetricParallel, ID: p.KeyID}).InFlight(); n != 0 {
				t.Fatalf("in flight %d after settling all", n)
			}
		})
	}
}

func TestTeamRPMIsExactAcrossKeys(t *testing.T) {
	t.Parallel()
	cfg := Config{Teams: []TeamConfig{{Name: "t", Limits: LimitsConfig{RPM: 50}}}}
	for _, n := range []string{"a", "b", "c", "d"} {
		cfg.Keys = append(cfg.Keys, KeyConfig{Name: n, Key: rawKey(n), Team: "t", Limits: LimitsConfig{RPM: 20}})
	}
	g, _ := newGov(t, cfg)
	keys := []*Principal{mustAuth(t, g, "a"), mustAuth(t, g, "b"), mustAuth(t, g, "c"), mustAuth(t, g, "d")}
	perKey := make([]atomic.Int64, len(keys))
	admitted := race(1000, func(i int) bool {
		r, err := g.Reserve(keys[i%4], Request{Kind: KindModel, Name: "m"})
		if err != nil {
			return false
		}
		perKey[i%4].Add(1)
		r.Settle(0, 0)
		return true
	})
	if admitted != 50 {
		t.Fatalf("team admitted %d, want 50", admitted)
	}
	for i := range perKey {
		if perKey[i].Load() > 20 {
			t.Fatalf("key %d admitted %d > its rpm 20", i, perKey[i].Load())
		}
	}
}
