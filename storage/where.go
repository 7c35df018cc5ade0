package storage

import (
	"strings"

	"github.com/switchboard-gw/switchboard/trace"
)

// where gathers SQL conditions and their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) sql() string { return w.clause("WHERE") }

// clause is the conditions joined by AND after keyword, or "" when there are none.
func (w *where) clause(keyword string) string {
	if len(w.conds) == 0 {
		return ""
	}
	return " " + keyword + " " + strings.Join(w.conds, " AND ")
}

// traceHaving adds RecentTraces' conditions on whole traces to h, for a dialect that counts the spans of a trace
// meeting cond as countIf(cond) and says IsCall as call: a trace matches when any span has the team, key or layer
// asked for, while status, cost and duration apply to the trace as a whole. A trace's errors are its failed calls,
// as in Spend: an upstream attempt that a retry or fallback made good is not one.
func traceHaving(h *where, f TraceFilter, countIf func(cond string) string, call string) {
	if f.Team != "" {
		h.add(countIf("team = ?")+" > 0", f.Team)
	}
	if f.KeyID != "" {
		h.add(countIf("key_id = ?")+" > 0", f.KeyID)
	}
	if f.Layer != "" {
		h.add(countIf("layer = ?")+" > 0", string(f.Layer))
	}
	switch f.Status {
	case trace.StatusError:
		h.add(countIf("status = 'error' AND "+call) + " > 0")
	case trace.StatusOK:
		h.add(countIf("status = 'error' AND "+call) + " = 0")
	}
	if f.MinCostNanoUSD > 0 {
		h.add("sum(cost_nano) >= ?", f.MinCostNanoUSD)
	}
	if f.MinDuration > 0 {
		h.add("max(start_ns + duration_ns) - min(start_ns) >= ?", int64(f.MinDuration))
	}
}

// IsCall is callCondition in Go: the span stands for a client call, not for
// one of the llm package's upstream attempts under it.
func IsCall(s trace.Span) bool {
	return !(s.Layer == trace.LayerLLM && strings.HasPrefix(s.Name, "attempt "))
}
