// Package storagetest is the conformance suite every storage.Store must pass.
package storagetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// Base is the time the suite's spans start from: midday, so ranges across
// day boundaries and partial days are both exercised.
var Base = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// Options describe how exact a store is.
type Options struct {
	// LatencyTolerance is the relative error allowed on latency
	// percentiles against the exact nearest-rank value (plus a nanosecond
	// of rounding); 0 demands the exact value.
	LatencyTolerance float64
}

// Run runs the suite. open must return a new, empty store for every call
// (subtests run in parallel) and arrange for it to be closed.
func Run(t *testing.T, opts Options, open func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store, opts Options)
	}{
		{"SpanFieldsRoundTrip", testRoundTrip},
		{"SpendExactOverManyRows", testSpendExact},
		{"SpendCountsCallsNotAttempts", testSpendCalls},
		{"SpendSince", testSpendSince},
		{"SpendRejectsBadQueries", testSpendValidation},
		{"TraceTree", testTraceTree},
		{"RecentTracesFilters", testRecentTraces},
		{"Records", testRecords},
		{"Audit", testAudit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			if err := s.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			tc.fn(t, s, opts)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func write(t *testing.T, s storage.Store, spans []trace.Span) {
	t.Helper()
	for chunk := range slices.Chunk(spans, 1000) {
		if err := s.WriteSpans(ctx(t), chunk); err != nil {
			t.Fatalf("WriteSpans: %v", err)
		}
	}
}

func tid(n int) trace.TraceID { return trace.TraceID{0xab, byte(n >> 16), byte(n >> 8), byte(n), 0x01} }
func sid(n int) trace.SpanID  { return trace.SpanID{0xcd, byte(n >> 16), byte(n >> 8), byte(n), 0x02} }

func flatten(nodes []storage.TraceNode, out []trace.Span) []trace.Span {
	for _, n := range nodes {
		out = append(out, n.Span)
		out = flatten(n.Children, out)
	}
	return out
}

func testRoundTrip(t *testing.T, s storage.Store, _ Options) {
	full := trace.Span{
		TraceID: tid(1), SpanID: sid(1), ParentSpanID: sid(99),
		Layer: trace.LayerLLM, Name: "chat gpt-4o-mini", Start: Base.Add(123456789 * time.Nanosecond),
		Duration: 1234567891 * time.Nanosecond, Status: trace.StatusError, HTTPStatus: 529,
		Error: "upstream said: \"overloaded\" 'quoted' \\ back\nslash ünïcødé 🚀",
		KeyID: "key_01H", KeyName: "ci-agent", Team: "platform", Org: "acme",
		Model: "gpt-4o-mini", Provider: "openai", Deployment: "openai/gpt-4o-mini#2",
		ToolServer: "weather", Tool: "get_forecast", Agent: "researcher",
		InputTokens: 1 << 40, OutputTokens: 987654321, CachedTokens: 12345,
		CostNanoUSD: 9_007_199_254_740_993, // 2^53+1: not representable as float64
		Retries:     3, Fallbacks: 2, TTFT: 87654321 * time.Nanosecond,
		Attrs: []trace.Attr{{Key: "task_id", Value: "t-1"}, {Key: "state", Value: "submitted"}, {Key: "state", Value: "completed"}, {Key: "", Value: ""}},
	}
	bare := trace.Span{TraceID: tid(1), SpanID: sid(2), ParentSpanID: sid(1), Layer: trace.LayerTool, Name: "x", Start: Base.Add(time.Second)}
	write(t, s, []trace.Span{full, bare})
	nodes, err := s.Trace(ctx(t), tid(1))
	if err != nil {
		t.Fatalf("Trace: %v", err)
	}
	got := flatten(nodes, nil)
	want := []trace.Span{full, bare}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, want)
	}
}

