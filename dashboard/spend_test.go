package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/trace"
)

func TestSpendTotalsAreExactAndScopedToTheKeysTeam(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	type want struct {
		group              string
		cost               int64
		usd                string
		requests, errors   int64
		input, out, cached int64
	}
	tests := []struct {
		name   string
		key    string
		target string
		total  want
		groups []want
	}{
		{"admin sees every team", adminKey, "/admin/spend?group_by=team",
			want{"", 3_002_234_580, "3.00223458", 7, 1, 1113, 324, 50},
			[]want{
				{"beta", costBetaLLM + costBetaSolo, "3.000000008", 2, 1, 1010, 300, 50},
				{"alpha", costAlphaLLM + costAlphaTool, "0.002234567", 4, 0, 100, 20, 0},
				{"", costLone, "0.000000005", 1, 0, 3, 4, 0},
			}},
		{"alpha key sees only alpha", alphaKey, "/admin/spend?group_by=team",
			want{"", 2_234_567, "0.002234567", 4, 0, 100, 20, 0},
			[]want{{"alpha", 2_234_567, "0.002234567", 4, 0, 100, 20, 0}}},
		{"beta key sees only beta, even grouped by model", betaKey, "/admin/spend?group_by=model",
			want{"", 3_000_000_008, "3.000000008", 2, 1, 1010, 300, 50},
			[]want{{"claude-haiku", 3_000_000_008, "3.000000008", 2, 1, 1010, 300, 50}}},
		{"alpha key may ask for its own team", alphaKey, "/admin/spend?team=alpha",
			want{"", 2_234_567, "0.002234567", 4, 0, 100, 20, 0},
			[]want{{"", 2_234_567, "0.002234567", 4, 0, 100, 20, 0}}},
		{"team-less key sees only its own spans", loneKey, "/admin/spend?group_by=key",
			want{"", costLone, "0.000000005", 1, 0, 3, 4, 0},
			[]want{{f.keyIDs[loneKey], costLone, "0.000000005", 1, 0, 3, 4, 0}}},
		{"admin filters by key", adminKey, "/admin/spend?group_by=tool&key=" + f.keyIDs[alphaKey],
			want{"", 2_234_567, "0.002234567", 4, 0, 100, 20, 0},
			[]want{{"", costAlphaLLM, "0.001234567", 3, 0, 100, 20, 0}, {"forecast", costAlphaTool, "0.001", 1, 0, 0, 0, 0}}},
		{"range excludes older spans", adminKey, "/admin/spend?range=90m&group_by=layer",
			want{"", costBetaSolo + costLone, "0.000000012", 2, 1, 13, 4, 0},
			[]want{{"llm", 12, "0.000000012", 2, 1, 13, 4, 0}}},
		{"from in unix seconds, to in RFC 3339", adminKey, "/admin/spend?from=0&to=" + now.Add(-90*time.Minute).Format(time.RFC3339),
			want{"", costAlphaLLM + costAlphaTool + costBetaLLM, "3.002234568", 5, 0, 1100, 320, 50},
			[]want{{"", costAlphaLLM + costAlphaTool + costBetaLLM, "3.002234568", 5, 0, 1100, 320, 50}}},
	}
	check := func(t *testing.T, what string, got amount, w want) {
		t.Helper()
		if got.CostNanoUSD != w.cost || got.CostUSD != w.usd || got.Requests != w.requests || got.Errors != w.errors ||
			got.InputTokens != w.input || got.OutputTokens != w.out || got.CachedTokens != w.cached {
			t.Errorf("%s = %+v, want %+v", what, got, w)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r spendResponse
			f.getJSON(t, tc.target, tc.key, http.StatusOK, &r)
			check(t, "total", r.Total, tc.total)
			if len(r.Groups) != len(tc.groups) {
				t.Fatalf("groups = %+v, want %d groups", r.Groups, len(tc.groups))
			}
			for i, g := range r.Groups {
				if g.Group != tc.groups[i].group {
					t.Errorf("groups[%d] = %q, want %q", i, g.Group, tc.groups[i].group)
				}
				check(t, "group "+g.Group, g.amount, tc.groups[i])
			}
			if r.Series != nil {
				t.Errorf("series without a bucket: %+v", r.Series)
			}
		})
	}
}

