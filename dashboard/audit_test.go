package dashboard

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/storage"
)

func TestAuditIsScopedToTheCallersTeam(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ids := func(events []storage.AuditEvent) []string {
		out := make([]string, len(events))
		for i, e := range events {
			out[i] = e.RequestID
		}
		return out
	}
	tests := []struct {
		name, key, query string
		want             []string // request ids, newest first
	}{
		{"admin sees every event", adminKey, "", []string{"req-lone", "req-beta", "req-alpha", "req-admin"}},
		{"admin filters by team", adminKey, "?team=beta", []string{"req-beta", "req-admin"}},
		{"admin filters by action", adminKey, "?action=key.create", []string{"req-admin"}},
		{"admin filters by actor", adminKey, "?actor=" + url.QueryEscape(f.keyIDs[alphaKey]), []string{"req-alpha"}},
		{"admin limits", adminKey, "?limit=1", []string{"req-lone"}},
		{"admin narrows the range", adminKey, "?from=" + url.QueryEscape(now.Add(-90*time.Minute).Format(time.RFC3339)),
			[]string{"req-lone", "req-beta"}},
		{"team key sees only its team", betaKey, "", []string{"req-beta", "req-admin"}},
		{"team key naming its own team", alphaKey, "?team=alpha", []string{"req-alpha"}},
		{"team key filtering by another team's actor sees nothing", alphaKey, "?actor=" + url.QueryEscape(f.keyIDs[betaKey]), []string{}},
		{"key without a team sees only its own events", loneKey, "", []string{"req-lone"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r struct{ Events []storage.AuditEvent }
			f.getJSON(t, "/admin/audit"+tc.query, tc.key, http.StatusOK, &r)
			if got := ids(r.Events); !slices.Equal(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAuditRefusesOtherTeamsAndBadQueries(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, key, query string
		status           int
	}{
		{"team key asking for another team", alphaKey, "?team=beta", http.StatusForbidden},
		{"key without a team asking for a team", loneKey, "?team=alpha", http.StatusForbidden},
		{"key without a team asking for another actor", loneKey, "?actor=admin", http.StatusForbidden},
		{"no key", "", "", http.StatusUnauthorized},
		{"wrong key", "sk-sb-wrong-0123456789abcdefghijklmnopqrstu", "", http.StatusUnauthorized},
		{"limit zero", adminKey, "?limit=0", http.StatusBadRequest},
		{"limit too large", adminKey, "?limit=1001", http.StatusBadRequest},
		{"limit not a number", adminKey, "?limit=ten", http.StatusBadRequest},
		{"reversed range", adminKey, "?from=2026-03-10T00:00:00Z&to=2026-03-09T00:00:00Z", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f.getJSON(t, "/admin/audit"+tc.query, tc.key, tc.status, nil)
		})
	}
}
