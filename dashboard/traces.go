package dashboard

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// traceRow is one trace in the list, with its cost as a decimal string too.
type traceRow struct {
	storage.TraceSummary
	CostUSD string `json:"cost_usd"`
}

// traces answers GET /admin/traces?team=&key=&layer=&status=&min_cost_usd=
// &min_cost_nano_usd=&min_duration=&from=&to=&range=&limit=.
func (d *Dashboard) traces(c *fiber.Ctx) error {
	f, err := traceFilter(c, d.now())
	if err != nil {
		return sendError(c, err)
	}
	if f.KeyID, err = d.keyParam(c); err != nil {
		return sendError(c, err)
	}
	sc := scopeOf(principal(c))
	if f.Team, f.KeyID, err = sc.restrict(f.Team, f.KeyID); err != nil {
		d.denied(c, err)
		return sendError(c, err)
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), queryTimeout)
	defer cancel()
	stored := f
	if !sc.admin && f.Status == trace.StatusOK {
		// The store judges whole traces, and another team's failed span
		// makes one an error; rescope judges the caller's own spans.
		stored.Status = ""
	}
	list, err := d.store.RecentTraces(ctx, stored)
	if err != nil {
		return d.storeFailed(c, "recent traces", err)
	}
	if !sc.admin {
		// A workflow may cross teams (an agent of one team calls an agent
		// whose model calls bill another), and the store sums whole traces:
		// rebuild each summary from the caller's own spans.
		if list, err = d.rescope(ctx, sc, f, list); err != nil {
			return d.storeFailed(c, "recent traces", err)
		}
	}
	out := make([]traceRow, len(list))
	for i, t := range list {
		out[i] = traceRow{TraceSummary: t, CostUSD: formatUSD(t.CostNanoUSD)}
	}
	return c.JSON(fiber.Map{"traces": out})
}

func traceFilter(c *fiber.Ctx, now time.Time) (storage.TraceFilter, error) {
	var f storage.TraceFilter
	tr, err := parseTimeRange(c, now, 0)
	if err != nil {
		return f, err
	}
	f.From, f.To = tr.from, tr.to
	f.Team, f.KeyID = c.Query("team"), c.Query("key")
	switch l := trace.Layer(c.Query("layer")); l {
	case "", trace.LayerGateway, trace.LayerLLM, trace.LayerTool, trace.LayerAgent:
		f.Layer = l
	default:
		return f, errBadRequest("layer: want gateway, llm, tool or agent")
	}
	switch s := trace.Status(c.Query("status")); s {
	case "", trace.StatusOK, trace.StatusError:
		f.Status = s
	default:
		return f, errBadRequest("status: want ok or error")
	}
	if s := c.Query("min_cost_usd"); s != "" {
		if f.MinCostNanoUSD, err = parseUSD(s); err != nil || f.MinCostNanoUSD < 0 {
			return f, errBadRequest("min_cost_usd: want a non-negative decimal amount with at most 9 decimal places")
		}
	}
	if s := c.Query("min_cost_nano_usd"); s != "" {
		if f.MinCostNanoUSD != 0 {
			return f, errBadRequest("min_cost_nano_usd: give either min_cost_usd or min_cost_nano_usd")
		}
		if f.MinCostNanoUSD, err = strconv.ParseInt(s, 10, 64); err != nil || f.MinCostNanoUSD < 0 {
			return f, errBadRequest("min_cost_nano_usd: want a non-negative integer")
		}
	}
	if s := c.Query("min_duration"); s != "" {
		if f.MinDuration, err = time.ParseDuration(s); err != nil || f.MinDuration < 0 {
			return f, errBadRequest("min_duration: want a duration such as 250ms or 2s")
		}
	}
	if s := c.Query("limit"); s != "" {
		if f.Limit, err = strconv.Atoi(s); err != nil || f.Limit < 1 || f.Limit > storage.MaxTraceLimit {
			return f, errBadRequest("limit: want an integer from 1 to %d", storage.MaxTraceLimit)
		}
	}
	return f, nil
}

// rescope replaces each summary by one made of the scope's own spans in the
// filter's range and drops traces that no longer match the filter.
func (d *Dashboard) rescope(ctx context.Context, sc scope, f storage.TraceFilter, list []storage.TraceSummary) ([]storage.TraceSummary, error) {
	out := list[:0]
	for _, t := range list {
		nodes, err := d.store.Trace(ctx, t.TraceID)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var own []*trace.Span
		walk(nodes, func(sp *trace.Span) {
			if sc.owns(sp) && inRange(sp.Start, f.From, f.To) {
				own = append(own, sp)
			}
		})
		if s, ok := summarise(t.TraceID, own); ok && matches(s, own, f) {
			out = append(out, s)
		}
	}
	return out, nil
}

func inRange(t, from, to time.Time) bool {
	return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
}

func walk(nodes []storage.TraceNode, fn func(*trace.Span)) {
	for i := range nodes {
		fn(&nodes[i].Span)
		walk(nodes[i].Children, fn)
	}
}