func TestSpendSeriesBucketsAndTopN(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h10, h11 := now.Add(-2*time.Hour), now.Add(-time.Hour)
	type cell struct {
		bucket time.Time
		group  string
		other  bool
	}
	tests := []struct {
		name       string
		target     string
		series     map[cell]int64
		groups     []string
		othersCost int64 // 0: no others row
	}{
		{"hourly by layer", "/admin/spend?bucket=hour&group_by=layer", map[cell]int64{
			{h10, "agent", false}: 0, {h10, "llm", false}: costAlphaLLM + costBetaLLM, {h10, "tool", false}: costAlphaTool,
			{h11, "llm", false}: costBetaSolo + costLone,
		}, []string{"llm", "tool", "agent"}, 0},
		{"hourly by model, top 1 folds the rest", "/admin/spend?bucket=hour&group_by=model&top=1", map[cell]int64{
			{h10, "claude-haiku", false}: costBetaLLM, {h10, "", true}: costAlphaLLM + costAlphaTool,
			{h11, "claude-haiku", false}: costBetaSolo, {h11, "", true}: costLone,
		}, []string{"claude-haiku"}, costAlphaLLM + costAlphaTool + costLone},
		{"daily by team", "/admin/spend?bucket=day&group_by=team&range=48h", map[cell]int64{
			{now.Truncate(24 * time.Hour), "beta", false}:  costBetaLLM + costBetaSolo,
			{now.Truncate(24 * time.Hour), "alpha", false}: costAlphaLLM + costAlphaTool,
			{now.Truncate(24 * time.Hour), "", false}:      costLone,
		}, []string{"beta", "alpha", ""}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r spendResponse
			f.getJSON(t, tc.target, adminKey, http.StatusOK, &r)
			got := map[cell]int64{}
			var sum int64
			for i, s := range r.Series {
				if i > 0 && s.Bucket.Before(r.Series[i-1].Bucket) {
					t.Errorf("series not ordered by bucket: %+v", r.Series)
				}
				if s.CostUSD != formatUSD(s.CostNanoUSD) {
					t.Errorf("series cost_usd %q for %d", s.CostUSD, s.CostNanoUSD)
				}
				got[cell{s.Bucket.UTC(), s.Group, s.Other}] = s.CostNanoUSD
				sum += s.CostNanoUSD
			}
			if len(got) != len(tc.series) {
				t.Errorf("series = %v, want %v", got, tc.series)
			}
			for k, v := range tc.series {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("series[%v] = %d (present %v), want %d", k, g, ok, v)
				}
			}
			if sum != r.Total.CostNanoUSD {
				t.Errorf("series sums to %d, total is %d", sum, r.Total.CostNanoUSD)
			}
			var names []string
			for _, g := range r.Groups {
				names = append(names, g.Group)
			}
			if len(names) != len(tc.groups) {
				t.Fatalf("groups = %q, want %q", names, tc.groups)
			}
			for i := range names {
				if names[i] != tc.groups[i] {
					t.Errorf("groups = %q, want %q", names, tc.groups)
				}
			}
			switch {
			case tc.othersCost == 0 && r.Others != nil:
				t.Errorf("unexpected others row %+v", r.Others)
			case tc.othersCost != 0 && (r.Others == nil || r.Others.CostNanoUSD != tc.othersCost || !r.Others.Other):
				t.Errorf("others = %+v, want cost %d", r.Others, tc.othersCost)
			}
		})
	}
}

func TestSpendRefusesBadQueriesAndForeignTeams(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, key, target string
		status            int
	}{
		{"no key", "", "/admin/spend", http.StatusUnauthorized},
		{"wrong key", "sk-sb-wrong", "/admin/spend", http.StatusUnauthorized},
		{"team key asks for another team", alphaKey, "/admin/spend?team=beta", http.StatusForbidden},
		{"team-less key asks for a team", loneKey, "/admin/spend?team=alpha", http.StatusForbidden},
		{"team-less key asks for another key", loneKey, "/admin/spend?key=" + f.keyIDs[alphaKey], http.StatusForbidden},
		{"unknown grouping", adminKey, "/admin/spend?group_by=colour", http.StatusBadRequest},
		{"unknown bucket", adminKey, "/admin/spend?bucket=week", http.StatusBadRequest},
		{"too many hourly buckets", adminKey, "/admin/spend?bucket=hour&range=2400h", http.StatusBadRequest},
		{"bad from", adminKey, "/admin/spend?from=yesterday", http.StatusBadRequest},
		{"to before from", adminKey, "/admin/spend?from=2026-03-10T00:00:00Z&to=2026-03-09T00:00:00Z", http.StatusBadRequest},
		{"range and from", adminKey, "/admin/spend?from=0&range=1h", http.StatusBadRequest},
		{"negative range", adminKey, "/admin/spend?range=-1h", http.StatusBadRequest},
		{"top zero", adminKey, "/admin/spend?top=0", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var e struct {
				Error struct{ Message, Type string }
			}
			f.getJSON(t, tc.target, tc.key, tc.status, &e)
			if e.Error.Message == "" || e.Error.Type == "" {
				t.Errorf("error body without message or type: %+v", e)
			}
		})
	}
}

