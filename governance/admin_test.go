package governance

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

type adminClient struct {
	t   *testing.T
	app *fiber.App
}

func newAdmin(t *testing.T, g *Governor) *adminClient {
	app := fiber.New()
	g.RegisterAdmin(app.Group("/admin"))
	return &adminClient{t: t, app: app}
}

// do sends a request with the admin key and decodes the JSON answer.
func (a *adminClient) do(method, path, body string) (int, map[string]any) {
	return a.doAs(testAdminKey, method, path, body)
}

func (a *adminClient) doAs(key, method, path, body string) (int, map[string]any) {
	a.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := a.app.Test(req, 5000)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]any{}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			a.t.Fatalf("%s %s: body %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, out
}

func errMessage(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

func adminConfig() Config {
	return Config{
		AdminKey: testAdminKey,
		Secret:   testSecret,
		Orgs:     []OrgConfig{{Name: "acme"}},
		Teams:    []TeamConfig{{Name: "platform", Org: "acme", Budget: BudgetConfig{USD: "100", Period: "monthly"}}},
		Keys:     []KeyConfig{{Name: "ci", Key: rawKey("ci"), Team: "platform", Budget: BudgetConfig{USD: "10", Period: "daily"}}},
	}
}

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	g, _ := newGov(t, adminConfig())
	a := newAdmin(t, g)
	tests := []struct {
		name, key string
		status    int
	}{
		{"no key", "", http.StatusUnauthorized},
		{"wrong key", "sk-sb-wrong-0123456789", http.StatusUnauthorized},
		{"non-admin key", rawKey("ci"), http.StatusForbidden},
		{"admin key", testAdminKey, http.StatusOK},
	}
	for _, tt := range tests {
		status, body := a.doAs(tt.key, http.MethodGet, "/admin/keys", "")
		if status != tt.status {
			t.Errorf("%s: status %d, want %d (%v)", tt.name, status, tt.status, body)
		}
		if tt.status >= 400 && (errMessage(body) == "" || strings.Contains(errMessage(body), tt.key) && tt.key != "") {
			t.Errorf("%s: error body %v", tt.name, body)
		}
	}
	g2, _ := newGov(t, Config{})
	if status, _ := newAdmin(t, g2).doAs(testAdminKey, http.MethodGet, "/admin/keys", ""); status != http.StatusForbidden {
		t.Errorf("without admin_key: status %d, want 403", status)
	}
}

