// Package countertest is the behaviour every governance.Counters must show,
// run against MemoryCounters and every shared implementation alike.
package countertest

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/governance"
)

// New returns empty counters for one test.
type New func(t *testing.T) governance.Counters

// Epoch is the tests' fixed clock origin.
var Epoch = time.Unix(1_800_000_000, 0)

const maxLimit = 100_000_000 // governance's largest rate limit

func rk(id string) governance.CounterKey {
	return governance.CounterKey{Scope: governance.ScopeKey, Metric: governance.MetricRequests, ID: id}
}

// Run runs the behaviour tests.
func Run(t *testing.T, newCounters New) {
	t.Run("rate", func(t *testing.T) { t.Parallel(); rateCases(t, newCounters) })
	t.Run("concurrency", func(t *testing.T) { t.Parallel(); concurrencyCases(t, newCounters) })
	t.Run("spend", func(t *testing.T) { t.Parallel(); spendCases(t, newCounters) })
	t.Run("matches memory", func(t *testing.T) { t.Parallel(); Differential(t, newCounters) })
}

type rateStep struct {
	at    time.Duration
	give  bool
	limit int64
	units int64
	want  governance.RateResult // checked for takes
}

func rateCases(t *testing.T, newCounters New) {
	cases := []struct {
		name  string
		steps []rateStep
	}{
		{name: "takes until empty then denies with retry-after", steps: []rateStep{
			{limit: 2, units: 1, want: governance.RateResult{Allowed: true, Remaining: 1, Reset: 30 * time.Second}},
			{limit: 2, units: 1, want: governance.RateResult{Allowed: true, Remaining: 0, Reset: time.Minute}},
			{limit: 2, units: 1, want: governance.RateResult{Remaining: 0, Reset: time.Minute, RetryAfter: 30 * time.Second}},
		}},
		{name: "refills limit per minute", steps: []rateStep{
			{limit: 60, units: 60, want: governance.RateResult{Allowed: true, Reset: time.Minute}},
			{at: time.Second, limit: 60, units: 2, want: governance.RateResult{Remaining: 1, Reset: 59 * time.Second, RetryAfter: time.Second}},
			{at: 2 * time.Second, limit: 60, units: 2, want: governance.RateResult{Allowed: true, Reset: time.Minute}},
		}},
		{name: "give returns units but never above the limit", steps: []rateStep{
			{limit: 10, units: 4, want: governance.RateResult{Allowed: true, Remaining: 6, Reset: 24 * time.Second}},
			{give: true, limit: 10, units: 100},
			{limit: 10, units: 10, want: governance.RateResult{Allowed: true, Reset: time.Minute}},
		}},
		{name: "debt blocks zero-unit takes", steps: []rateStep{
			{limit: 10, units: 10, want: governance.RateResult{Allowed: true, Reset: time.Minute}},
			{give: true, limit: 10, units: -5},
			{limit: 10, units: 0, want: governance.RateResult{Reset: 90 * time.Second, RetryAfter: 30 * time.Second}},
		}},
		{name: "units above the limit are clamped", steps: []rateStep{
			{limit: 3, units: 7, want: governance.RateResult{Allowed: true, Reset: time.Minute}},
		}},
		{name: "largest limit recovers from full debt", steps: []rateStep{
			{limit: maxLimit, units: maxLimit, want: governance.RateResult{Allowed: true, Reset: time.Minute}},
			{give: true, limit: maxLimit, units: -maxLimit},
			{at: 2*time.Minute + time.Second, limit: maxLimit, units: 1, want: governance.RateResult{Allowed: true, Remaining: maxLimit - 1, Reset: time.Microsecond}},
		}},
		{name: "a clock step back does not refill", steps: []rateStep{
			{at: time.Minute, limit: 1, units: 1, want: governance.RateResult{Allowed: true, Reset: time.Minute}},
			{at: 0, limit: 1, units: 1, want: governance.RateResult{Reset: time.Minute, RetryAfter: time.Minute}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCounters(t).RateCounter(rk("k"))
			for i, s := range tc.steps {
				if s.give {
					c.Give(s.limit, s.units, Epoch.Add(s.at))
					continue
				}
				if got := c.Take(s.limit, s.units, Epoch.Add(s.at)); got != s.want {
					t.Fatalf("step %d: got %+v, want %+v", i, got, s.want)
				}
			}
		})
	}
}

func concurrencyCases(t *testing.T, newCounters New) {
	cs := newCounters(t)
	k := governance.CounterKey{Scope: governance.ScopeTeam, Metric: governance.MetricParallel, ID: "t"}
	g := cs.ConcurrencyCounter(k)
	for i := range 3 {
		if r := g.Acquire(3); !r.Allowed || r.Unavailable {
			t.Fatalf("acquire %d: %+v", i, r)
		}
	}
	if r := g.Acquire(3); r.Allowed {
		t.Fatal("a fourth slot of three was granted")
	}
	if n := cs.ConcurrencyCounter(k).InFlight(); n != 3 {
		t.Fatalf("in flight %d, want 3 (the same key must yield the same counter)", n)
	}
	g.Release()
	if r := g.Acquire(3); !r.Allowed {
		t.Fatal("a released slot was not granted again")
	}
	for range 3 {
		g.Release()
	}
	if n := g.InFlight(); n != 0 {
		t.Fatalf("in flight %d after releasing all", n)
	}
}

func spendCases(t *testing.T, newCounters New) {
	const p1, p2 = 1_800_000_000, 1_800_086_400
	big := int64(1_000_000_000) * 1_000_000_000 // one billion USD: the largest budget
	type step struct {
		op                    string // hold, settle, set, spent
		period, limit, a, b   int64
		wantOK                bool
		wantSpent, wantHeld   int64
		wantBefore, wantAfter int64
		wantPeriod            int64 // of a hold; 0: the period asked for
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{name: "holds within the limit then denies", steps: []step{
			{op: "hold", period: p1, limit: 100, a: 60, wantOK: true, wantHeld: 60},
			{op: "hold", period: p1, limit: 100, a: 41, wantHeld: 60},
			{op: "hold", period: p1, limit: 100, a: 40, wantOK: true, wantHeld: 100},
			{op: "hold", period: p1, limit: 100, a: 0, wantHeld: 100},
		}},
		{name: "settle replaces the hold with the actual cost", steps: []step{
			{op: "hold", period: p1, limit: 100, a: 60, wantOK: true, wantHeld: 60},
			{op: "settle", period: p1, a: 60, b: 25, wantBefore: 0, wantAfter: 25},
			{op: "spent", period: p1, wantSpent: 25},
			{op: "hold", period: p1, limit: 100, a: 75, wantOK: true, wantSpent: 25, wantHeld: 75},
		}},
		{name: "a new period starts from zero spend and keeps holds", steps: []step{
			{op: "hold", period: p1, limit: 100, a: 10, wantOK: true, wantHeld: 10},
			{op: "settle", period: p1, a: 0, b: 90, wantAfter: 90},
			{op: "hold", period: p2, limit: 100, a: 95, wantOK: false, wantHeld: 10},
			{op: "hold", period: p2, limit: 100, a: 90, wantOK: true, wantHeld: 100},
			{op: "settle", period: p1, a: 10, b: 10, wantAfter: 0},
			{op: "spent", period: p2, wantHeld: 90},
			{op: "spent", period: p1, wantHeld: 90},
		}},
		{name: "a hold from a clock still in the last period counts in the new one", steps: []step{
			{op: "hold", period: p2, limit: 100, a: 60, wantOK: true, wantHeld: 60},
			{op: "settle", period: p2, a: 60, b: 60, wantBefore: 0, wantAfter: 60},
			{op: "hold", period: p1, limit: 100, a: 50, wantSpent: 60, wantPeriod: p2},
			{op: "hold", period: p1, limit: 100, a: 40, wantOK: true, wantSpent: 60, wantHeld: 40, wantPeriod: p2},
			{op: "settle", period: p2, a: 40, b: 40, wantBefore: 60, wantAfter: 100},
			{op: "spent", period: p2, wantSpent: 100},
			{op: "hold", period: p2, limit: 100, a: 1, wantSpent: 100},
		}},
		{name: "set spent takes a changed budget period back", steps: []step{
			{op: "hold", period: p2, limit: 100, a: 0, wantOK: true},
			{op: "set", period: p1, a: 30},
			{op: "hold", period: p1, limit: 100, a: 70, wantOK: true, wantSpent: 30, wantHeld: 70},
		}},
		{name: "no limit admits anything", steps: []step{
			{op: "hold", period: 0, limit: 0, a: big, wantOK: true, wantHeld: big},
			{op: "settle", period: 0, a: big, b: big - 1, wantAfter: big - 1},
			{op: "spent", period: 0, wantSpent: big - 1},
		}},
		{name: "amounts beyond float precision stay exact", steps: []step{
			{op: "set", period: p1, a: big - 3},
			{op: "hold", period: p1, limit: big, a: 3, wantOK: true, wantSpent: big - 3, wantHeld: 3},
			{op: "hold", period: p1, limit: big, a: 1, wantSpent: big - 3, wantHeld: 3},
			{op: "settle", period: p1, a: 3, b: 2, wantBefore: big - 3, wantAfter: big - 1},
			{op: "hold", period: p1, limit: big, a: 1, wantOK: true, wantSpent: big - 1, wantHeld: 1},
		}},
		{name: "set spent seeds an empty counter", steps: []step{
			{op: "set", period: p1, a: 70},
			{op: "spent", period: p1, wantSpent: 70},
			{op: "spent", period: p2},
			{op: "hold", period: p1, limit: 100, a: 31, wantSpent: 70},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCounters(t).SpendCounter(governance.CounterKey{Scope: governance.ScopeKey, Metric: governance.MetricSpend, ID: "k"})
			for i, s := range tc.steps {
				switch s.op {
				case "hold":
					r := c.Hold(s.period, s.limit, s.a)
					want := governance.BudgetResult{Allowed: s.wantOK, Spent: s.wantSpent, Held: s.wantHeld, Period: s.period}
					if s.wantPeriod != 0 {
						want.Period = s.wantPeriod
					}
					if r != want {
						t.Fatalf("step %d hold: %+v", i, r)
					}
				case "settle":
					if before, after := c.Settle(s.period, s.a, s.b); before != s.wantBefore || after != s.wantAfter {
						t.Fatalf("step %d settle: %d → %d, want %d → %d", i, before, after, s.wantBefore, s.wantAfter)
					}
				case "set":
					c.SetSpent(s.period, s.a)
				case "spent":
					if spent, held := c.Spent(s.period); spent != s.wantSpent || held != s.wantHeld {
						t.Fatalf("step %d spent: %d held %d, want %d held %d", i, spent, held, s.wantSpent, s.wantHeld)
					}
				}
			}
		})
	}
}

// Differential drives newCounters and MemoryCounters with the same random
// operations and fails at the first result that differs.
func Differential(t *testing.T, newCounters New) {
	got, want := newCounters(t), governance.NewMemoryCounters()
	rng := rand.New(rand.NewPCG(7, 11))
	limits := []int64{1, 3, 60, 1000, 12345, maxLimit}
	periods := []int64{0, 1_800_000_000, 1_800_086_400}
	now := Epoch
	for i := range 3000 {
		now = now.Add(time.Duration(rng.Int64N(int64(3 * time.Second))))
		if rng.IntN(50) == 0 {
			now = now.Add(time.Duration(rng.Int64N(int64(3 * time.Minute))))
		}
		id := string(rune('a' + rng.IntN(3)))
		limit := limits[rng.IntN(len(limits))]
		units := rng.Int64N(limit+2) - 1
		switch rng.IntN(6) {
		case 0, 1:
			k := rk(id + "/" + string(rune('0'+rng.IntN(2))))
			if a, b := got.RateCounter(k).Take(limit, max(units, 0), now), want.RateCounter(k).Take(limit, max(units, 0), now); a != b {
				t.Fatalf("op %d take(%d, %d): got %+v, memory %+v", i, limit, units, a, b)
			}
		case 2:
			k := rk(id + "/" + string(rune('0'+rng.IntN(2))))
			g := units - limit/2
			got.RateCounter(k).Give(limit, g, now)
			want.RateCounter(k).Give(limit, g, now)
		case 3, 4:
			k := governance.CounterKey{Scope: governance.ScopeTeam, Metric: governance.MetricSpend, ID: id}
			p := periods[rng.IntN(len(periods))]
			amount := rng.Int64N(1_000_000_000_000)
			if rng.IntN(2) == 0 {
				lim := rng.Int64N(5_000_000_000_000)
				if a, b := got.SpendCounter(k).Hold(p, lim, amount), want.SpendCounter(k).Hold(p, lim, amount); a != b {
					t.Fatalf("op %d hold: got %+v, memory %+v", i, a, b)
				}
			} else {
				held := rng.Int64N(1_000_000_000)
				b1, a1 := got.SpendCounter(k).Settle(p, held, amount)
				b2, a2 := want.SpendCounter(k).Settle(p, held, amount)
				if b1 != b2 || a1 != a2 {
					t.Fatalf("op %d settle: got %d→%d, memory %d→%d", i, b1, a1, b2, a2)
				}
			}
		case 5:
			k := governance.CounterKey{Scope: governance.ScopeTeam, Metric: governance.MetricSpend, ID: id}
			p := periods[rng.IntN(len(periods))]
			s1, h1 := got.SpendCounter(k).Spent(p)
			s2, h2 := want.SpendCounter(k).Spent(p)
			if s1 != s2 || h1 != h2 {
				t.Fatalf("op %d spent: got %d/%d, memory %d/%d", i, s1, h1, s2, h2)
			}
		}
	}
}