// summarise mirrors the store's summary: name, layer and principal from the
// earliest span; duration from the first start to the last end.
func summarise(id trace.TraceID, spans []*trace.Span) (storage.TraceSummary, bool) {
	s := storage.TraceSummary{TraceID: id}
	if len(spans) == 0 {
		return s, false
	}
	var first *trace.Span
	var end time.Time
	for _, sp := range spans {
		if first == nil || sp.Start.Before(first.Start) {
			first = sp
		}
		if e := sp.Start.Add(sp.Duration); e.After(end) {
			end = e
		}
		s.Spans++
		if sp.Status == trace.StatusError && storage.IsCall(*sp) {
			s.Errors++
		}
		s.CostNanoUSD += sp.CostNanoUSD
		s.InputTokens += sp.InputTokens
		s.OutputTokens += sp.OutputTokens
	}
	s.Name, s.Layer, s.Start, s.Duration = first.Name, first.Layer, first.Start, end.Sub(first.Start)
	s.Team, s.KeyID, s.KeyName = first.Team, first.KeyID, first.KeyName
	s.Status = trace.StatusOK
	if s.Errors > 0 {
		s.Status = trace.StatusError
	}
	return s, true
}

// matches re-applies the filter to a rescoped summary.
func matches(s storage.TraceSummary, spans []*trace.Span, f storage.TraceFilter) bool {
	if f.Status != "" && s.Status != f.Status {
		return false
	}
	if s.CostNanoUSD < f.MinCostNanoUSD || s.Duration < f.MinDuration {
		return false
	}
	var key, layer bool
	for _, sp := range spans {
		key = key || f.KeyID == "" || sp.KeyID == f.KeyID
		layer = layer || f.Layer == "" || sp.Layer == f.Layer
	}
	return key && layer
}

// traceNode is a span of the tree view with what the waterfall needs: its
// start relative to the trace's first span and its cost as a decimal string.
type traceNode struct {
	Span     trace.Span  `json:"span"`
	OffsetNs int64       `json:"offset_ns"`
	CostUSD  string      `json:"cost_usd"`
	Children []traceNode `json:"children,omitempty"`
}

// traceResponse is GET /admin/traces/:id.
type traceResponse struct {
	TraceID      trace.TraceID `json:"trace_id"`
	Start        time.Time     `json:"start"`
	Duration     time.Duration `json:"duration_ns"`
	Spans        int64         `json:"spans"`
	Errors       int64         `json:"errors"`
	CostNanoUSD  int64         `json:"cost_nano_usd"`
	CostUSD      string        `json:"cost_usd"`
	InputTokens  int64         `json:"input_tokens"`
	OutputTokens int64         `json:"output_tokens"`
	Roots        []traceNode   `json:"roots"`
}

// traceTree answers GET /admin/traces/:id with the trace as a forest. A
// non-admin key sees only its scope's spans (a foreign span's own children
// move up to its nearest visible ancestor); a trace with none is not found,
// so its existence is not revealed either.
func (d *Dashboard) traceTree(c *fiber.Ctx) error {
	id, ok := trace.ParseTraceID(c.Params("id"))
	if !ok {
		return sendError(c, errBadRequest("id: want a trace id of 32 lowercase hex digits"))
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), queryTimeout)
	defer cancel()
	nodes, err := d.store.Trace(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return sendError(c, errTraceNotFound)
	}
	if err != nil {
		return d.storeFailed(c, "trace", err)
	}
	nodes = prune(nodes, scopeOf(principal(c)))
	if len(nodes) == 0 {
		return sendError(c, errTraceNotFound)
	}
	var spans []*trace.Span
	walk(nodes, func(sp *trace.Span) { spans = append(spans, sp) })
	sum, _ := summarise(id, spans)
	resp := traceResponse{TraceID: id, Start: sum.Start, Duration: sum.Duration, Spans: sum.Spans, Errors: sum.Errors,
		CostNanoUSD: sum.CostNanoUSD, CostUSD: formatUSD(sum.CostNanoUSD), InputTokens: sum.InputTokens,
		OutputTokens: sum.OutputTokens, Roots: viewNodes(nodes, sum.Start)}
	return c.JSON(resp)
}

// prune keeps the spans sc owns, lifting the owned descendants of a dropped
// span into its place.
func prune(nodes []storage.TraceNode, sc scope) []storage.TraceNode {
	if sc.admin {
		return nodes
	}
	var out []storage.TraceNode
	for _, n := range nodes {
		kids := prune(n.Children, sc)
		if sc.owns(&n.Span) {
			n.Children = kids
			out = append(out, n)
			continue
		}
		out = append(out, kids...)
	}
	slices.SortStableFunc(out, func(a, b storage.TraceNode) int { return a.Span.Start.Compare(b.Span.Start) })
	return out
}

func viewNodes(nodes []storage.TraceNode, start time.Time) []traceNode {
	if len(nodes) == 0 {
		return nil
	}
	out := make([]traceNode, len(nodes))
	for i, n := range nodes {
		out[i] = traceNode{Span: n.Span, OffsetNs: int64(n.Span.Start.Sub(start)), CostUSD: formatUSD(n.Span.CostNanoUSD),
			Children: viewNodes(n.Children, start)}
	}
	return out
}
