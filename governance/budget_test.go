package governance

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

func TestPeriodStart(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 18, 15, 4, 5, 0, time.UTC) // Wednesday
	tests := []struct {
		p          Period
		start, end time.Time
	}{
		{PeriodDaily, time.Date(2026, 11, 18, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC)},
		{PeriodWeekly, time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)},
		{PeriodMonthly, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{PeriodNone, time.Unix(0, 0).UTC(), time.Time{}},
	}
	for _, tt := range tests {
		if got := time.Unix(tt.p.start(at), 0).UTC(); !got.Equal(tt.start) {
			t.Errorf("%v start = %v, want %v", tt.p, got, tt.start)
		}
		if got := tt.p.next(at); !got.Equal(tt.end) {
			t.Errorf("%v next = %v, want %v", tt.p, got, tt.end)
		}
	}
	// Monday and Sunday edges of the ISO week, and a non-UTC clock.
	mon := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	sun := time.Date(2026, 11, 22, 23, 59, 59, 0, time.FixedZone("x", -5*3600))
	if PeriodWeekly.start(mon) != mon.Unix() || PeriodWeekly.start(sun) != time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).Unix() {
		t.Errorf("weekly edges wrong")
	}
}

func TestBudgets(t *testing.T) {
	t.Parallel()
	type step struct {
		key     string
		est     int64
		actual  int64
		advance time.Duration
		deny    string // substring of the BudgetExceeded message
	}
	cfg := Config{
		Orgs: []OrgConfig{{Name: "acme", Budget: BudgetConfig{USD: "5", Period: "monthly"}}},
		Teams: []TeamConfig{
			{Name: "a", Org: "acme", Budget: BudgetConfig{USD: "3", Period: "weekly"}},
			{Name: "b", Org: "acme"},
		},
		Keys: []KeyConfig{
			{Name: "daily", Key: rawKey("daily"), Budget: BudgetConfig{USD: "1", Period: "daily"}},
			{Name: "forever", Key: rawKey("forever"), Budget: BudgetConfig{USD: "1"}},
			{Name: "a1", Key: rawKey("a1"), Team: "a"},
			{Name: "a2", Key: rawKey("a2"), Team: "a"},
			{Name: "b1", Key: rawKey("b1"), Team: "b"},
		},
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"key daily budget resets at midnight UTC", []step{
			{key: "daily", est: usd(1) * 6 / 10, actual: usd(1) * 6 / 10},
			{key: "daily", est: usd(1) * 6 / 10, deny: "key budget: this call may cost up to 0.6 USD, more than the 0.4 USD left for this day; it resets at "},
			{key: "daily", est: usd(1) * 4 / 10, actual: usd(1) * 4 / 10},
			{key: "daily", est: 0, deny: "key budget exceeded for this day; it resets at "},
			{key: "daily", advance: 12 * time.Hour, est: usd(1), actual: usd(1)},
		}},
		{"settle replaces the estimate with the actual cost", []step{
			{key: "forever", est: usd(1), actual: 1},
			{key: "forever", est: usd(1) - 1, actual: usd(1) - 1},
			{key: "forever", est: 0, deny: "key budget exceeded"},
		}},
		{"no period never resets", []step{
			{key: "forever", est: usd(1), actual: usd(1)},
			{key: "forever", advance: 400 * 24 * time.Hour, est: 1, deny: "key budget exceeded"},
		}},
		{"team budget is shared by its keys", []step{
			{key: "a1", est: usd(2), actual: usd(2)},
			{key: "a2", est: usd(2), deny: "team budget: this call may cost up to 2 USD, more than the 1 USD left for this week"},
			{key: "a2", est: usd(1), actual: usd(1)},
			{key: "a1", est: 1, deny: "team budget exceeded"},
			{key: "a1", advance: 5 * 24 * time.Hour, est: usd(1), actual: usd(1)}, // next Monday
		}},
		{"org budget spans teams", []step{
			{key: "a1", est: usd(3), actual: usd(3)},
			{key: "b1", est: usd(2), actual: usd(2)},
			{key: "b1", est: 1, deny: "org budget exceeded for this month"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, clock := newGov(t, cfg)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				r, err := g.Reserve(mustAuth(t, g, s.key), Request{Kind: KindTool, Name: "t", EstimatedCostNanoUSD: s.est})
				if s.deny != "" {
					var ge *Error
					if !errors.As(err, &ge) || ge.Kind != BudgetExceeded || ge.HTTPStatus() != http.StatusTooManyRequests ||
						ge.Type() != "budget_exceeded" || !strings.Contains(ge.Message, s.deny) {
						t.Fatalf("step %d: err = %v, want BudgetExceeded %q", i, err, s.deny)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				r.Settle(s.actual, 0)
			}
		})
	}
}

func TestBudgetHoldsTheEstimateUntilSettle(t *testing.T) {
	t.Parallel()
	g, _ := newGov(t, Config{Keys: []KeyConfig{{Name: "k", Key: rawKey("k"), Budget: BudgetConfig{USD: "1"}}}})
	p := mustAuth(t, g, "k")
	r, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: usd(1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: 1}); err == nil {
		t.Fatal("admitted while the whole budget is held")
	}
	r.Settle(usd(1)/2, 0)
	r2, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: usd(1) / 2})
	if err != nil {
		t.Fatalf("after settle: %v", err)
	}
	r2.Settle(0, 0)
}