// spendSpans builds n spans over three days with awkward costs, some large
// enough that a float64 sum would drift, and durations up to a second. One in
// seven is an upstream attempt of an LLM call, as the llm package records
// them: a child span named "attempt <deployment>" with no cost or tokens.
func spendSpans(n int) []trace.Span {
	teams := []string{"platform", "research", "", "ops"}
	keys := []string{"k1", "k2", "k3"}
	models := []string{"gpt-4o-mini", "claude-haiku", "", "llama"}
	layers := []trace.Layer{trace.LayerLLM, trace.LayerTool, trace.LayerAgent, trace.LayerGateway}
	out := make([]trace.Span, n)
	for i := range out {
		cost := int64(i*7919%1_000_003) + 1
		if i%97 == 0 {
			cost += 3_333_333_333_333_337
		}
		status := trace.StatusOK
		if i%13 == 0 {
			status = trace.StatusError
		}
		out[i] = trace.Span{
			TraceID: tid(1000 + i/5), SpanID: sid(1000 + i), Layer: layers[i%len(layers)], Name: "spend",
			// ~26 s apart: three days starting at Base-1d.
			Start:  Base.Add(-24*time.Hour + time.Duration(i)*25920*time.Millisecond + time.Duration(i%1000)*time.Microsecond),
			Status: status, Team: teams[i%len(teams)], KeyID: keys[i%len(keys)], Model: models[i%len(models)],
			Provider: fmt.Sprint("p", i%2), ToolServer: fmt.Sprint("ts", i%3), Tool: fmt.Sprint("t", i%5), Agent: fmt.Sprint("a", i%2),
			InputTokens: int64(i % 4001), OutputTokens: int64(i % 977), CachedTokens: int64(i % 31), CostNanoUSD: cost,
			Duration: time.Duration(i*7907%1_000_000+1) * time.Microsecond,
		}
		if i%7 == 3 {
			sp := &out[i]
			sp.Layer, sp.Name, sp.ParentSpanID, sp.Deployment = trace.LayerLLM, "attempt openai/gpt-4o-mini#1", sid(999+i), "openai/gpt-4o-mini#1"
			sp.InputTokens, sp.OutputTokens, sp.CachedTokens, sp.CostNanoUSD = 0, 0, 0, 0
		}
	}
	return out
}

// nearestRank is the value at rank ceil(p*n) of sorted.
func nearestRank(sorted []time.Duration, pct int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)*pct+99)/100-1]
}

func groupValue(s trace.Span, g storage.GroupBy) string {
	switch g {
	case storage.GroupTeam:
		return s.Team
	case storage.GroupKey:
		return s.KeyID
	case storage.GroupModel:
		return s.Model
	case storage.GroupProvider:
		return s.Provider
	case storage.GroupToolServer:
		return s.ToolServer
	case storage.GroupTool:
		return s.Tool
	case storage.GroupAgent:
		return s.Agent
	case storage.GroupLayer:
		return string(s.Layer)
	}
	return ""
}

// expectSpend computes what Spend must answer, with int64 sums.
func expectSpend(spans []trace.Span, q storage.SpendQuery) []storage.SpendRow {
	type key struct {
		b int64
		g string
	}
	sums := map[key]*storage.SpendRow{}
	durations := map[key][]time.Duration{}
	for _, s := range spans {
		if !q.From.IsZero() && s.Start.Before(q.From) || !q.To.IsZero() && !s.Start.Before(q.To) ||
			q.Team != "" && s.Team != q.Team || q.KeyID != "" && s.KeyID != q.KeyID {
			continue
		}
		var b time.Time
		switch q.Bucket {
		case storage.BucketHour:
			b = s.Start.Truncate(time.Hour)
		case storage.BucketDay:
			b = s.Start.Truncate(24 * time.Hour)
		}
		k := key{b.UnixNano(), groupValue(s, q.GroupBy)}
		r := sums[k]
		if r == nil {
			r = &storage.SpendRow{Bucket: b, Group: k.g}
			sums[k] = r
		}
		r.CostNanoUSD += s.CostNanoUSD
		if storage.IsCall(s) {
			r.Requests++
			if s.Status == trace.StatusError {
				r.Errors++
			}
			durations[k] = append(durations[k], s.Duration)
		}
		r.InputTokens += s.InputTokens
		r.OutputTokens += s.OutputTokens
		r.CachedTokens += s.CachedTokens
	}
	var out []storage.SpendRow
	for k, r := range sums {
		d := durations[k]
		slices.Sort(d)
		r.LatencyP50, r.LatencyP95, r.LatencyP99 = nearestRank(d, 50), nearestRank(d, 95), nearestRank(d, 99)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b storage.SpendRow) int {
		if c := a.Bucket.Compare(b.Bucket); c != 0 {
			return c
		}
		if c := cmp.Compare(b.CostNanoUSD, a.CostNanoUSD); c != 0 {
			return c
		}
		return cmp.Compare(a.Group, b.Group)
	})
	return out
}