func TestAdminKeyLifecycle(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	g, err := New(adminConfig(), store, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	a := newAdmin(t, g)

	status, created := a.do(http.MethodPost, "/admin/keys", `{"name":"bot","team":"platform","user":"bob",
		"allow":{"models":["gpt-4o*"]},"limits":{"rpm":60},"budget":{"usd":2.5,"period":"daily"}}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, created)
	}
	raw, _ := created["key"].(string)
	id, _ := created["id"].(string)
	if !strings.HasPrefix(raw, KeyPrefix) || len(raw) < len(KeyPrefix)+32 || !strings.HasPrefix(id, "key_") {
		t.Fatalf("create answer %v", created)
	}
	if created["source"] != "runtime" || created["org"] != "acme" || created["active"] != true {
		t.Fatalf("create answer %v", created)
	}
	// Only the HMAC is persisted.
	for _, r := range store.records[RecordKindKey] {
		if bytes.Contains(r.Data, []byte(raw)) || !bytes.Contains(r.Data, []byte(HashKey(testSecret, raw))) {
			t.Fatalf("stored record %s", r.Data)
		}
	}
	p, err := g.Authenticate(raw)
	if err != nil || p.KeyName != "bot" || p.Team != "platform" || p.User != "bob" {
		t.Fatalf("new key: %+v %v", p, err)
	}
	if d := g.Authorize(p, KindModel, "claude"); d.Allowed {
		t.Fatal("runtime allow list not applied")
	}

	status, got := a.do(http.MethodGet, "/admin/keys/"+id, "")
	if status != http.StatusOK || got["key"] != nil || got["name"] != "bot" {
		t.Fatalf("get: %d %v (the raw key must not be shown again)", status, got)
	}
	if status, got = a.do(http.MethodGet, "/admin/keys/bot", ""); status != http.StatusOK || got["id"] != id {
		t.Fatalf("get by name: %d %v", status, got)
	}
	status, list := a.do(http.MethodGet, "/admin/keys", "")
	if keys, _ := list["keys"].([]any); status != http.StatusOK || len(keys) != 2 {
		t.Fatalf("list: %d %v", status, list)
	}

	status, got = a.do(http.MethodPatch, "/admin/keys/"+id, `{"allow":{"models":["claude"]},"limits":{"rpm":1}}`)
	if status != http.StatusOK {
		t.Fatalf("patch: %d %v", status, got)
	}
	p, _ = g.Authenticate(raw)
	if d := g.Authorize(p, KindModel, "claude"); !d.Allowed {
		t.Fatalf("patched allow list not applied: %+v", d)
	}
	if status, got = a.do(http.MethodPatch, "/admin/keys/"+id, `{"team":"nope"}`); status != http.StatusBadRequest {
		t.Fatalf("patch to unknown team: %d %v", status, got)
	}
	if status, got = a.do(http.MethodPatch, "/admin/keys/"+id, `{"name":"ci"}`); status != http.StatusConflict {
		t.Fatalf("rename onto config key: %d %v", status, got)
	}
	if status, got = a.do(http.MethodPatch, "/admin/keys/"+id, `{"surprise":1}`); status != http.StatusBadRequest {
		t.Fatalf("unknown field: %d %v", status, got)
	}

	status, got = a.do(http.MethodGet, "/admin/keys/"+id+"/authorize?kind=model&name=gpt-4o", "")
	if status != http.StatusOK || got["allowed"] != false || got["rule"] != "key.allow.models (no match)" {
		t.Fatalf("explain: %d %v", status, got)
	}

	// Rotation: the old value stops working, the id (and its spend) stays.
	status, rotated := a.do(http.MethodPost, "/admin/keys/"+id+"/rotate", "")
	newRaw, _ := rotated["key"].(string)
	if status != http.StatusOK || newRaw == "" || newRaw == raw || rotated["id"] != id {
		t.Fatalf("rotate: %d %v", status, rotated)
	}
	if _, err := g.Authenticate(raw); err == nil {
		t.Fatal("old key still works after rotation")
	}
	if p, err := g.Authenticate(newRaw); err != nil || p.KeyID != id {
		t.Fatalf("rotated key: %v %v", p, err)
	}

	if status, got = a.do(http.MethodPost, "/admin/keys/"+id+"/disable", ""); status != http.StatusOK || got["disabled"] != true || got["active"] != false {
		t.Fatalf("disable: %d %v", status, got)
	}
	if _, err := g.Authenticate(newRaw); err == nil || err.Error() != "API key disabled" {
		t.Fatalf("disabled key: %v", err)
	}
	if status, _ = a.do(http.MethodPost, "/admin/keys/"+id+"/enable", ""); status != http.StatusOK {
		t.Fatalf("enable: %d", status)
	}
	if _, err := g.Authenticate(newRaw); err != nil {
		t.Fatalf("enabled key: %v", err)
	}

	if status, _ = a.do(http.MethodDelete, "/admin/keys/"+id, ""); status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	if _, err := g.Authenticate(newRaw); err == nil {
		t.Fatal("deleted key still works")
	}
	if len(store.records[RecordKindKey]) != 0 {
		t.Fatalf("record not deleted: %v", store.records)
	}
	if status, _ = a.do(http.MethodGet, "/admin/keys/"+id, ""); status != http.StatusNotFound {
		t.Fatalf("get deleted: %d", status)
	}
}

func TestAdminConfigEntitiesAreReadOnly(t *testing.T) {
	t.Parallel()
	g, _ := newGov(t, adminConfig())
	a := newAdmin(t, g)
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPatch, "/admin/keys/ci", `{"user":"x"}`},
		{http.MethodDelete, "/admin/keys/ci", ""},
		{http.MethodPost, "/admin/keys/ci/rotate", ""},
		{http.MethodPost, "/admin/keys/ci/disable", ""},
		{http.MethodPatch, "/admin/teams/platform", `{"org":""}`},
		{http.MethodDelete, "/admin/teams/platform", ""},
	} {
		status, body := a.do(c.method, c.path, c.body)
		if status != http.StatusConflict || !strings.Contains(errMessage(body), "config file") {
			t.Errorf("%s %s: %d %v, want 409 naming the config file", c.method, c.path, status, body)
		}
	}
	mustAuth(t, g, "ci")
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/admin/keys", `{"name":"ci"}`},
		{http.MethodPost, "/admin/teams", `{"name":"platform"}`},
	} {
		if status, body := a.do(c.method, c.path, c.body); status != http.StatusConflict {
			t.Errorf("%s %s: %d %v, want 409", c.method, c.path, status, body)
		}
	}
}

func TestAdminTeams(t *testing.T) {
	t.Parallel()
	g, _ := newGov(t, adminConfig())
	a := newAdmin(t, g)
	status, body := a.do(http.MethodPost, "/admin/teams", `{"name":"research","org":"acme","budget":{"usd":"0.5"},"allow":{"tools":["weather__*"]}}`)
	if status != http.StatusCreated || body["source"] != "runtime" || body["org"] != "acme" {
		t.Fatalf("create team: %d %v", status, body)
	}
	for _, bad := range []string{`{"name":"x/y"}`, `{"name":"z","org":"nope"}`, `{"name":"z","budget":{"usd":"x"}}`, `{`} {
		if status, body := a.do(http.MethodPost, "/admin/teams", bad); status != http.StatusBadRequest {
			t.Errorf("create %s: %d %v, want 400", bad, status, body)
		}
	}
	status, key := a.do(http.MethodPost, "/admin/keys", `{"name":"r1","team":"research"}`)
	if status != http.StatusCreated {
		t.Fatalf("create key: %d %v", status, key)
	}
	p, err := g.Authenticate(key["key"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if d := g.Authorize(p, KindTool, "files__read"); d.Allowed || d.Rule != "team.allow.tools (no match)" {
		t.Fatalf("runtime team ACL: %+v", d)
	}
	if status, body = a.do(http.MethodPatch, "/admin/teams/research", `{"allow":null}`); status != http.StatusOK {
		t.Fatalf("patch team: %d %v", status, body)
	}
	p, _ = g.Authenticate(key["key"].(string))
	if d := g.Authorize(p, KindTool, "files__read"); !d.Allowed {
		t.Fatalf("patched team ACL: %+v", d)
	}
	if status, body = a.do(http.MethodPatch, "/admin/teams/research", `{"name":"other"}`); status != http.StatusBadRequest {
		t.Fatalf("rename: %d %v", status, body)
	}
	status, body = a.do(http.MethodGet, "/admin/teams", "")
	if teams, _ := body["teams"].([]any); status != http.StatusOK || len(teams) != 2 {
		t.Fatalf("list teams: %d %v", status, body)
	}
	if status, body = a.do(http.MethodGet, "/admin/teams/research", ""); status != http.StatusOK || body["keys"] != float64(1) {
		t.Fatalf("get team: %d %v", status, body)
	}
	if status, body = a.do(http.MethodDelete, "/admin/teams/research", ""); status != http.StatusConflict {
		t.Fatalf("delete team with keys: %d %v", status, body)
	}
	if status, _ = a.do(http.MethodDelete, "/admin/keys/r1", ""); status != http.StatusNoContent {
		t.Fatalf("delete key: %d", status)
	}
	if status, _ = a.do(http.MethodDelete, "/admin/teams/research", ""); status != http.StatusNoContent {
		t.Fatalf("delete team: %d", status)
	}
	if status, _ = a.do(http.MethodGet, "/admin/teams/research", ""); status != http.StatusNotFound {
		t.Fatalf("get deleted team: %d", status)
	}
}

func TestAdminUsage(t *testing.T) {
	t.Parallel()
	g, _ := newGov(t, adminConfig())
	a := newAdmin(t, g)
	p := mustAuth(t, g, "ci")
	r, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: usd(1)})
	if err != nil {
		t.Fatal(err)
	}
	r.Settle(1_234_567_890, 0)
	open, err := g.Reserve(p, Request{Kind: KindModel, Name: "m", EstimatedCostNanoUSD: usd(2)})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Settle(0, 0)
	status, body := a.do(http.MethodGet, "/admin/keys/"+p.KeyID+"/usage", "")
	if status != http.StatusOK {
		t.Fatalf("usage: %d %v", status, body)
	}
	key, _ := body["key"].(map[string]any)
	want := map[string]any{
		"scope": "key", "id": p.KeyID, "period": "daily", "spend_usd": 1.23456789, "spend_nano_usd": float64(1_234_567_890),
		"held_usd": float64(2), "budget_usd": float64(10), "remaining_usd": 6.76543211,
		"period_start": "2026-11-18T00:00:00Z", "period_end": "2026-11-19T00:00:00Z",
	}
	for k, v := range want {
		if key[k] != v {
			t.Errorf("usage.key.%s = %v, want %v", k, key[k], v)
		}
	}
	team, _ := body["team"].(map[string]any)
	if team["spend_usd"] != 1.23456789 || team["budget_usd"] != float64(100) || body["org"] == nil {
		t.Errorf("usage %v", body)
	}
	if status, body = a.do(http.MethodGet, "/admin/teams/platform/usage", ""); status != http.StatusOK || body["team"] == nil {
		t.Fatalf("team usage: %d %v", status, body)
	}
	if status, _ = a.do(http.MethodGet, "/admin/keys/nope/usage", ""); status != http.StatusNotFound {
		t.Fatalf("unknown key usage: %d", status)
	}
}

func TestAdminStoreFailureChangesNothing(t *testing.T) {
	t.Parallel()
	store := newMemStore()
	g, err := New(adminConfig(), store, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := newAdmin(t, g)
	store.fail = errors.New("disk full")
	status, body := a.do(http.MethodPost, "/admin/keys", `{"name":"bot"}`)
	if status != http.StatusInternalServerError || body["key"] != nil {
		t.Fatalf("create with failing store: %d %v", status, body)
	}
	if status, _ := a.do(http.MethodGet, "/admin/keys/bot", ""); status != http.StatusNotFound {
		t.Fatalf("key exists after failed persist: %d", status)
	}
}

// A PATCH is a JSON merge patch (RFC 7396): a nested object changes only
// the fields it names, null clears, and a list replaces the list.
func TestAdminPatchMerges(t *testing.T) {
	t.Parallel()
	g, err := New(adminConfig(), newMemStore(), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	a := newAdmin(t, g)
	status, created := a.do(http.MethodPost, "/admin/keys", `{"name":"merge","team":"platform","expires":"2099-01-01T00:00:00Z",
		"allow":{"models":["gpt-4o*"],"tools":["weather__*"]},"limits":{"rpm":60,"tpm":10000,"max_parallel":5},
		"budget":{"usd":"1","period":"daily"}}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, created)
	}
	path := "/admin/keys/" + created["id"].(string)
	status, team := a.do(http.MethodPost, "/admin/teams", `{"name":"mergers","limits":{"rpm":10,"tpm":5000},"budget":{"usd":"9","period":"weekly"}}`)
	if status != http.StatusCreated {
		t.Fatalf("create team: %d %v", status, team)
	}
	cases := []struct {
		name, path, patch string
		field             string // of the answer
		want              string // its JSON
	}{
		{"budget amount keeps the period", path, `{"budget":{"usd":"2"}}`, "budget", `{"period":"daily","usd":2}`},
		{"one limit keeps the others", path, `{"limits":{"rpm":40}}`, "limits", `{"max_parallel":5,"rpm":40,"tpm":10000}`},
		{"null clears one limit", path, `{"limits":{"tpm":null}}`, "limits", `{"max_parallel":5,"rpm":40}`},
		{"a list replaces the list", path, `{"allow":{"models":["claude*"]}}`, "allow", `{"models":["claude*"],"tools":["weather__*"]}`},
		{"null clears the budget", path, `{"budget":null}`, "budget", `{}`},
		{"null clears the expiry", path, `{"expires":null}`, "expires", `null`},
		{"team limits merge too", "/admin/teams/mergers", `{"limits":{"rpm":5}}`, "limits", `{"rpm":5,"tpm":5000}`},
		{"team budget amount keeps the period", "/admin/teams/mergers", `{"budget":{"usd":"3"}}`, "budget", `{"period":"weekly","usd":3}`},
	}
	for _, tc := range cases {
		status, got := a.do(http.MethodPatch, tc.path, tc.patch)
		field, _ := json.Marshal(got[tc.field])
		if status != http.StatusOK || string(field) != tc.want {
			t.Errorf("%s: %d, %s = %s, want %s (%v)", tc.name, status, tc.field, field, tc.want, got)
		}
	}
	if status, got := a.do(http.MethodPatch, path, `{"limits":{"rpmx":1}}`); status != http.StatusBadRequest {
		t.Errorf("unknown nested field: %d %v", status, got)
	}
}
