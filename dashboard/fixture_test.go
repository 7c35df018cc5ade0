package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// Keys of the fixture. alpha and beta are teams; lone has no team.
const (
	adminKey = "sk-admin-dashboard-test-0123456789"
	alphaKey = "sk-sb-alpha-0123456789abcdefghijklmnopqrstuv"
	betaKey  = "sk-sb-beta-0123456789abcdefghijklmnopqrstuvw"
	loneKey  = "sk-sb-lone-0123456789abcdefghijklmnopqrstuvw"
)

// now is the unit tests' clock, on the hour: every span lies in the 24
// hours before it.
var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// Known costs in nano-USD.
const (
	costAlphaLLM  = 1_234_567     // alpha's model call in the workflow
	costAlphaTool = 1_000_000     // alpha's tool call
	costBetaLLM   = 3_000_000_001 // beta's model call inside alpha's workflow
	costBetaSolo  = 7             // beta's own failed call
	costLone      = 5             // the team-less key's call
	heldAlpha     = 300_000       // alpha's call in flight, held against its budgets
)

func tid(n byte) trace.TraceID { return trace.TraceID{0xab, n, 1} }
func sid(n byte) trace.SpanID  { return trace.SpanID{0xcd, n, 2} }

type fixture struct {
	app     *fiber.App
	store   storage.Store // for a test's own spans beside the shared ones
	gov     *governance.Governor
	keyIDs  map[string]string // raw key -> key id
	denials *denialRecorder
}

// denialRecorder notes the refusals the dashboard reports for the audit log.
type denialRecorder struct {
	Governor
	mu  sync.Mutex
	got []governance.Denial
}

func (r *denialRecorder) Denied(d governance.Denial) {
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
	r.Governor.Denied(d)
}

// rules are the audit rules of the refusals so far.
func (r *denialRecorder) rules() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, d := range r.got {
		var ge *governance.Error
		if errors.As(d.Err, &ge) {
			out = append(out, ge.Rule)
		}
	}
	return out
}

// newFixture writes a cross-team workflow and two single-span traces into a
// real in-memory store:
//
//	trace 1 (10:00): alpha agent "planner" → alpha chat gpt-4o-mini
//	                 → alpha tools/call weather__forecast → agent "researcher"
//	                 (alpha) → beta chat claude-haiku
//	trace 2 (11:00): beta chat claude-haiku, failed
//	trace 3 (11:30): lone chat gpt-4o-mini
func newFixture(t *testing.T) *fixture { return newFixtureAt(t, now) }

// newFixtureAt is newFixture with its clock and spans placed relative to now.
func newFixtureAt(t *testing.T, now time.Time) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := storage.Open(ctx, storage.Config{SQLite: storage.SQLiteConfig{Path: ":memory:"}}, nil)
	if err != nil {
		t.Fatalf("storage.Open: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	gov, err := governance.New(governance.Config{
		AdminKey: adminKey,
		Secret:   "dashboard-test-secret-0123456789",
		Teams: []governance.TeamConfig{
			{Name: "alpha", Budget: governance.BudgetConfig{USD: "10", Period: "monthly"}},
			{Name: "beta", Budget: governance.BudgetConfig{USD: "0.5", Period: "daily"}},
		},
		Keys: []governance.KeyConfig{
			{Name: "alpha-agent", Key: alphaKey, Team: "alpha", Budget: governance.BudgetConfig{USD: "2.5", Period: "weekly"}},
			{Name: "beta-agent", Key: betaKey, Team: "beta"},
			{Name: "lone", Key: loneKey, Budget: governance.BudgetConfig{USD: "0.000000010"}},
		},
	}, nil, nil, nil, governance.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatalf("governance.New: %v", err)
	}
	f := &fixture{keyIDs: map[string]string{}}
	for _, k := range []string{alphaKey, betaKey, loneKey} {
		p, err := gov.Authenticate(k)
		if err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
		f.keyIDs[k] = p.KeyID
	}
	// The governor's counters see the same calls the spans record, plus one
	// alpha call still in flight.
	charge := func(key string, estimate, actual int64, settle bool) {
		p, _ := gov.Authenticate(key)
		r, err := gov.Reserve(p, governance.Request{Kind: governance.KindModel, Name: "gpt-4o-mini", EstimatedCostNanoUSD: estimate})
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		if settle {
			r.Settle(actual, 0)
		}
	}
	charge(alphaKey, 0, costAlphaLLM, true)
	charge(alphaKey, 0, costAlphaTool, true)
	// beta's small call first: after the large one its daily budget is spent
	// and Reserve refuses.
	charge(betaKey, 0, costBetaSolo, true)
	charge(betaKey, 0, costBetaLLM, true)
	charge(loneKey, 0, costLone, true)
	charge(alphaKey, heldAlpha, 0, false)
	alpha := func(sp trace.Span) trace.Span {
		sp.KeyID, sp.KeyName, sp.Team = f.keyIDs[alphaKey], "alpha-agent", "alpha"
		return sp
	}
	beta := func(sp trace.Span) trace.Span {
		sp.KeyID, sp.KeyName, sp.Team = f.keyIDs[betaKey], "beta-agent", "beta"
		return sp
	}
	t1 := now.Add(-2 * time.Hour)
	spans := []trace.Span{
		alpha(trace.Span{TraceID: tid(1), SpanID: sid(1), Layer: trace.LayerAgent, Name: "invoke_agent planner", Agent: "planner",
			Start: t1, Duration: 900 * time.Millisecond, Status: trace.StatusOK}),
		alpha(trace.Span{TraceID: tid(1), SpanID: sid(2), ParentSpanID: sid(1), Layer: trace.LayerLLM, Name: "chat gpt-4o-mini",
			Model: "gpt-4o-mini", Provider: "openai", Start: t1.Add(10 * time.Millisecond), Duration: 200 * time.Millisecond,
			Status: trace.StatusOK, InputTokens: 100, OutputTokens: 20, CostNanoUSD: costAlphaLLM}),
		alpha(trace.Span{TraceID: tid(1), SpanID: sid(3), ParentSpanID: sid(1), Layer: trace.LayerTool, Name: "tools/call weather__forecast",
			ToolServer: "weather", Tool: "forecast", Start: t1.Add(220 * time.Millisecond), Duration: 50 * time.Millisecond,
			Status: trace.StatusOK, CostNanoUSD: costAlphaTool}),
		alpha(trace.Span{TraceID: tid(1), SpanID: sid(4), ParentSpanID: sid(1), Layer: trace.LayerAgent, Name: "invoke_agent researcher",
			Agent: "researcher", Start: t1.Add(300 * time.Millisecond), Duration: 500 * time.Millisecond, Status: trace.StatusOK}),
		beta(trace.Span{TraceID: tid(1), SpanID: sid(5), ParentSpanID: sid(4), Layer: trace.LayerLLM, Name: "chat claude-haiku",
			Model: "claude-haiku", Provider: "anthropic", Start: t1.Add(350 * time.Millisecond), Duration: 400 * time.Millisecond,
			Status: trace.StatusOK, InputTokens: 1000, OutputTokens: 300, CachedTokens: 50, CostNanoUSD: costBetaLLM}),
		beta(trace.Span{TraceID: tid(2), SpanID: sid(6), Layer: trace.LayerLLM, Name: "chat claude-haiku", Model: "claude-haiku",
			Provider: "anthropic", Start: now.Add(-time.Hour), Duration: 30 * time.Millisecond, Status: trace.StatusError,
			HTTPStatus: 529, Error: "overloaded", InputTokens: 10, CostNanoUSD: costBetaSolo}),
		{TraceID: tid(3), SpanID: sid(7), Layer: trace.LayerLLM, Name: "chat gpt-4o-mini", Model: "gpt-4o-mini", Provider: "openai",
			Start: now.Add(-30 * time.Minute), Duration: 20 * time.Millisecond, Status: trace.StatusOK, InputTokens: 3, OutputTokens: 4,
			CostNanoUSD: costLone, KeyID: f.keyIDs[loneKey], KeyName: "lone"},
	}
	if err := store.WriteSpans(ctx, spans); err != nil {
		t.Fatalf("WriteSpans: %v", err)
	}
	if err := store.AppendAudit(ctx, fixtureAudit(f, now)); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	f.store, f.gov = store, gov
	f.denials = &denialRecorder{Governor: gov}
	d := New(Deps{Store: store, Governor: f.denials})
	d.now = func() time.Time { return now }
	f.app = fiber.New(fiber.Config{DisableStartupMessage: true})
	d.Register(f.app)
	return f
}

