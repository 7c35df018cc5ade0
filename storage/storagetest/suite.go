// Package storagetest is the conformance suite every storage.Store must pass.
package storagetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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

// Run runs the suite. open must return a new, empty store for every call
// (subtests run in parallel) and arrange for it to be closed.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"SpanFieldsRoundTrip", testRoundTrip},
		{"SpendExactOverManyRows", testSpendExact},
		{"SpendSince", testSpendSince},
		{"SpendRejectsBadQueries", testSpendValidation},
		{"TraceTree", testTraceTree},
		{"RecentTracesFilters", testRecentTraces},
		{"Records", testRecords},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			if err := s.Ping(context.Background()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			tc.fn(t, s)
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

func testRoundTrip(t *testing.T, s storage.Store) {
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
// enough that a float64 sum would drift.
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
		}
	}
	return out
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
		r.Requests++
		if s.Status == trace.StatusError {
			r.Errors++
		}
		r.InputTokens += s.InputTokens
		r.OutputTokens += s.OutputTokens
		r.CachedTokens += s.CachedTokens
	}
	var out []storage.SpendRow
	for _, r := range sums {
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

func testSpendExact(t *testing.T, s storage.Store) {
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
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Spend(%+v):\n got %+v\nwant %+v", tc.q, got, want)
			}
		})
	}
}

func testSpendSince(t *testing.T, s storage.Store) {
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

func testSpendValidation(t *testing.T, s storage.Store) {
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

func testTraceTree(t *testing.T, s storage.Store) {
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

func testRecentTraces(t *testing.T, s storage.Store) {
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
	tests := []struct {
		name string
		f    storage.TraceFilter
		want []int
	}{
		{"all newest first", storage.TraceFilter{}, []int{4, 3, 2, 1}},
		{"limit", storage.TraceFilter{Limit: 2}, []int{4, 3}},
		{"team", storage.TraceFilter{Team: "platform"}, []int{3, 1}},
		{"key", storage.TraceFilter{KeyID: "k2"}, []int{2}},
		{"layer of a child span", storage.TraceFilter{Layer: trace.LayerLLM}, []int{4, 1}},
		{"errors", storage.TraceFilter{Status: trace.StatusError}, []int{4, 1}},
		{"ok", storage.TraceFilter{Status: trace.StatusOK}, []int{3, 2}},
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
}

func testRecords(t *testing.T, s storage.Store) {
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
