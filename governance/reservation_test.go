package governance

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRateLimits(t *testing.T) {
	t.Parallel()
	type step struct {
		kind    Kind
		name    string
		est     int64 // estimated tokens
		actual  int64 // tokens at settle
		hold    bool  // leave the reservation open
		release bool  // settle every open reservation first
		advance time.Duration
		deny    string // substring of the RateLimited message; "" = admitted
	}
	model := func(name string, est, actual int64) step {
		return step{kind: KindModel, name: name, est: est, actual: actual}
	}
	denied := func(s step, msg string) step { s.deny = msg; return s }
	tests := []struct {
		name  string
		key   LimitsConfig
		team  LimitsConfig
		steps []step
	}{
		{"key rpm", LimitsConfig{RPM: 2}, LimitsConfig{}, []step{
			model("m", 0, 0), model("m", 0, 0), denied(model("m", 0, 0), "key requests per minute"),
			{kind: KindModel, name: "m", advance: 30 * time.Second}, denied(model("m", 0, 0), "key requests"),
		}},
		{"team rpm", LimitsConfig{}, LimitsConfig{RPM: 1}, []step{
			model("m", 0, 0), denied(model("m", 0, 0), "team requests per minute"),
		}},
		{"key tpm counts the estimate", LimitsConfig{TPM: 100}, LimitsConfig{}, []step{
			model("m", 60, 60), denied(model("m", 60, 60), "key tokens per minute"), model("m", 40, 40),
		}},
		{"settle refunds unused tokens", LimitsConfig{TPM: 100}, LimitsConfig{}, []step{
			model("m", 80, 10), model("m", 80, 80), denied(model("m", 20, 0), "key tokens"),
		}},
		{"settle above the estimate puts the bucket in debt", LimitsConfig{TPM: 100}, LimitsConfig{}, []step{
			model("m", 0, 150), denied(model("m", 0, 0), "key tokens"),
			{kind: KindModel, name: "m", advance: 31 * time.Second},
		}},
		{"an estimate above the limit needs a full bucket", LimitsConfig{TPM: 100}, LimitsConfig{}, []step{
			model("m", 500, 500), denied(model("m", 0, 0), "key tokens"), denied(model("m", 0, 0), "key tokens"),
		}},
		{"team tpm", LimitsConfig{}, LimitsConfig{TPM: 50}, []step{
			model("m", 50, 50), denied(model("m", 1, 0), "team tokens"),
		}},
		{"per_model glob shares one bucket", LimitsConfig{PerModel: map[string]ModelLimits{"gpt-4o*": {RPM: 1}}}, LimitsConfig{}, []step{
			model("gpt-4o-mini", 0, 0), denied(model("gpt-4o", 0, 0), "key per-model requests"), model("claude", 0, 0),
		}},
		{"per_model exact name beats glob", LimitsConfig{PerModel: map[string]ModelLimits{"gpt-4o*": {RPM: 1}, "gpt-4o-mini": {RPM: 3}}}, LimitsConfig{}, []step{
			model("gpt-4o-mini", 0, 0), model("gpt-4o-mini", 0, 0), model("gpt-4o-mini", 0, 0),
			denied(model("gpt-4o-mini", 0, 0), "per-model requests"), model("gpt-4o", 0, 0),
		}},
		{"per_model tpm", LimitsConfig{PerModel: map[string]ModelLimits{"big-*": {TPM: 10}}}, LimitsConfig{}, []step{
			model("big-1", 10, 10), denied(model("big-2", 1, 1), "per-model tokens"), model("small", 1000, 1000),
		}},
		{"max_parallel", LimitsConfig{MaxParallel: 1}, LimitsConfig{}, []step{
			{kind: KindTool, name: "t", hold: true}, denied(step{kind: KindModel, name: "m"}, "concurrent requests for this key"),
			{kind: KindAgent, name: "a", release: true},
		}},
		{"team max_parallel", LimitsConfig{}, LimitsConfig{MaxParallel: 2}, []step{
			{kind: KindModel, name: "m", hold: true}, {kind: KindModel, name: "m", hold: true},
			denied(step{kind: KindModel, name: "m"}, "concurrent requests for this team"),
		}},
		{"tool_rpm only counts tools", LimitsConfig{ToolRPM: 1, RPM: 1}, LimitsConfig{}, []step{
			{kind: KindTool, name: "w__a"}, denied(step{kind: KindTool, name: "w__b"}, "key tool calls per minute"),
			model("m", 0, 0), {kind: KindAgent, name: "a"}, {kind: KindAgent, name: "a"},
		}},
		{"agent_rpm", LimitsConfig{}, LimitsConfig{AgentRPM: 1}, []step{
			{kind: KindAgent, name: "a"}, denied(step{kind: KindAgent, name: "b"}, "team agent calls per minute"), {kind: KindTool, name: "t"},
		}},
		{"a denial takes nothing from earlier counters", LimitsConfig{RPM: 3}, LimitsConfig{TPM: 10}, []step{
			model("m", 5, 5), denied(model("m", 6, 0), "team tokens"), denied(model("m", 6, 0), "team tokens"),
			model("m", 1, 1), model("m", 1, 1), denied(model("m", 1, 1), "key requests"),
		}},
		{"unlimited", LimitsConfig{}, LimitsConfig{}, []step{
			model("m", 1e9, 1e9), model("m", 1e9, 1e9), {kind: KindTool, name: "t"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, clock := newGov(t, Config{
				Teams: []TeamConfig{{Name: "team", Limits: tt.team}},
				Keys:  []KeyConfig{{Name: "k", Key: rawKey("k"), Team: "team", Limits: tt.key}},
			})
			p := mustAuth(t, g, "k")
			var open []*Reservation
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				if s.release {
					for _, r := range open {
						r.Settle(0, 0)
					}
					open = nil
				}
				r, err := g.Reserve(p, Request{Kind: s.kind, Name: s.name, EstimatedTokens: s.est})
				if s.deny != "" {
					var ge *Error
					if !errors.As(err, &ge) || ge.Kind != RateLimited || ge.HTTPStatus() != http.StatusTooManyRequests || !strings.Contains(ge.Message, s.deny) {
						t.Fatalf("step %d: err = %v, want RateLimited %q", i, err, s.deny)
					}
					if ge.RetryAfter <= 0 {
						t.Fatalf("step %d: no Retry-After", i)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if s.hold {
					open = append(open, r)
					continue
				}
				r.Settle(0, s.actual)
			}
		})
	}
}

func TestRateLimitHeaders(t *testing.T) {
	t.Parallel()
	g, _ := newGov(t, Config{
		Teams: []TeamConfig{{Name: "team", Limits: LimitsConfig{RPM: 5}}},
		Keys:  []KeyConfig{{Name: "k", Key: rawKey("k"), Team: "team", Limits: LimitsConfig{RPM: 10, TPM: 1000}}},
	})
	p := mustAuth(t, g, "k")
	r, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedTokens: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	r.RateLimitHeaders(func(k, v string) { got[k] = v })
	want := map[string]string{
		// The team's bucket is the tighter one, so it is reported.
		"X-Ratelimit-Limit-Requests": "5", "X-Ratelimit-Remaining-Requests": "4", "X-Ratelimit-Reset-Requests": "12s",
		"X-Ratelimit-Limit-Tokens": "1000", "X-Ratelimit-Remaining-Tokens": "900", "X-Ratelimit-Reset-Tokens": "6s",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	r.Settle(0, 100)
	for range 4 {
		r, err := g.Reserve(p, Request{Kind: KindModel, Name: "m"})
		if err != nil {
			t.Fatal(err)
		}
		r.Settle(0, 0)
	}
	_, err = g.Reserve(p, Request{Kind: KindModel, Name: "m"})
	var ge *Error
	if !errors.As(err, &ge) || ge.RetryAfter != 12*time.Second {
		t.Fatalf("err = %v, want RetryAfter 12s (one request refills in 60s/5)", err)
	}
	got = map[string]string{}
	ge.RateLimitHeaders(func(k, v string) { got[k] = v })
	if got["Retry-After"] != "12" || got["X-Ratelimit-Remaining-Requests"] != "0" || got["X-Ratelimit-Limit-Requests"] != "5" {
		t.Errorf("denial headers %v", got)
	}
	// No limits, no headers.
	g2, _ := newGov(t, Config{Keys: []KeyConfig{{Name: "k", Key: rawKey("k")}}})
	r2, err := g2.Reserve(mustAuth(t, g2, "k"), Request{Kind: KindModel, Name: "m"})
	if err != nil {
		t.Fatal(err)
	}
	r2.RateLimitHeaders(func(k, v string) { t.Errorf("unexpected header %s", k) })
}

func TestSettleIsIdempotent(t *testing.T) {
	t.Parallel()
	g, _ := newGov(t, Config{Keys: []KeyConfig{{Name: "k", Key: rawKey("k"), Limits: LimitsConfig{MaxParallel: 1, TPM: 100}}}})
	p := mustAuth(t, g, "k")
	r, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedTokens: 50, EstimatedCostNanoUSD: 10})
	if err != nil {
		t.Fatal(err)
	}
	r.Settle(7, 50)
	r.Settle(7, 0)
	r.Settle(7, 0)
	if n := g.counters.ConcurrencyCounter(CounterKey{Scope: ScopeKey, Metric: MetricParallel, ID: p.KeyID}).InFlight(); n != 0 {
		t.Fatalf("in flight = %d after repeated settles", n)
	}
	if spent, held := g.counters.SpendCounter(CounterKey{Scope: ScopeKey, Metric: MetricSpend, ID: p.KeyID}).Spent(0); spent != 7 || held != 0 {
		t.Fatalf("spent %d held %d, want 7 and 0", spent, held)
	}
	// Only the first settle's token correction applies: 50 used, 50 left.
	if _, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedTokens: 51}); err == nil {
		t.Fatal("tokens were refunded by a repeated settle")
	}
	var nilRes *Reservation
	nilRes.Settle(1, 1)
}

func TestAdminIsUnlimited(t *testing.T) {
	t.Parallel()
	g, _ := newGov(t, Config{AdminKey: testAdminKey})
	p, err := g.Authenticate(testAdminKey)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		r, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedTokens: 1e6, EstimatedCostNanoUSD: usd(1000)})
		if err != nil {
			t.Fatal(err)
		}
		r.Settle(usd(1), 10)
	}
	if _, err := g.Reserve(p, Request{Kind: "gizmo", Name: "m"}); err == nil {
		t.Fatal("unknown kind reserved")
	}
}