// A read outside the key's scope is audited with the rule that refused it.
func TestOutOfScopeReadsAreAuditedWithTheirRule(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.getJSON(t, "/admin/spend?team=beta", alphaKey, http.StatusForbidden, nil)
	f.getJSON(t, "/admin/spend?team=alpha", loneKey, http.StatusForbidden, nil)
	if got, want := f.denials.rules(), []string{"scope.team", "scope.key"}; !slices.Equal(got, want) {
		t.Fatalf("audited rules %q, want %q", got, want)
	}
}

// The read APIs take a key by name as well as by id; a name they do not
// know, or one outside the caller's scope, is a 400, not an empty answer.
func TestReadsTakeAKeyByName(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := url.QueryEscape(f.keyIDs[alphaKey])
	for _, path := range []string{"/admin/spend", "/admin/budgets", "/admin/traces"} {
		var byID, byName any
		f.getJSON(t, path+"?key="+id, adminKey, http.StatusOK, &byID)
		f.getJSON(t, path+"?key=alpha-agent", adminKey, http.StatusOK, &byName)
		a, _ := json.Marshal(byID)
		b, _ := json.Marshal(byName)
		if string(a) != string(b) {
			t.Errorf("%s: by name %s, by id %s", path, b, a)
		}
		f.getJSON(t, path+"?key=no-such-key", adminKey, http.StatusBadRequest, nil)
		f.getJSON(t, path+"?key=beta-agent", alphaKey, http.StatusBadRequest, nil)
	}
	// A name may start with "key_" like an id; it is still found by name.
	admin := fiber.New()
	f.gov.RegisterAdmin(admin.Group("/admin"))
	req := httptest.NewRequest(http.MethodPost, "/admin/keys", strings.NewReader(`{"name":"key_ci","team":"beta"}`))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := admin.Test(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create key_ci: %v %v", resp, err)
	}
	var created struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil {
		t.Fatal(err)
	}
	ci := created.ID
	if err := f.store.WriteSpans(context.Background(), []trace.Span{{TraceID: tid(30), SpanID: sid(30), Layer: trace.LayerLLM,
		Name: "chat gpt-4o-mini", Start: time.Now().Add(-time.Minute), Status: trace.StatusOK, Team: "beta", KeyID: ci,
		KeyName: "key_ci", CostNanoUSD: 42}}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"key_ci", ci} {
		var r struct {
			Total struct {
				CostNanoUSD int64 `json:"cost_nano_usd"`
			}
		}
		f.getJSON(t, "/admin/spend?range=1h&key="+url.QueryEscape(key), adminKey, http.StatusOK, &r)
		if r.Total.CostNanoUSD != 42 {
			t.Errorf("spend of key=%s: %d nano-USD, want 42", key, r.Total.CostNanoUSD)
		}
	}
}

// A misspelt or repeated parameter is a 400: answering without it would
// pass off every team's numbers as the one asked for.
func TestReadsRefuseUnknownParameters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, path := range []string{
		"/admin/spend?tema=alpha",
		"/admin/spend?group_by=key&group_by=team",
		"/admin/traces?stauts=error",
		"/admin/traces/" + tid(1).String() + "?team=alpha",
		"/admin/budgets?range=1h",
		"/admin/audit?key=x",
	} {
		var e struct {
			Error struct{ Message string }
		}
		f.getJSON(t, path, adminKey, http.StatusBadRequest, &e)
		if !strings.Contains(e.Error.Message, "unknown parameter") && !strings.Contains(e.Error.Message, "more than once") {
			t.Errorf("%s: %q", path, e.Error.Message)
		}
	}
	// What the dashboard's own pages ask stays accepted.
	for _, path := range []string{
		"/admin/spend?range=24h&bucket=hour&group_by=team&top=8",
		"/admin/traces?limit=50&layer=llm&status=ok&min_cost_usd=0&min_duration=1ms",
		"/admin/audit?range=24h&limit=200&action=key.create&actor=admin&team=beta",
		"/admin/budgets",
	} {
		f.getJSON(t, path, adminKey, http.StatusOK, nil)
	}
}