func TestBudgetRetryAfterIsThePeriodEnd(t *testing.T) {
	t.Parallel()
	g, _ := newGov(t, Config{Keys: []KeyConfig{{Name: "k", Key: rawKey("k"), Budget: BudgetConfig{USD: "0", Period: "daily"}}}})
	g2, _ := newGov(t, Config{Keys: []KeyConfig{{Name: "k", Key: rawKey("k"), Budget: BudgetConfig{USD: "0.000000001", Period: "daily"}}}})
	p := mustAuth(t, g2, "k")
	r, err := g2.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: 1})
	if err != nil {
		t.Fatal(err)
	}
	r.Settle(1, 0)
	_, err = g2.Reserve(p, Request{Kind: KindModel, Name: "m"})
	var ge *Error
	if !errors.As(err, &ge) || ge.RetryAfter != 12*time.Hour {
		t.Fatalf("err = %v, want RetryAfter 12h", err)
	}
	got := map[string]string{}
	ge.RateLimitHeaders(func(k, v string) { got[k] = v })
	if got["Retry-After"] != "43200" {
		t.Fatalf("headers %v", got)
	}
	// usd: 0 means no cap, not a zero budget.
	if _, err := g.Reserve(mustAuth(t, g, "k"), Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: usd(5)}); err != nil {
		t.Fatalf("usd 0: %v", err)
	}
}

func counterValue(t *testing.T, g *Governor, scope, threshold string) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.metrics.budgetAlerts.WithLabelValues(scope, threshold).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestSoftBudgetAlerts(t *testing.T) {
	t.Parallel()
	g, clock := newGov(t, Config{
		Teams: []TeamConfig{{Name: "t", Budget: BudgetConfig{USD: "100", Period: "daily"}}},
		Keys:  []KeyConfig{{Name: "k", Key: rawKey("k"), Team: "t", Budget: BudgetConfig{USD: "10", Period: "daily"}}},
	})
	p := mustAuth(t, g, "k")
	spend := func(n int64) {
		t.Helper()
		r, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: n})
		if err != nil {
			t.Fatal(err)
		}
		r.Settle(n, 0)
	}
	want := func(k50, k80, k100, t50 float64) {
		t.Helper()
		for _, c := range []struct {
			scope, th string
			want      float64
		}{{"key", "50", k50}, {"key", "80", k80}, {"key", "100", k100}, {"team", "50", t50}} {
			if got := counterValue(t, g, c.scope, c.th); got != c.want {
				t.Errorf("alerts{%s,%s} = %v, want %v", c.scope, c.th, got, c.want)
			}
		}
	}
	spend(usd(4))
	want(0, 0, 0, 0)
	spend(usd(1)) // exactly 50%
	want(1, 0, 0, 0)
	spend(usd(1))
	want(1, 0, 0, 0)
	spend(usd(4)) // 80% and 100% in one settle
	want(1, 1, 1, 0)
	clock.Advance(24 * time.Hour)
	spend(usd(9))
	want(2, 2, 1, 0)
	// Holds refuse the call that would overspend, so settled spend may never
	// reach 100%: the first refusal gives that alert, once a period.
	refuse := func(n int64) {
		t.Helper()
		if _, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: n}); err == nil {
			t.Fatal("reserved past the budget")
		}
	}
	refuse(usd(2))
	want(2, 2, 2, 0)
	refuse(usd(2))
	spend(usd(1)) // settles at exactly 100%: already alerted
	refuse(usd(1))
	want(2, 2, 2, 0)
	clock.Advance(24 * time.Hour)
	refuse(usd(11))
	want(2, 2, 3, 0)
}