func testSpendExact(t *testing.T, s storage.Store, opts Options) {
	spans := spendSpans(10000)
	write(t, s, spans)
	day := 24 * time.Hour
	midnight := Base.Truncate(day)
	tests := []struct {
		name string
		q    storage.SpendQuery
	}{
		{"everything by team", storage.SpendQuery{GroupBy: storage.GroupTeam}},
		{"no grouping", storage.SpendQuery{}},
		{"by key per day", storage.SpendQuery{GroupBy: storage.GroupKey, Bucket: storage.BucketDay}},
		{"by model per hour", storage.SpendQuery{GroupBy: storage.GroupModel, Bucket: storage.BucketHour}},
		{"whole days by provider", storage.SpendQuery{From: midnight.Add(-day), To: midnight.Add(day), GroupBy: storage.GroupProvider}},
		{"partial days by tool server per day", storage.SpendQuery{From: midnight.Add(-7*time.Hour - 3*time.Nanosecond), To: midnight.Add(day + 5*time.Hour + time.Millisecond), GroupBy: storage.GroupToolServer, Bucket: storage.BucketDay}},
		{"within one day by tool", storage.SpendQuery{From: Base.Add(time.Minute), To: Base.Add(3 * time.Hour), GroupBy: storage.GroupTool}},
		{"open start by agent", storage.SpendQuery{To: Base.Add(7*time.Hour + 13*time.Second), GroupBy: storage.GroupAgent}},
		{"open end by layer", storage.SpendQuery{From: Base.Add(-20*time.Hour + 17*time.Second), GroupBy: storage.GroupLayer, Bucket: storage.BucketDay}},
		{"team filter", storage.SpendQuery{Team: "research", GroupBy: storage.GroupKey}},
		{"team and key filter per hour", storage.SpendQuery{Team: "platform", KeyID: "k2", Bucket: storage.BucketHour, From: Base.Add(-90 * time.Minute)}},
		{"empty range", storage.SpendQuery{From: Base.Add(100 * day), To: Base.Add(101 * day)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Spend(ctx(t), tc.q)
			if err != nil {
				t.Fatalf("Spend: %v", err)
			}
			want := expectSpend(spans, tc.q)
			if len(got) == 0 && len(want) == 0 {
				return
			}
			if len(got) == len(want) {
				for i := range got {
					checkLatencies(t, opts, got[i], want[i])
					got[i].LatencyP50, got[i].LatencyP95, got[i].LatencyP99 = want[i].LatencyP50, want[i].LatencyP95, want[i].LatencyP99
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Spend(%+v):\n got %+v\nwant %+v", tc.q, got, want)
			}
		})
	}
}

// checkLatencies compares got's percentiles with the nearest-rank ones in
// want within opts' tolerance.
func checkLatencies(t *testing.T, opts Options, got, want storage.SpendRow) {
	t.Helper()
	for _, c := range []struct {
		pct       int
		got, want time.Duration
	}{{50, got.LatencyP50, want.LatencyP50}, {95, got.LatencyP95, want.LatencyP95}, {99, got.LatencyP99, want.LatencyP99}} {
		slack := time.Duration(math.Ceil(float64(c.want)*opts.LatencyTolerance)) + 1
		if opts.LatencyTolerance == 0 {
			slack = 0
		}
		if c.got < c.want-slack || c.got > c.want+slack {
			t.Errorf("group %q bucket %v: p%d = %v, want %v ± %v", got.Group, got.Bucket, c.pct, c.got, c.want, slack)
		}
	}
}

// testSpendCalls checks on known durations that retry attempts are neither
// requests, errors nor latencies, while every span's cost still counts.
func testSpendCalls(t *testing.T, s storage.Store, opts Options) {
	var spans []trace.Span
	for i := 1; i <= 100; i++ {
		call := trace.Span{TraceID: tid(5000 + i), SpanID: sid(5000 + i), Layer: trace.LayerLLM, Name: "chat gpt-4o",
			Start: Base.Add(time.Duration(i) * time.Second), Duration: time.Duration(i) * time.Millisecond, Status: trace.StatusOK,
			Team: "latency", Model: "gpt-4o", CostNanoUSD: int64(i), InputTokens: 10, OutputTokens: 2}
		if i%10 == 0 {
			call.Status = trace.StatusError
		}
		spans = append(spans, call)
		if i%4 == 0 {
			// A failed attempt, slower than any call, and the successful one.
			failed := trace.Span{TraceID: call.TraceID, SpanID: sid(6000 + i), ParentSpanID: call.SpanID, Layer: trace.LayerLLM,
				Name: "attempt azure/gpt-4o#1", Start: call.Start, Duration: time.Hour, Status: trace.StatusError, Team: "latency", Model: "gpt-4o"}
			ok := failed
			ok.SpanID, ok.Name, ok.Duration, ok.Status = sid(7000+i), "attempt openai/gpt-4o#2", call.Duration/2, trace.StatusOK
			spans = append(spans, failed, ok)
		}
	}
	write(t, s, spans)
	got, err := s.Spend(ctx(t), storage.SpendQuery{Team: "latency", GroupBy: storage.GroupModel})
	if err != nil || len(got) != 1 {
		t.Fatalf("Spend: %+v %v", got, err)
	}
	want := storage.SpendRow{Group: "gpt-4o", CostNanoUSD: 5050, Requests: 100, Errors: 10, InputTokens: 1000, OutputTokens: 200,
		LatencyP50: 50 * time.Millisecond, LatencyP95: 95 * time.Millisecond, LatencyP99: 99 * time.Millisecond}
	checkLatencies(t, opts, got[0], want)
	got[0].LatencyP50, got[0].LatencyP95, got[0].LatencyP99 = want.LatencyP50, want.LatencyP95, want.LatencyP99
	if got[0] != want {
		t.Fatalf("Spend\n got %+v\nwant %+v", got[0], want)
	}
}

func testSpendSince(t *testing.T, s storage.Store, _ Options) {
	spans := spendSpans(3000)
	write(t, s, spans)
	tests := []struct {
		name  string
		scope storage.Scope
		id    string
		since time.Time
	}{
		{"key since unaligned", storage.ScopeKey, "k1", Base.Add(-13*time.Hour - 7*time.Second)},
		{"key since midnight", storage.ScopeKey, "k3", Base.Truncate(24 * time.Hour)},
		{"team since long ago", storage.ScopeTeam, "platform", time.Unix(0, 0)},
		{"team in the future", storage.ScopeTeam, "ops", Base.Add(1000 * time.Hour)},
		{"unknown team", storage.ScopeTeam, "nobody", time.Unix(0, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want int64
			for _, sp := range spans {
				v := sp.KeyID
				if tc.scope == storage.ScopeTeam {
					v = sp.Team
				}
				if v == tc.id && !sp.Start.Before(tc.since) {
					want += sp.CostNanoUSD
				}
			}
			got, err := s.SpendSince(ctx(t), tc.scope, tc.id, tc.since)
			if err != nil || got != want {
				t.Fatalf("SpendSince = %d, %v; want %d", got, err, want)
			}
		})
	}
	if _, err := s.SpendSince(ctx(t), storage.Scope("org"), "x", Base); err == nil {
		t.Fatal("unknown scope accepted")
	}
}

func testSpendValidation(t *testing.T, s storage.Store, _ Options) {
	for _, q := range []storage.SpendQuery{
		{GroupBy: "secret; DROP TABLE spans"},
		{Bucket: "week"},
		{From: Base, To: Base.Add(-time.Second)},
	} {
		if _, err := s.Spend(ctx(t), q); err == nil {
			t.Errorf("Spend(%+v) accepted", q)
		}
	}
}

type shape struct {
	id       int
	children []shape
}

func shapeOf(nodes []storage.TraceNode) []shape {
	var out []shape
	for _, n := range nodes {
		out = append(out, shape{id: int(n.Span.SpanID[3]), children: shapeOf(n.Children)})
	}
	return out
}

func testTraceTree(t *testing.T, s storage.Store, _ Options) {
	at := func(ms int) time.Time { return Base.Add(time.Duration(ms) * time.Millisecond) }
	span := func(tr, id, parent, ms int) trace.Span {
		sp := trace.Span{TraceID: tid(tr), SpanID: sid(id), Layer: trace.LayerGateway, Name: fmt.Sprint("s", id), Start: at(ms)}
		if parent != 0 {
			sp.ParentSpanID = sid(parent)
		}
		return sp
	}
	write(t, s, []trace.Span{
		// Trace 10: 1 → (2 → 4, 3); written out of order.
		span(10, 4, 2, 30), span(10, 3, 1, 20), span(10, 1, 0, 0), span(10, 2, 1, 10),
		// Trace 11: its root is in the client; two spans hang off it, one has a child.
		span(11, 7, 50, 40), span(11, 5, 50, 0), span(11, 6, 5, 5),
		// Another trace must not leak in.
		span(12, 8, 0, 0),
	})
	tests := []struct {
		name  string
		trace int
		want  []shape
	}{
		{"own root", 10, []shape{{1, []shape{{2, []shape{{4, nil}}}, {3, nil}}}}},
		{"root outside the gateway", 11, []shape{{5, []shape{{6, nil}}}, {7, nil}}},
		{"single span", 12, []shape{{8, nil}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nodes, err := s.Trace(ctx(t), tid(tc.trace))
			if err != nil {
				t.Fatalf("Trace: %v", err)
			}
			if got := shapeOf(nodes); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("shape %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := s.Trace(ctx(t), tid(999)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown trace: %v, want ErrNotFound", err)
	}
}

func testRecentTraces(t *testing.T, s storage.Store, _ Options) {
	mk := func(id, startMs int, team, key string, layer trace.Layer, status trace.Status, cost int64, durMs int) trace.Span {
		return trace.Span{TraceID: tid(id), SpanID: sid(id*10 + int(cost%7)), Layer: layer, Name: fmt.Sprint("n", id),
			Start: Base.Add(time.Duration(startMs) * time.Millisecond), Duration: time.Duration(durMs) * time.Millisecond,
			Status: status, Team: team, KeyID: key, KeyName: "name-" + key, CostNanoUSD: cost, InputTokens: 10, OutputTokens: 1}
	}
	root1 := mk(1, 0, "platform", "k1", trace.LayerGateway, trace.StatusOK, 100, 500)
	child1 := mk(1, 100, "platform", "k1", trace.LayerLLM, trace.StatusError, 5000, 1000) // trace 1 ends at 1100ms
	child1.ParentSpanID = root1.SpanID
	write(t, s, []trace.Span{
		root1, child1,
		mk(2, 2000, "research", "k2", trace.LayerTool, trace.StatusOK, 3, 10),
		mk(3, 4000, "platform", "k3", trace.LayerAgent, trace.StatusOK, 700, 3000),
		mk(4, 6000, "", "", trace.LayerLLM, trace.StatusError, 0, 1),
	})
	// A call that a retry saved: its failed upstream attempt does not make
	// the trace an error, as it does not count as an error in Spend.
	saved := mk(5, 8000, "", "k5", trace.LayerLLM, trace.StatusOK, 0, 10)
	attempt := mk(5, 8001, "", "k5", trace.LayerLLM, trace.StatusError, 0, 5)
	attempt.SpanID, attempt.ParentSpanID, attempt.Name = sid(51), saved.SpanID, "attempt openai/gpt-4o#1"
	write(t, s, []trace.Span{saved, attempt})
	tests := []struct {
		name string
		f    storage.TraceFilter
		want []int
	}{
		{"all newest first", storage.TraceFilter{}, []int{5, 4, 3, 2, 1}},
		{"limit", storage.TraceFilter{Limit: 2}, []int{5, 4}},
		{"team", storage.TraceFilter{Team: "platform"}, []int{3, 1}},
		{"key", storage.TraceFilter{KeyID: "k2"}, []int{2}},
		{"layer of a child span", storage.TraceFilter{Layer: trace.LayerLLM}, []int{5, 4, 1}},
		{"errors", storage.TraceFilter{Status: trace.StatusError}, []int{4, 1}},
		{"ok", storage.TraceFilter{Status: trace.StatusOK}, []int{5, 3, 2}},
		{"min cost over the whole trace", storage.TraceFilter{MinCostNanoUSD: 701}, []int{1}},
		{"min duration", storage.TraceFilter{MinDuration: 1100 * time.Millisecond}, []int{3, 1}},
		{"time range", storage.TraceFilter{From: Base.Add(2 * time.Second), To: Base.Add(6 * time.Second)}, []int{3, 2}},
		{"nothing", storage.TraceFilter{Team: "platform", KeyID: "k2"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.RecentTraces(ctx(t), tc.f)
			if err != nil {
				t.Fatalf("RecentTraces: %v", err)
			}
			var ids []int
			for _, g := range got {
				ids = append(ids, int(g.TraceID[3]))
			}
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("traces %v, want %v", ids, tc.want)
			}
		})
	}
	got, err := s.RecentTraces(ctx(t), storage.TraceFilter{KeyID: "k1"})
	if err != nil || len(got) != 1 {
		t.Fatalf("RecentTraces: %v %v", got, err)
	}
	want := storage.TraceSummary{TraceID: tid(1), Name: "n1", Layer: trace.LayerGateway, Start: Base, Duration: 1100 * time.Millisecond,
		Spans: 2, Errors: 1, Status: trace.StatusError, CostNanoUSD: 5100, InputTokens: 20, OutputTokens: 2,
		Team: "platform", KeyID: "k1", KeyName: "name-k1"}
	if !reflect.DeepEqual(got[0], want) {
		t.Fatalf("summary\n got %+v\nwant %+v", got[0], want)
	}
	got, err = s.RecentTraces(ctx(t), storage.TraceFilter{KeyID: "k5"})
	if err != nil || len(got) != 1 || got[0].Spans != 2 || got[0].Errors != 0 || got[0].Status != trace.StatusOK {
		t.Fatalf("saved call's trace: %+v %v, want 2 spans, no error", got, err)
	}
}

func testRecords(t *testing.T, s storage.Store, _ Options) {
	c := ctx(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	list := func(kind string) map[string]string {
		t.Helper()
		recs, err := s.ListRecords(c, kind)
		must(err)
		out := map[string]string{}
		var ids []string
		for _, r := range recs {
			if r.Kind != kind || r.UpdatedAt.IsZero() {
				t.Fatalf("record %+v", r)
			}
			out[r.ID] = string(r.Data)
			ids = append(ids, r.ID)
		}
		if !slices.IsSorted(ids) {
			t.Fatalf("records not ordered by id: %v", ids)
		}
		return out
	}
	binary := string([]byte{0, 1, 2, 0xff, '\'', '\\', '"'})
	must(s.PutRecord(c, "governance.key", "b", []byte(`{"v":1}`)))
	must(s.PutRecord(c, "governance.key", "a", []byte(binary)))
	must(s.PutRecord(c, "governance.team", "b", []byte(`team`)))
	must(s.PutRecord(c, "governance.key", "b", []byte(`{"v":2}`)))
	if got, want := list("governance.key"), map[string]string{"a": binary, "b": `{"v":2}`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after puts %q, want %q", got, want)
	}
	must(s.DeleteRecord(c, "governance.key", "b"))
	must(s.DeleteRecord(c, "governance.key", "missing"))
	if got, want := list("governance.key"), map[string]string{"a": binary}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after delete %q, want %q", got, want)
	}
	must(s.PutRecord(c, "governance.key", "b", []byte(`{"v":3}`)))
	if got, want := list("governance.key"), map[string]string{"a": binary, "b": `{"v":3}`}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after re-put %q, want %q", got, want)
	}
	if got, want := list("governance.team"), map[string]string{"b": "team"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("other kind %q, want %q", got, want)
	}
	if got := list("nothing"); len(got) != 0 {
		t.Fatalf("empty kind: %v", got)
	}
}

func testAudit(t *testing.T, s storage.Store, _ Options) {
	at := func(sec int) time.Time { return Base.Add(time.Duration(sec)*time.Second + 123*time.Nanosecond) }
	events := []storage.AuditEvent{
		{Time: at(0), Actor: "admin", Action: "key.create", Target: "key_a", Team: "platform", Status: "ok", RemoteAddr: "127.0.0.1:5000", RequestID: "r1"},
		{Time: at(1), Actor: "key_a", ActorName: "ci", Team: "platform", Action: "request.denied", Target: "model gpt-4o", Rule: "models.allow", Status: "denied", Detail: "not in 'allow' list; \"quoted\" \\ ünï"},
		{Time: at(2), Actor: "admin", Action: "config.reload", Status: "ok"},
		{Time: at(3), Actor: "key_b", ActorName: "research-bot", Team: "research", Action: "request.denied", Target: "tool x", Rule: "budget", Status: "denied"},
		{Time: at(4), Actor: "admin", Team: "research", Action: "team.update", Target: "research", Status: "ok"},
	}
	if err := s.AppendAudit(ctx(t), events[:2]); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if err := s.AppendAudit(ctx(t), events[2:]); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if err := s.AppendAudit(ctx(t), nil); err != nil {
		t.Fatalf("AppendAudit(nil): %v", err)
	}
	for i := range events {
		events[i].Time = events[i].Time.UTC()
	}
	tests := []struct {
		name string
		q    storage.AuditQuery
		want []int
	}{
		{"all newest first", storage.AuditQuery{}, []int{4, 3, 2, 1, 0}},
		{"limit", storage.AuditQuery{Limit: 2}, []int{4, 3}},
		{"team", storage.AuditQuery{Team: "platform"}, []int{1, 0}},
		{"actor", storage.AuditQuery{Actor: "admin"}, []int{4, 2, 0}},
		{"action", storage.AuditQuery{Action: "request.denied"}, []int{3, 1}},
		{"team and action", storage.AuditQuery{Team: "research", Action: "request.denied"}, []int{3}},
		{"range is half open", storage.AuditQuery{From: at(1), To: at(3)}, []int{2, 1}},
		{"value that looks like SQL", storage.AuditQuery{Team: "x' OR '1'='1"}, nil},
		{"nothing", storage.AuditQuery{From: at(10)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Audit(ctx(t), tc.q)
			if err != nil {
				t.Fatalf("Audit: %v", err)
			}
			var want []storage.AuditEvent
			for _, i := range tc.want {
				want = append(want, events[i])
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Audit(%+v):\n got %+v\nwant %+v", tc.q, got, want)
			}
		})
	}
	for _, q := range []storage.AuditQuery{{From: Base, To: Base.Add(-time.Second)}, {Limit: -1}} {
		if _, err := s.Audit(ctx(t), q); err == nil {
			t.Errorf("Audit(%+v) accepted", q)
		}
	}
}
