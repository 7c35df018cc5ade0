package app

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sqlPayloads are SQL and ClickHouse metacharacters an attacker puts in every name that reaches a query.
var sqlPayloads = []string{
	`' OR 1=1 --`, `platform' OR '1'='1`, `\' OR 1=1 --`, "`platform`", "platform\x00' OR 1=1", `platform'; DROP TABLE spans; --`,
	`') UNION ALL SELECT * FROM system.tables --`, `%`, `_`, `\`, `platform%00`,
}

// Names that reach a store query are plain data: filters with SQL metacharacters match nothing (and never
// everything), are refused, or are stored verbatim; nothing answers 500 or reaches an upstream.
func TestSecuritySQLMetacharacters(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	admin := map[string]string{"Authorization": "Bearer " + secAdminKey}

	// Seed one span of team platform, so "matches everything" is visible.
	if r := g.raw(t, "POST", "/v1/chat/completions", aliceAuth, `{"model":"model-a","messages":[{"role":"user","content":"hi"}]}`); r.status != 200 {
		t.Fatalf("seed call: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(15 * time.Second)
	for spendGroups(t, g.raw(t, "GET", "/admin/spend?group_by=team&range=24h&team=platform", admin, "")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the seed call never reached the spend query")
		}
		time.Sleep(50 * time.Millisecond)
	}
	traces := func(r rawResponse) int {
		var v struct {
			Traces []json.RawMessage `json:"traces"`
		}
		if json.Unmarshal([]byte(r.body), &v) != nil {
			return -1
		}
		return len(v.Traces)
	}
	if n := traces(g.raw(t, "GET", "/admin/traces?team=platform", admin, "")); n < 1 {
		t.Fatalf("seed trace not listed: %d", n)
	}

	for _, p := range sqlPayloads {
		q := url.QueryEscape(p)
		t.Run("query/"+p, func(t *testing.T) {
			before := g.upstreamWork()
			for _, path := range []string{
				"/admin/spend?range=24h&group_by=team&team=" + q, "/admin/spend?range=24h&group_by=key&key=" + q,
				"/admin/spend?range=24h&group_by=" + q, "/admin/spend?range=24h&bucket=" + q, "/admin/spend?range=" + q,
				"/admin/spend?from=" + q, "/admin/spend?range=24h&top=" + q,
			} {
				r := g.raw(t, "GET", path, admin, "")
				noSecret(t, r)
				switch {
				case r.status == http.StatusOK && spendGroups(t, r) != 0:
					t.Errorf("%s matched rows: %.300s", path, r.body)
				case r.status != http.StatusOK && r.status != http.StatusBadRequest:
					t.Errorf("%s: status %d %.300s", path, r.status, r.body)
				case r.status == http.StatusBadRequest:
					checkShape(t, shapeAdmin, r)
				}
			}
			for _, f := range []string{"team", "key", "layer", "status", "min_cost_usd", "min_duration", "limit", "from", "to"} {
				path := "/admin/traces?" + f + "=" + q
				r := g.raw(t, "GET", path, admin, "")
				noSecret(t, r)
				switch {
				case r.status == http.StatusOK && traces(r) != 0:
					t.Errorf("%s matched traces: %.300s", path, r.body)
				case r.status != http.StatusOK && r.status != http.StatusBadRequest:
					t.Errorf("%s: status %d %.300s", path, r.status, r.body)
				}
			}
			for _, path := range []string{"/admin/traces/" + url.PathEscape(p), "/admin/keys/" + url.PathEscape(p),
				"/admin/keys/" + url.PathEscape(p) + "/usage", "/admin/teams/" + url.PathEscape(p)} {
				r := g.raw(t, "GET", path, admin, "")
				noSecret(t, r)
				if r.status != http.StatusNotFound && r.status != http.StatusBadRequest {
					t.Errorf("%s: status %d %.300s", path, r.status, r.body)
				}
				checkShape(t, shapeAdmin, r)
			}
			// A team key asking for another team through a payload is refused, not widened.
			r := g.raw(t, "GET", "/admin/spend?range=24h&team="+q, aliceAuth, "")
			if r.status != http.StatusForbidden && r.status != http.StatusBadRequest {
				t.Errorf("team key, team=%q: status %d %.300s", p, r.status, r.body)
			}
			if n := g.upstreamWork() - before; n != 0 {
				t.Errorf("%d upstream requests", n)
			}
		})
		t.Run("names/"+p, func(t *testing.T) {
			before := g.upstreamWork()
			body, _ := json.Marshal(p)
			r := g.raw(t, "POST", "/v1/chat/completions", aliceAuth, `{"model":`+string(body)+`,"messages":[{"role":"user","content":"hi"}]}`)
			if r.status != http.StatusNotFound && r.status != http.StatusForbidden && r.status != http.StatusBadRequest {
				t.Errorf("model %q: status %d %.300s", p, r.status, r.body)
			}
			checkShape(t, shapeOpenAI, r)
			r = g.raw(t, "POST", "/mcp", withHeaders(mcpHeader("weather__x"), aliceAuth), mcpCall(strings.Trim(string(body), `"`)))
			if !strings.Contains(r.body, `"error"`) && !strings.Contains(r.body, `"isError":true`) {
				t.Errorf("tool %q: status %d %.300s", p, r.status, r.body)
			}
			r = g.raw(t, "POST", "/a2a/"+url.PathEscape(p), withHeaders(a2aHeader, aliceAuth), a2aSend)
			if r.status == http.StatusOK && !strings.Contains(r.body, `"error"`) || r.status >= 500 {
				t.Errorf("agent %q: status %d %.300s", p, r.status, r.body)
			}
			if n := g.upstreamWork() - before; n != 0 {
				t.Errorf("%d upstream requests", n)
			}
		})
		t.Run("admin create/"+p, func(t *testing.T) {
			body, _ := json.Marshal(map[string]string{"name": "k " + p, "team": "platform"})
			r := g.raw(t, "POST", "/admin/keys", admin, string(body))
			if r.status != http.StatusCreated && r.status != http.StatusBadRequest {
				t.Fatalf("status %d %.300s", r.status, r.body)
			}
			if r.status == http.StatusCreated {
				// Stored verbatim: looking it up by its own name finds exactly it.
				got := g.raw(t, "GET", "/admin/keys/"+url.PathEscape("k "+p), admin, "")
				var v struct {
					Name string `json:"name"`
				}
				if got.status != http.StatusOK || json.Unmarshal([]byte(got.body), &v) != nil || v.Name != "k "+p {
					t.Errorf("lookup by name: %d %.300s", got.status, got.body)
				}
			}
			body, _ = json.Marshal(map[string]string{"name": p})
			r = g.raw(t, "POST", "/admin/teams", admin, string(body))
			if r.status != http.StatusCreated && r.status != http.StatusBadRequest {
				t.Errorf("team: status %d %.300s", r.status, r.body)
			}
			body, _ = json.Marshal(map[string]string{"name": "t-" + strings.Repeat("x", len(p)), "team": p})
			r = g.raw(t, "POST", "/admin/keys", admin, string(body))
			if r.status >= 500 {
				t.Errorf("key in team %q: status %d %.300s", p, r.status, r.body)
			}
		})
	}
	// Names a client made up never become metric labels: each would be a new series.
	if r := g.raw(t, "GET", "/metrics", nil, ""); strings.Contains(r.body, "DROP TABLE") || strings.Contains(r.body, "UNION ALL") {
		t.Errorf("a client's name became a metric label")
	}
	// Everything above left the seed data as it was.
	if n := spendGroups(t, g.raw(t, "GET", "/admin/spend?group_by=team&range=24h&team=platform", admin, "")); n != 1 {
		t.Errorf("after the payloads, team platform has %d spend groups", n)
	}
	assertLogsClean(t, g)
}