func TestRebuildSpend(t *testing.T) {
	t.Parallel()
	cfg := Config{
		Orgs:  []OrgConfig{{Name: "acme", Budget: BudgetConfig{USD: "10", Period: "monthly"}}},
		Teams: []TeamConfig{{Name: "a", Org: "acme", Budget: BudgetConfig{USD: "5", Period: "daily"}}, {Name: "b", Org: "acme"}},
		Keys:  []KeyConfig{{Name: "k", Key: rawKey("k"), Team: "b", Budget: BudgetConfig{USD: "2", Period: "weekly"}}},
	}
	g, _ := newGov(t, cfg)
	kid := mustAuth(t, g, "k").KeyID
	src := mapSpend{
		"team/a@2026-11-18":          usd(1),
		"team/a@2026-11-01":          usd(3), // a's spend over the org's month
		"team/b@1970-01-01":          usd(4), // b has no period of its own
		"team/b@2026-11-01":          usd(4),
		"key/" + kid + "@2026-11-16": usd(2) - 5,
	}
	if err := g.RebuildSpend(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	check := func(scope Scope, id string, p Period, want int64) {
		t.Helper()
		got, _ := g.counters.SpendCounter(CounterKey{Scope: scope, Metric: MetricSpend, ID: id}).Spent(p.start(g.now()))
		if got != want {
			t.Errorf("%v %s spend = %d, want %d", scope, id, got, want)
		}
	}
	check(ScopeTeam, "a", PeriodDaily, usd(1))
	check(ScopeTeam, "b", PeriodNone, usd(4))
	check(ScopeOrg, "acme", PeriodMonthly, usd(7))
	check(ScopeKey, kid, PeriodWeekly, usd(2)-5)
	p := mustAuth(t, g, "k")
	if _, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: 6}); err == nil {
		t.Fatal("rebuilt key spend not enforced")
	}
	if _, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: 5}); err != nil {
		t.Fatalf("remaining 5 nano-USD should fit: %v", err)
	}
	if err := g.RebuildSpend(context.Background(), failingSpend{}); err == nil {
		t.Fatal("rebuild error swallowed")
	}
}

type failingSpend struct{}

func (failingSpend) SpendSince(context.Context, string, string, time.Time) (int64, error) {
	return 0, errors.New("storage down")
}

// A change that gives a budget another window (another period, or a budget
// where there was none) seeds the window's spend from storage, as a start
// does: the counter would otherwise start it at zero, and a key that had
// spent its month could spend it again.
func TestNewBudgetWindowIsSeededFromStorage(t *testing.T) {
	t.Parallel()
	cfg := Config{
		Teams: []TeamConfig{{Name: "b"}},
		Keys:  []KeyConfig{{Name: "k", Key: rawKey("k"), Team: "b", Budget: BudgetConfig{USD: "10", Period: "daily"}}},
	}
	g, _ := newGov(t, cfg)
	kid := mustAuth(t, g, "k").KeyID
	src := mapSpend{
		"key/" + kid + "@2026-11-18": usd(2),
		"key/" + kid + "@2026-11-01": usd(18),
		"team/b@1970-01-01":          usd(18),
		"team/b@2026-11-18":          usd(2),
	}
	if err := g.RebuildSpend(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	spent := func(scope Scope, id string, p Period) int64 {
		got, _ := g.counters.SpendCounter(CounterKey{Scope: scope, Metric: MetricSpend, ID: id}).Spent(p.start(g.now()))
		return got
	}
	cfg.Secret = testSecret
	cfg.Keys[0].Budget.Period = "monthly"
	cfg.Teams[0].Budget = BudgetConfig{USD: "5", Period: "daily"}
	if err := g.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if got := spent(ScopeKey, kid, PeriodMonthly); got != usd(18) {
		t.Errorf("key spend in its new monthly window = %d, want %d", got, usd(18))
	}
	if got := spent(ScopeTeam, "b", PeriodDaily); got != usd(2) {
		t.Errorf("team spend in its new daily budget = %d, want %d", got, usd(2))
	}
	if _, err := g.Reserve(mustAuth(t, g, "k"), Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: 1}); err == nil {
		t.Error("a key over its new monthly budget was let through")
	}
}
