package governance

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// memAudit is an AuditSink that keeps every batch; release, when set, holds
// each write until it is closed.
type memAudit struct {
	mu      sync.Mutex
	events  []AuditEvent
	batches int
	fail    error
	// failures is how many more writes fail with fail before the store takes
	// them again; negative: every write fails.
	failures int
	attempts int
	release  chan struct{}
}

func (m *memAudit) AppendAudit(ctx context.Context, events []AuditEvent) error {
	if m.release != nil {
		select {
		case <-m.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.attempts++
	if m.fail != nil && m.failures != 0 {
		m.failures--
		return m.fail
	}
	m.events = append(m.events, events...)
	m.batches++
	return nil
}

func (m *memAudit) all() []AuditEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]AuditEvent(nil), m.events...)
}

func newAuditWriter(t *testing.T, sink AuditSink) *AuditWriter {
	t.Helper()
	w, err := NewAuditWriter(sink, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewAuditWriter: %v", err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

// closeWriter flushes everything queued so a test reads a final log.
func closeWriter(t *testing.T, w *AuditWriter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func counted(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestEveryGovernanceRefusalNamesItsRule(t *testing.T) {
	t.Parallel()
	reserve := func(kind Kind, name string, cost, tokens int64) func(*Governor, *Principal) error {
		return func(g *Governor, p *Principal) error {
			_, err := g.Reserve(p, Request{Kind: kind, Name: name, EstimatedCostNanoUSD: cost, EstimatedTokens: tokens})
			return err
		}
	}
	tests := []struct {
		name  string
		key   KeyConfig
		team  TeamConfig
		first func(*Governor, *Principal) error // admitted, uses up the limit
		deny  func(*Governor, *Principal) error
		want  string
	}{
		{name: "key rpm", key: KeyConfig{Limits: LimitsConfig{RPM: 1}},
			first: reserve(KindModel, "m", 0, 0), deny: reserve(KindModel, "m", 0, 0), want: "rate_limit.key.rpm"},
		{name: "key tool rpm", key: KeyConfig{Limits: LimitsConfig{ToolRPM: 1}},
			first: reserve(KindTool, "s__t", 0, 0), deny: reserve(KindTool, "s__t", 0, 0), want: "rate_limit.key.tool_rpm"},
		{name: "key agent rpm", key: KeyConfig{Limits: LimitsConfig{AgentRPM: 1}},
			first: reserve(KindAgent, "a", 0, 0), deny: reserve(KindAgent, "a", 0, 0), want: "rate_limit.key.agent_rpm"},
		{name: "key tpm", key: KeyConfig{Limits: LimitsConfig{TPM: 10}},
			first: reserve(KindModel, "m", 0, 10), deny: reserve(KindModel, "m", 0, 10), want: "rate_limit.key.tpm"},
		{name: "key per-model rpm", key: KeyConfig{Limits: LimitsConfig{PerModel: map[string]ModelLimits{"gpt-*": {RPM: 1}}}},
			first: reserve(KindModel, "gpt-4o", 0, 0), deny: reserve(KindModel, "gpt-4o", 0, 0), want: "rate_limit.key.model_rpm"},
		{name: "key per-model tpm", key: KeyConfig{Limits: LimitsConfig{PerModel: map[string]ModelLimits{"gpt-*": {TPM: 5}}}},
			first: reserve(KindModel, "gpt-4o", 0, 5), deny: reserve(KindModel, "gpt-4o", 0, 5), want: "rate_limit.key.model_tpm"},
		{name: "key max parallel", key: KeyConfig{Limits: LimitsConfig{MaxParallel: 1}},
			first: reserve(KindModel, "m", 0, 0), deny: reserve(KindModel, "m", 0, 0), want: "rate_limit.key.max_parallel"},
		{name: "team rpm", team: TeamConfig{Limits: LimitsConfig{RPM: 1}},
			first: reserve(KindModel, "m", 0, 0), deny: reserve(KindModel, "m", 0, 0), want: "rate_limit.team.rpm"},
		{name: "key budget", key: KeyConfig{Budget: BudgetConfig{USD: "0.000000001", Period: "daily"}},
			deny: reserve(KindModel, "m", 2, 0), want: "budget.key"},
		{name: "team budget", team: TeamConfig{Budget: BudgetConfig{USD: "0.000000001"}},
			deny: reserve(KindModel, "m", 2, 0), want: "budget.team"},
		{name: "acl", key: KeyConfig{Allow: ACLConfig{Models: []string{"gpt-4o-mini"}}},
			deny: func(g *Governor, p *Principal) error { return g.Authorize(p, KindModel, "gpt-4o").Err() }, want: "acl:key.allow.models (no match)"},
		{name: "missing key",
			deny: func(g *Governor, _ *Principal) error { _, err := g.Authenticate(""); return err }, want: "missing_key"},
		{name: "unknown key",
			deny: func(g *Governor, _ *Principal) error { _, err := g.Authenticate(rawKey("nobody")); return err }, want: "unknown_key"},
		{name: "disabled key", key: KeyConfig{Disabled: true},
			deny: func(g *Governor, _ *Principal) error { _, err := g.Authenticate(rawKey("k")); return err }, want: "key_disabled"},
		{name: "expired key", key: KeyConfig{Expires: "2020-01-01"},
			deny: func(g *Governor, _ *Principal) error { _, err := g.Authenticate(rawKey("k")); return err }, want: "key_expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.team.Name = "t"
			tc.key.Name, tc.key.Key, tc.key.Team = "k", rawKey("k"), "t"
			g, _ := newGov(t, Config{Teams: []TeamConfig{tc.team}, Keys: []KeyConfig{tc.key}})
			var p *Principal
			if !tc.key.Disabled && tc.key.Expires == "" {
				p = mustAuth(t, g, "k")
			}
			if tc.first != nil {
				if err := tc.first(g, p); err != nil {
					t.Fatalf("first call refused: %v", err)
				}
			}
			var ge *Error
			if err := tc.deny(g, p); !errors.As(err, &ge) {
				t.Fatalf("want a governance error, got %v", err)
			}
			if got := ge.Rule; got != tc.want {
				t.Errorf("rule %q (message %q), want %q", got, ge.Message, tc.want)
			}
		})
	}
}

func TestDeniedRecordsWhoWhatRuleAndWhere(t *testing.T) {
	t.Parallel()
	sink := &memAudit{}
	w := newAuditWriter(t, sink)
	cfg := Config{Teams: []TeamConfig{{Name: "t"}},
		Keys: []KeyConfig{{Name: "k", Key: rawKey("k"), Team: "t", Allow: ACLConfig{Models: []string{"gpt-4o-mini"}}}}}
	g, clock := newGov(t, cfg, WithAudit(w))
	p := mustAuth(t, g, "k")
	wrong := rawKey("wrong")
	_, unknown := g.Authenticate(wrong)
	origin := Denial{RemoteAddr: "10.0.0.7", RequestID: "req-1", Route: "/v1/chat/completions"}

	acl := origin
	acl.Principal, acl.Kind, acl.Name, acl.Err = p, KindModel, "gpt-4o", g.Authorize(p, KindModel, "gpt-4o").Err()
	g.Denied(acl)
	anon := origin
	anon.RequestID, anon.Err = "req-2", unknown
	g.Denied(anon)
	notGovernance := origin
	notGovernance.Principal, notGovernance.Err = p, errors.New("unknown model")
	g.Denied(notGovernance)
	long := origin
	long.RequestID, long.Principal, long.Kind, long.Name = "req-3", p, KindModel, strings.Repeat("x", 5000)
	long.Err = g.Authorize(p, KindModel, long.Name).Err()
	g.Denied(long)
	closeWriter(t, w)

	at := clock.Now().UTC()
	want := []AuditEvent{
		{Time: at, Actor: p.KeyID, ActorName: "k", Team: "t", Action: ActionDenied, Target: "model:gpt-4o",
			Rule: "acl:key.allow.models (no match)", Status: AuditDenied, RemoteAddr: "10.0.0.7", RequestID: "req-1",
			Detail: "/v1/chat/completions: model not allowed for this key"},
		{Time: at, Action: ActionDenied, Rule: "unknown_key", Status: AuditDenied, RemoteAddr: "10.0.0.7", RequestID: "req-2",
			Detail: "/v1/chat/completions: invalid API key"},
		{Time: at, Actor: p.KeyID, ActorName: "k", Team: "t", Action: ActionDenied, Target: "model:" + strings.Repeat("x", auditFieldLen),
			Rule: "acl:key.allow.models (no match)", Status: AuditDenied, RemoteAddr: "10.0.0.7", RequestID: "req-3",
			Detail: "/v1/chat/completions: model not allowed for this key"},
	}
	got := sink.all()
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	b, _ := json.Marshal(got)
	if strings.Contains(string(b), wrong) || strings.Contains(string(b), HashKey(testSecret, wrong)) {
		t.Errorf("the audit log holds the wrong key or its hash: %s", b)
	}
}

func TestAdminActionsAreAuditedWithoutSecrets(t *testing.T) {
	t.Parallel()
	sink := &memAudit{}
	w := newAuditWriter(t, sink)
	g, clock := newGov(t, adminConfig(), WithAudit(w))
	app := fiber.New()
	app.Use(func(c *fiber.Ctx) error { c.Set(fiber.HeaderXRequestID, "req-"+c.Method()+c.Path()); return c.Next() })
	g.RegisterAdmin(app.Group("/admin"))
	a := &adminClient{t: t, app: app}

	status, created := a.do(http.MethodPost, "/admin/keys", `{"name":"bot","team":"platform","budget":{"usd":"5","period":"daily"}}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, created)
	}
	id, raw := created["id"].(string), created["key"].(string)
	target := "key:" + id + " (bot)"
	_, rotated := a.do(http.MethodPost, "/admin/keys/"+id+"/rotate", "")
	steps := []struct {
		method, path, body string
		status             int
	}{
		{http.MethodPatch, "/admin/keys/" + id, `{"budget":{"usd":"7.5","period":"weekly"}}`, http.StatusOK},
		{http.MethodPost, "/admin/keys/" + id + "/disable", "", http.StatusOK},
		{http.MethodPost, "/admin/keys/" + id + "/enable", "", http.StatusOK},
		{http.MethodDelete, "/admin/keys/" + id, "", http.StatusNoContent},
		{http.MethodPost, "/admin/teams", `{"name":"ml","limits":{"rpm":60}}`, http.StatusCreated},
		{http.MethodPatch, "/admin/teams/ml", `{"budget":{"usd":"20","period":"monthly"}}`, http.StatusOK},
		{http.MethodDelete, "/admin/teams/ml", "", http.StatusNoContent},
		{http.MethodPatch, "/admin/keys/nope", `{}`, http.StatusNotFound}, // failed actions change nothing: not audited
	}
	for _, s := range steps {
		if status, body := a.do(s.method, s.path, s.body); status != s.status {
			t.Fatalf("%s %s: %d %v", s.method, s.path, status, body)
		}
	}
	if status, _ := a.doAs(rawKey("ci"), http.MethodGet, "/admin/keys", ""); status != http.StatusForbidden {
		t.Fatalf("team key on /admin: %d", status)
	}
	if status, _ := a.doAs(raw, http.MethodGet, "/admin/keys", ""); status != http.StatusUnauthorized {
		t.Fatalf("deleted key on /admin: %d", status)
	}
	closeWriter(t, w)

	at := clock.Now().UTC()
	ok := func(action, target, team, detail, reqID string) AuditEvent {
		return AuditEvent{Time: at, Actor: "admin", ActorName: "admin", Team: team, Action: action, Target: target,
			Status: AuditOK, RemoteAddr: "0.0.0.0", RequestID: reqID, Detail: detail}
	}
	ci := mustAuth(t, g, "ci")
	want := []AuditEvent{
		ok(ActionKeyCreate, target, "platform", `{"budget":{"usd":5,"period":"daily"},"name":"bot","team":"platform"}`, "req-POST/admin/keys"),
		ok(ActionKeyRotate, target, "platform", "key value replaced", "req-POST/admin/keys/"+id+"/rotate"),
		// A PATCH is audited as sent (compacted), so a null that cleared a field shows.
		ok(ActionKeyUpdate, target, "platform", `{"budget":{"usd":"7.5","period":"weekly"}}`, "req-PATCH/admin/keys/"+id),
		ok(ActionKeyDisable, target, "platform", "", "req-POST/admin/keys/"+id+"/disable"),
		ok(ActionKeyEnable, target, "platform", "", "req-POST/admin/keys/"+id+"/enable"),
		ok(ActionKeyDelete, target, "platform", "", "req-DELETE/admin/keys/"+id),
		ok(ActionTeamCreate, "team:ml", "ml", `{"limits":{"rpm":60},"name":"ml"}`, "req-POST/admin/teams"),
		ok(ActionTeamUpdate, "team:ml", "ml", `{"budget":{"usd":"20","period":"monthly"}}`, "req-PATCH/admin/teams/ml"),
		ok(ActionTeamDelete, "team:ml", "ml", "", "req-DELETE/admin/teams/ml"),
		{Time: at, Actor: ci.KeyID, ActorName: "ci", Team: "platform", Action: ActionDenied, Rule: "admin_only", Status: AuditDenied,
			RemoteAddr: "0.0.0.0", RequestID: "req-GET/admin/keys", Detail: "/admin/keys: " + msgNeedsAdmin},
		{Time: at, Action: ActionDenied, Rule: "unknown_key", Status: AuditDenied,
			RemoteAddr: "0.0.0.0", RequestID: "req-GET/admin/keys", Detail: "/admin/keys: invalid API key"},
	}
	got := sink.all()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	b, _ := json.Marshal(got)
	for _, secret := range []string{raw, rotated["key"].(string), HashKey(testSecret, raw), testAdminKey, rawKey("ci")} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the audit log holds a secret %q", secret)
		}
	}
}

func TestAuditWriterBoundsItsQueueAndCountsDrops(t *testing.T) {
	t.Parallel()
	sink := &memAudit{release: make(chan struct{})}
	w := newAuditWriter(t, sink)
	// The writer holds at most one batch in a write plus a full queue; the
	// rest of a flood is dropped, not kept in memory.
	const sent = AuditQueueSize + auditBatchSize + 500
	for i := range sent {
		w.Append(AuditEvent{Action: ActionDenied, RequestID: string(rune('a' + i%26))})
	}
	dropped := counted(t, w.dropped)
	if dropped < sent-(AuditQueueSize+auditBatchSize) {
		t.Errorf("dropped %v of %d, want at least %d", dropped, sent, sent-(AuditQueueSize+auditBatchSize))
	}
	close(sink.release)
	closeWriter(t, w)
	written := len(sink.all())
	if float64(written)+dropped != sent {
		t.Errorf("written %d + dropped %v != sent %d", written, dropped, sent)
	}
	sink.mu.Lock()
	batches := sink.batches
	sink.mu.Unlock()
	if batches > sent/auditBatchSize+2 {
		t.Errorf("%d writes for %d events: not batched", batches, written)
	}
	w.Append(AuditEvent{Action: ActionDenied})
	if got := counted(t, w.dropped); got != dropped+1 {
		t.Errorf("an event appended after Close: dropped %v, want %v", got, dropped+1)
	}
}

// A store that refuses writes for a while (a restart) loses no event: the
// batch is tried again with backoff until the store takes it.
func TestAuditWriterRetriesUntilTheStoreIsBack(t *testing.T) {
	t.Parallel()
	sink := &memAudit{fail: errors.New("store down"), failures: 3}
	w := newAuditWriter(t, sink)
	for range 3 {
		w.Append(AuditEvent{Action: ActionConfigReload})
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(sink.all()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	closeWriter(t, w)
	sink.mu.Lock()
	attempts := sink.attempts
	sink.mu.Unlock()
	if got := len(sink.all()); got != 3 || attempts != 4 {
		t.Errorf("stored %d events in %d attempts, want 3 in 4", got, attempts)
	}
	if got := counted(t, w.dropped); got != 0 {
		t.Errorf("dropped %v, want 0", got)
	}
}

// Close gives a failing store until its context ends; what it cannot write
// by then is counted as dropped, and Close does not hang.
func TestAuditWriterDropsWhatCloseCannotWrite(t *testing.T) {
	t.Parallel()
	sink := &memAudit{fail: errors.New("store down"), failures: -1}
	w := newAuditWriter(t, sink)
	for range 3 {
		w.Append(AuditEvent{Action: ActionConfigReload})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_ = w.Close(ctx)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer kept retrying after Close's context ended")
	}
	if got := counted(t, w.dropped); got != 3 {
		t.Errorf("dropped %v, want 3", got)
	}
	if got := counted(t, w.written); got != 0 {
		t.Errorf("written %v, want 0", got)
	}
}

func TestDeniedAndAdminAuditAreNoOpsWithoutAWriter(t *testing.T) {
	t.Parallel()
	g, _ := newGov(t, adminConfig())
	_, err := g.Authenticate(rawKey("nobody"))
	g.Denied(Denial{Err: err}) // must not panic
	a := newAdmin(t, g)
	if status, body := a.do(http.MethodPost, "/admin/teams", `{"name":"x"}`); status != http.StatusCreated {
		t.Fatalf("create team: %d %v", status, body)
	}
}

type discardAudit struct{}

func (discardAudit) AppendAudit(context.Context, []AuditEvent) error { return nil }

// BenchmarkDeniedUnknownKey is the request-path cost of auditing a wrong key:
// building the event and a non-blocking enqueue (or a counted drop).
func BenchmarkDeniedUnknownKey(b *testing.B) {
	w, err := NewAuditWriter(discardAudit{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close(context.Background())
	g, _ := newGov(b, adminConfig(), WithAudit(w))
	_, denied := g.Authenticate(rawKey("nobody"))
	d := Denial{Err: denied, RemoteAddr: "10.1.2.3", RequestID: "5f0c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f", Route: "/v1/chat/completions",
		Kind: KindModel, Name: "gpt-4o-mini"}
	b.ReportAllocs()
	for b.Loop() {
		g.Denied(d)
	}
}
