package governance

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// spendLog stands in for the span store: what each settled request cost,
// by key and team, and when.
type spendLog struct {
	mu   sync.Mutex
	rows []spendRow
}

type spendRow struct {
	key, team string
	at        time.Time
	cost      int64
}

func (l *spendLog) add(p *Principal, at time.Time, cost int64) {
	l.mu.Lock()
	l.rows = append(l.rows, spendRow{p.KeyID, p.Team, at, cost})
	l.mu.Unlock()
}

func (l *spendLog) SpendSince(_ context.Context, scope, id string, since time.Time) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sum int64
	for _, r := range l.rows {
		if (scope == "key" && r.key == id || scope == "team" && r.team == id) && !r.at.Before(since) {
			sum += r.cost
		}
	}
	return sum, nil
}

func TestRuntimeKeysAndSpendSurviveRestart(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	spans := &spendLog{}
	clock := newTestClock()
	cfg := adminConfig()
	start := func() *Governor {
		g, err := New(cfg, store, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), WithClock(clock.Now))
		if err != nil {
			t.Fatal(err)
		}
		if err := g.RebuildSpend(context.Background(), spans); err != nil {
			t.Fatal(err)
		}
		return g
	}

	g := start()
	a := newAdmin(t, g)
	if status, body := a.do(http.MethodPost, "/admin/teams", `{"name":"night","budget":{"usd":"5","period":"daily"}}`); status != http.StatusCreated {
		t.Fatalf("create team: %d %v", status, body)
	}
	status, created := a.do(http.MethodPost, "/admin/keys", `{"name":"bot","team":"night","budget":{"usd":"1","period":"daily"}}`)
	if status != http.StatusCreated {
		t.Fatalf("create key: %d %v", status, created)
	}
	raw := created["key"].(string)
	p, err := g.Authenticate(raw)
	if err != nil {
		t.Fatal(err)
	}
	yesterday := clock.Now().Add(-24 * time.Hour)
	spans.add(p, yesterday, usd(1)) // an earlier period must not count
	r, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: usd(1)})
	if err != nil {
		t.Fatal(err)
	}
	r.Settle(usd(1)*9/10, 0)
	spans.add(p, clock.Now(), usd(1)*9/10)

	// Restart: a new Governor on the same store and span log.
	clock.Advance(time.Hour)
	g2 := start()
	p2, err := g2.Authenticate(raw)
	if err != nil {
		t.Fatalf("runtime key lost on restart: %v", err)
	}
	if p2.KeyID != p.KeyID || p2.Team != "night" {
		t.Fatalf("principal after restart %+v", p2)
	}
	if _, err := g2.Reserve(p2, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: usd(1) / 5}); err == nil {
		t.Fatal("spend was not rebuilt: $0.90 + $0.20 passed a $1 budget")
	}
	r2, err := g2.Reserve(p2, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: usd(1) / 10})
	if err != nil {
		t.Fatalf("the remaining $0.10 should fit: %v", err)
	}
	r2.Settle(0, 0)
	if spent, _ := g2.counters.SpendCounter(CounterKey{Scope: ScopeTeam, Metric: MetricSpend, ID: "night"}).Spent(PeriodDaily.start(clock.Now())); spent != usd(1)*9/10 {
		t.Fatalf("team spend after restart = %d", spent)
	}
	// A rotation persists too.
	status, rotated := newAdmin(t, g2).do(http.MethodPost, "/admin/keys/bot/rotate", "")
	if status != http.StatusOK {
		t.Fatalf("rotate: %d %v", status, rotated)
	}
	g3 := start()
	if _, err := g3.Authenticate(raw); err == nil {
		t.Fatal("rotated-away key works after restart")
	}
	if _, err := g3.Authenticate(rotated["key"].(string)); err != nil {
		t.Fatalf("rotated key lost on restart: %v", err)
	}
}

func TestRuntimeRecordsThatNoLongerFitAreSkipped(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	cfg := adminConfig()
	g, err := New(cfg, store, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := newAdmin(t, g)
	_, shadow := a.do(http.MethodPost, "/admin/keys", `{"name":"later-in-config"}`)
	_, orphan := a.do(http.MethodPost, "/admin/keys", `{"name":"orphan","team":"platform"}`)
	store.records[RecordKindKey]["garbage"] = Record{Kind: RecordKindKey, ID: "garbage", Data: []byte("{not json")}

	// The config now declares a key with the runtime key's name and drops its team.
	cfg.Teams = nil
	cfg.Keys = []KeyConfig{{Name: "later-in-config", Key: rawKey("cfg")}}
	g2, err := New(cfg, store, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatalf("New must not fail on stale records: %v", err)
	}
	if p, err := g2.Authenticate(rawKey("cfg")); err != nil || p.KeyID != configKeyID("later-in-config") {
		t.Fatalf("config key: %v %v", p, err)
	}
	for _, raw := range []any{shadow["key"], orphan["key"]} {
		if _, err := g2.Authenticate(raw.(string)); err == nil {
			t.Fatalf("stale runtime key still authenticates")
		}
	}
}
