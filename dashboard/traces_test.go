package dashboard

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/trace"
)

func TestRecentTracesFiltersAndTeamScope(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	type row struct {
		id    trace.TraceID
		cost  int64
		spans int64
		name  string
	}
	whole1 := row{tid(1), costAlphaLLM + costAlphaTool + costBetaLLM, 5, "invoke_agent planner"}
	t2 := row{tid(2), costBetaSolo, 1, "chat claude-haiku"}
	t3 := row{tid(3), costLone, 1, "chat gpt-4o-mini"}
	tests := []struct {
		name, key, query string
		want             []row
	}{
		{"admin sees all, newest first", adminKey, "", []row{t3, t2, whole1}},
		{"alpha sees only its own spans of the shared workflow", alphaKey, "",
			[]row{{tid(1), costAlphaLLM + costAlphaTool, 4, "invoke_agent planner"}}},
		{"beta sees its span of alpha's workflow and its own trace", betaKey, "",
			[]row{t2, {tid(1), costBetaLLM, 1, "chat claude-haiku"}}},
		{"team-less key sees its own trace", loneKey, "", []row{t3}},
		{"status error", adminKey, "status=error", []row{t2}},
		{"status ok for beta", betaKey, "status=ok", []row{{tid(1), costBetaLLM, 1, "chat claude-haiku"}}},
		{"min cost in USD", adminKey, "min_cost_usd=0.000000006", []row{t2, whole1}},
		{"min cost in nano-USD", adminKey, "min_cost_nano_usd=3000000000", []row{whole1}},
		// The whole trace costs more than the bound, beta's share does not:
		// the filter applies to what beta may see.
		{"min cost is applied to the team's share", betaKey, "min_cost_usd=3.000000002", nil},
		{"alpha's share passes its bound", alphaKey, "min_cost_usd=0.002234567", []row{{tid(1), 2_234_567, 4, "invoke_agent planner"}}},
		{"layer tool", adminKey, "layer=tool", []row{whole1}},
		{"layer tool for beta", betaKey, "layer=tool", nil},
		{"min duration", adminKey, "min_duration=800ms", []row{whole1}},
		{"min duration for beta's share", betaKey, "min_duration=800ms", nil},
		{"team filter", adminKey, "team=beta", []row{t2, whole1}},
		{"key filter", adminKey, "key=" + f.keyIDs[loneKey], []row{t3}},
		{"time range", adminKey, "range=90m", []row{t3, t2}},
		{"limit", adminKey, "limit=1", []row{t3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r struct{ Traces []traceRow }
			f.getJSON(t, "/admin/traces?"+tc.query, tc.key, http.StatusOK, &r)
			var got []row
			for _, tr := range r.Traces {
				got = append(got, row{tr.TraceID, tr.CostNanoUSD, tr.Spans, tr.Name})
				if tr.CostUSD != formatUSD(tr.CostNanoUSD) {
					t.Errorf("cost_usd %q for %d", tr.CostUSD, tr.CostNanoUSD)
				}
				if tc.key == betaKey && tr.Team != "beta" {
					t.Errorf("beta sees a summary of team %q", tr.Team)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("traces = %+v\nwant     %+v", got, tc.want)
			}
		})
	}
}

// A trace's status is its calls': another team's failed span does not make
// it an error for a team that sees only its own, and neither does an
// upstream attempt that a retry made good.
func TestTraceStatusCountsTheCallersCalls(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	start := time.Now().Add(-10 * time.Minute)
	mixed, retried := tid(20), tid(21)
	spans := []trace.Span{
		{TraceID: mixed, SpanID: sid(20), Layer: trace.LayerLLM, Name: "chat gpt-4o-mini", Start: start, Duration: time.Millisecond,
			Status: trace.StatusOK, Team: "alpha", KeyID: f.keyIDs[alphaKey], KeyName: "alpha-agent"},
		{TraceID: mixed, SpanID: sid(21), ParentSpanID: sid(20), Layer: trace.LayerTool, Name: "tools/call weather__forecast",
			Start: start.Add(time.Millisecond), Duration: time.Millisecond, Status: trace.StatusError,
			Team: "beta", KeyID: f.keyIDs[betaKey], KeyName: "beta-agent"},
		{TraceID: retried, SpanID: sid(22), Layer: trace.LayerLLM, Name: "chat gpt-4o-mini", Start: start.Add(time.Second),
			Duration: time.Millisecond, Status: trace.StatusOK, Team: "alpha", KeyID: f.keyIDs[alphaKey], KeyName: "alpha-agent"},
		{TraceID: retried, SpanID: sid(23), ParentSpanID: sid(22), Layer: trace.LayerLLM, Name: "attempt openai/gpt-4o-mini#1",
			Start: start.Add(time.Second), Duration: time.Millisecond, Status: trace.StatusError,
			Team: "alpha", KeyID: f.keyIDs[alphaKey], KeyName: "alpha-agent"},
	}
	if err := f.store.WriteSpans(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key, query string
		want             map[trace.TraceID]trace.Status
	}{
		{"alpha's share of the mixed trace is ok", alphaKey, "range=1h&status=ok", map[trace.TraceID]trace.Status{mixed: "ok", retried: "ok"}},
		{"and not an error", alphaKey, "range=1h&status=error", map[trace.TraceID]trace.Status{}},
		{"beta's share fails", betaKey, "range=1h&status=error", map[trace.TraceID]trace.Status{mixed: "error"}},
		{"the admin sees the whole", adminKey, "range=1h", map[trace.TraceID]trace.Status{mixed: "error", retried: "ok"}},
		{"a saved retry is not an error", adminKey, "range=1h&status=error", map[trace.TraceID]trace.Status{mixed: "error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r struct{ Traces []traceRow }
			f.getJSON(t, "/admin/traces?"+tc.query, tc.key, http.StatusOK, &r)
			got := map[trace.TraceID]trace.Status{}
			for _, tr := range r.Traces {
				if tr.TraceID == mixed || tr.TraceID == retried {
					got[tr.TraceID] = tr.Status
					if want := int64(0); tr.TraceID == retried && tr.Errors != want {
						t.Errorf("retried trace: %d errors, want 0", tr.Errors)
					}
				}
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("statuses %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRecentTracesRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, key, query string
		status           int
	}{
		{"no key", "", "", http.StatusUnauthorized},
		{"alpha asks for beta", alphaKey, "team=beta", http.StatusForbidden},
		{"bad layer", adminKey, "layer=db", http.StatusBadRequest},
		{"bad status", adminKey, "status=maybe", http.StatusBadRequest},
		{"sub-nano cost", adminKey, "min_cost_usd=0.0000000001", http.StatusBadRequest},
		{"negative cost", adminKey, "min_cost_usd=-1", http.StatusBadRequest},
		{"both costs", adminKey, "min_cost_usd=1&min_cost_nano_usd=5", http.StatusBadRequest},
		{"bad duration", adminKey, "min_duration=long", http.StatusBadRequest},
		{"limit too big", adminKey, "limit=100000", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f.getJSON(t, "/admin/traces?"+tc.query, tc.key, tc.status, nil)
		})
	}
}

// shape renders a forest as "name(child,child)" for comparison.
func shape(nodes []traceNode) string {
	s := ""
	for i, n := range nodes {
		if i > 0 {
			s += ","
		}
		s += n.Span.Name
		if len(n.Children) > 0 {
			s += "(" + shape(n.Children) + ")"
		}
	}
	return s
}

func TestTraceTreeIsPrunedToTheKeysTeam(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, key string
		id        trace.TraceID
		shape     string
		cost      int64
		spans     int64
		duration  time.Duration
	}{
		{"admin sees the whole workflow", adminKey, tid(1),
			"invoke_agent planner(chat gpt-4o-mini,tools/call weather__forecast,invoke_agent researcher(chat claude-haiku))",
			costAlphaLLM + costAlphaTool + costBetaLLM, 5, 900 * time.Millisecond},
		{"alpha does not see beta's model call", alphaKey, tid(1),
			"invoke_agent planner(chat gpt-4o-mini,tools/call weather__forecast,invoke_agent researcher)",
			costAlphaLLM + costAlphaTool, 4, 900 * time.Millisecond},
		{"beta sees only its own span, lifted to a root", betaKey, tid(1), "chat claude-haiku",
			costBetaLLM, 1, 400 * time.Millisecond},
		{"beta's own trace", betaKey, tid(2), "chat claude-haiku", costBetaSolo, 1, 30 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r traceResponse
			f.getJSON(t, "/admin/traces/"+tc.id.String(), tc.key, http.StatusOK, &r)
			if got := shape(r.Roots); got != tc.shape {
				t.Errorf("tree = %s\nwant   %s", got, tc.shape)
			}
			if r.CostNanoUSD != tc.cost || r.CostUSD != formatUSD(tc.cost) || r.Spans != tc.spans || r.Duration != tc.duration {
				t.Errorf("total = %d (%s), %d spans, %v; want %d, %d spans, %v",
					r.CostNanoUSD, r.CostUSD, r.Spans, r.Duration, tc.cost, tc.spans, tc.duration)
			}
			var sum int64
			var visit func([]traceNode)
			visit = func(ns []traceNode) {
				for _, n := range ns {
					sum += n.Span.CostNanoUSD
					if n.CostUSD != formatUSD(n.Span.CostNanoUSD) {
						t.Errorf("span %s cost_usd %q", n.Span.Name, n.CostUSD)
					}
					if want := int64(n.Span.Start.Sub(r.Start)); n.OffsetNs != want {
						t.Errorf("span %s offset %d, want %d", n.Span.Name, n.OffsetNs, want)
					}
					visit(n.Children)
				}
			}
			visit(r.Roots)
			if sum != r.CostNanoUSD {
				t.Errorf("spans sum to %d, total says %d", sum, r.CostNanoUSD)
			}
		})
	}
}

func TestTraceTreeNotFoundAndBadIDs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, key, id string
		status        int
	}{
		{"unknown trace", adminKey, tid(99).String(), http.StatusNotFound},
		// The same answer as an unknown id, so a team learns nothing of
		// another team's traces.
		{"alpha asks for beta's trace", alphaKey, tid(2).String(), http.StatusNotFound},
		{"team-less key asks for a team's trace", loneKey, tid(1).String(), http.StatusNotFound},
		{"malformed id", adminKey, "not-a-trace", http.StatusBadRequest},
		{"upper-case id", adminKey, "AB010100000000000000000000000000", http.StatusBadRequest},
		{"no key", "", tid(1).String(), http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f.getJSON(t, "/admin/traces/"+tc.id, tc.key, tc.status, nil)
		})
	}
}