// fixtureAudit is one audit event per scope the dashboard tells apart:
// alpha's, beta's and the team-less key's refusals, and an admin action
// about a beta key.
func fixtureAudit(f *fixture, now time.Time) []storage.AuditEvent {
	return []storage.AuditEvent{
		{Time: now.Add(-3 * time.Hour), Actor: "admin", ActorName: "admin", Team: "beta", Action: "key.create",
			Target: "key:key_new (beta-ci)", Status: "ok", RemoteAddr: "127.0.0.1", RequestID: "req-admin", Detail: `{"name":"beta-ci","team":"beta"}`},
		{Time: now.Add(-2 * time.Hour), Actor: f.keyIDs[alphaKey], ActorName: "alpha-agent", Team: "alpha", Action: "request.denied",
			Target: "model:gpt-4o", Rule: "acl:key.allow.models", Status: "denied", RemoteAddr: "127.0.0.1", RequestID: "req-alpha",
			Detail: "/v1/chat/completions: model not allowed for this key"},
		{Time: now.Add(-time.Hour), Actor: f.keyIDs[betaKey], ActorName: "beta-agent", Team: "beta", Action: "request.denied",
			Target: "tool:weather__forecast", Rule: "rate_limit.key.tool_rpm", Status: "denied", RemoteAddr: "127.0.0.1", RequestID: "req-beta",
			Detail: "/mcp: rate limit exceeded: key tool calls per minute"},
		{Time: now.Add(-30 * time.Minute), Actor: f.keyIDs[loneKey], ActorName: "lone", Action: "request.denied",
			Target: "agent:researcher", Rule: "acl:key.allow.agents", Status: "denied", RemoteAddr: "127.0.0.1", RequestID: "req-lone",
			Detail: "/a2a/researcher: agent not allowed for this key"},
	}
}

// do sends a request with the key as a bearer token ("" sends none).
func (f *fixture) do(t *testing.T, method, target, key string, body io.Reader, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, body)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.app.Test(req, 10_000)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// getJSON GETs target and decodes the answer into v, failing unless the
// status is want.
func (f *fixture) getJSON(t *testing.T, target, key string, want int, v any) {
	t.Helper()
	resp := f.do(t, http.MethodGet, target, key, nil, nil)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s: status %d, want %d: %s", target, resp.StatusCode, want, b)
	}
	if v != nil {
		d := json.NewDecoder(strings.NewReader(string(b)))
		if err := d.Decode(v); err != nil {
			t.Fatalf("GET %s: decode: %v: %s", target, err, b)
		}
	}
}

func decode(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode: %v", err)
	}
}
