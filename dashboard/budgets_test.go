package dashboard

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestBudgetsShowLimitPeriodAndSpendFromTheGovernorsCounters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	day := func(m time.Month, d int) *time.Time {
		t := time.Date(2026, m, d, 0, 0, 0, 0, time.UTC)
		return &t
	}
	ratio := func(r float64) *float64 { return &r }
	alphaTeam := budgetView{Scope: "team", ID: "alpha", Name: "alpha", Team: "alpha", Period: "monthly",
		PeriodStart: day(3, 1), PeriodEnd: day(4, 1), LimitNanoUSD: 10_000_000_000, LimitUSD: "10",
		SpentNanoUSD: costAlphaLLM + costAlphaTool, SpentUSD: "0.002234567", HeldNanoUSD: heldAlpha, HeldUSD: "0.0003",
		UsedRatio: ratio(0.0002234567)}
	betaTeam := budgetView{Scope: "team", ID: "beta", Name: "beta", Team: "beta", Period: "daily",
		PeriodStart: day(3, 10), PeriodEnd: day(3, 11), LimitNanoUSD: 500_000_000, LimitUSD: "0.5",
		SpentNanoUSD: costBetaLLM + costBetaSolo, SpentUSD: "3.000000008", HeldUSD: "0",
		UsedRatio: ratio(6.000000016)}
	lone := budgetView{Scope: "key", ID: f.keyIDs[loneKey], Name: "lone", Period: "none",
		LimitNanoUSD: 10, LimitUSD: "0.00000001", SpentNanoUSD: costLone, SpentUSD: "0.000000005", HeldUSD: "0",
		UsedRatio: ratio(0.5)}
	// 2026-03-10 is a Tuesday: the week began on Monday the 9th.
	alphaKeyBudget := budgetView{Scope: "key", ID: f.keyIDs[alphaKey], Name: "alpha-agent", Team: "alpha", Period: "weekly",
		PeriodStart: day(3, 9), PeriodEnd: day(3, 16), LimitNanoUSD: 2_500_000_000, LimitUSD: "2.5",
		SpentNanoUSD: costAlphaLLM + costAlphaTool, SpentUSD: "0.002234567", HeldNanoUSD: heldAlpha, HeldUSD: "0.0003",
		UsedRatio: ratio(0.0008938268)}
	betaKeyBudget := budgetView{Scope: "key", ID: f.keyIDs[betaKey], Name: "beta-agent", Team: "beta", Period: "none",
		SpentNanoUSD: costBetaLLM + costBetaSolo, SpentUSD: "3.000000008", HeldUSD: "0"}

	tests := []struct {
		name, key, query string
		team             string
		want             []budgetView
	}{
		{"admin sees every team and key", adminKey, "", "",
			[]budgetView{alphaTeam, betaTeam, lone, alphaKeyBudget, betaKeyBudget}},
		{"admin filters by team", adminKey, "?team=beta", "beta", []budgetView{betaTeam, betaKeyBudget}},
		{"admin filters by key", adminKey, "?key=" + url.QueryEscape(f.keyIDs[loneKey]), "", []budgetView{lone}},
		{"team key sees its team and its keys", alphaKey, "", "alpha", []budgetView{alphaTeam, alphaKeyBudget}},
		{"team key naming its own team", betaKey, "?team=beta", "beta", []budgetView{betaTeam, betaKeyBudget}},
		{"key without a team sees only itself", loneKey, "", "", []budgetView{lone}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r budgetsResponse
			f.getJSON(t, "/admin/budgets"+tc.query, tc.key, http.StatusOK, &r)
			if r.Team != tc.team {
				t.Errorf("team = %q, want %q", r.Team, tc.team)
			}
			if len(r.Budgets) != len(tc.want) {
				t.Fatalf("got %d budgets %+v, want %d", len(r.Budgets), r.Budgets, len(tc.want))
			}
			for i, got := range r.Budgets {
				if msg := diffBudget(got, tc.want[i]); msg != "" {
					t.Errorf("budgets[%d] (%s %s): %s", i, got.Scope, got.Name, msg)
				}
			}
		})
	}
}

// diffBudget compares two budget views; the ratio, a float for drawing, to
// within one part in 10^12.
func diffBudget(got, want budgetView) string {
	g, w := got, want
	g.PeriodStart, g.PeriodEnd, g.UsedRatio = nil, nil, nil
	w.PeriodStart, w.PeriodEnd, w.UsedRatio = nil, nil, nil
	switch {
	case g != w:
		return "got " + jsonString(g) + ", want " + jsonString(w)
	case !sameTime(got.PeriodStart, want.PeriodStart) || !sameTime(got.PeriodEnd, want.PeriodEnd):
		return "period " + jsonString([]*time.Time{got.PeriodStart, got.PeriodEnd}) + ", want " +
			jsonString([]*time.Time{want.PeriodStart, want.PeriodEnd})
	case (got.UsedRatio == nil) != (want.UsedRatio == nil):
		return "used_ratio " + jsonString(got.UsedRatio) + ", want " + jsonString(want.UsedRatio)
	case got.UsedRatio != nil && (*got.UsedRatio-*want.UsedRatio > 1e-12*(*want.UsedRatio) ||
		*want.UsedRatio-*got.UsedRatio > 1e-12*(*want.UsedRatio)):
		return "used_ratio " + jsonString(*got.UsedRatio) + ", want " + jsonString(*want.UsedRatio)
	}
	return ""
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func TestBudgetsRefuseForeignTeamsAndMissingKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, key, query string
		status           int
	}{
		{"no key", "", "", http.StatusUnauthorized},
		{"wrong key", "sk-sb-not-a-key-0123456789abcdef", "", http.StatusUnauthorized},
		{"team key asks for another team", alphaKey, "?team=beta", http.StatusForbidden},
		{"key without a team asks for a team", loneKey, "?team=alpha", http.StatusForbidden},
		{"key without a team asks for another key", loneKey, "?key=" + url.QueryEscape(f.keyIDs[alphaKey]), http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f.getJSON(t, "/admin/budgets"+tc.query, tc.key, tc.status, nil)
		})
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