func spendGroups(t *testing.T, r rawResponse) int {
	t.Helper()
	var v struct {
		Groups []json.RawMessage `json:"groups"`
	}
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &v) != nil {
		t.Fatalf("spend: %d %.300s", r.status, r.body)
	}
	return len(v.Groups)
}

// A team key sees only its own team's traces: another team's trace answers exactly like a missing one.
func TestSecurityDashboardTenancy(t *testing.T) {
	t.Parallel()
	g := startSecGateway(t)
	admin := map[string]string{"Authorization": "Bearer " + secAdminKey}
	bob := map[string]string{"Authorization": "Bearer " + secBobKey}
	r := g.raw(t, "POST", "/v1/chat/completions", aliceAuth, `{"model":"model-a","messages":[{"role":"user","content":"hi"}]}`)
	parts := strings.Split(r.header.Get("traceparent"), "-")
	if r.status != 200 || len(parts) != 4 {
		t.Fatalf("seed call: %d %q", r.status, r.header.Get("traceparent"))
	}
	aliceTrace := parts[1]
	deadline := time.Now().Add(15 * time.Second)
	for g.raw(t, "GET", "/admin/traces/"+aliceTrace, admin, "").status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the seed trace never reached the store")
		}
		time.Sleep(50 * time.Millisecond)
	}
	theirs := g.raw(t, "GET", "/admin/traces/"+aliceTrace, bob, "")
	nobody := g.raw(t, "GET", "/admin/traces/"+strings.Repeat("ab", 16), bob, "")
	// The two answers differ only in their request ids.
	unnamed := regexp.MustCompile(`"request_id":"[^"]*"`)
	if theirs.status != http.StatusNotFound || unnamed.ReplaceAllString(theirs.body, "") != unnamed.ReplaceAllString(nobody.body, "") {
		t.Errorf("another team's trace: %d %s; a missing one: %d %s", theirs.status, theirs.body, nobody.status, nobody.body)
	}
	for _, path := range []string{"/admin/traces?team=platform", "/admin/spend?range=24h&team=platform"} {
		if r := g.raw(t, "GET", path, bob, ""); r.status != http.StatusForbidden {
			t.Errorf("%s as bob: %d %.300s", path, r.status, r.body)
		}
	}
	for _, path := range []string{"/admin/traces", "/admin/traces?key=" + url.QueryEscape("alice"), "/admin/spend?range=24h&group_by=key"} {
		r := g.raw(t, "GET", path, bob, "")
		if strings.Contains(r.body, aliceTrace) || strings.Contains(r.body, `"alice"`) || strings.Contains(r.body, "platform") {
			t.Errorf("%s as bob shows team platform: %.300s", path, r.body)
		}
	}
	assertLogsClean(t, g)
}
