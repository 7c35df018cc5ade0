package dashboard

import (
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/storage"
)

// p is a row's or total's latency percentiles in milliseconds; all zero
// means none reported.
type p struct{ p50, p95, p99 int64 }

func latencyOf(a amount) p {
	return p{a.LatencyP50NS / 1e6, a.LatencyP95NS / 1e6, a.LatencyP99NS / 1e6}
}

func TestSpendLatencyIsKeptOnlyWhereOneStoreRowStandsBehindIt(t *testing.T) {
	t.Parallel()
	h0, h1 := now.Add(-2*time.Hour), now.Add(-time.Hour)
	row := func(b time.Time, g string, cost int64, l p) storage.SpendRow {
		return storage.SpendRow{Bucket: b, Group: g, CostNanoUSD: cost, Requests: 1,
			LatencyP50: time.Duration(l.p50) * time.Millisecond, LatencyP95: time.Duration(l.p95) * time.Millisecond,
			LatencyP99: time.Duration(l.p99) * time.Millisecond}
	}
	tests := []struct {
		name   string
		rows   []storage.SpendRow
		top    int
		total  p
		groups []p // in cost order
		others *p
		series []p // in bucket, then row order
	}{
		{"one row: group and total keep it",
			[]storage.SpendRow{row(time.Time{}, "a", 5, p{10, 20, 30})}, 0,
			p{10, 20, 30}, []p{{10, 20, 30}}, nil, nil},
		{"several groups: each keeps its own, the total has none",
			[]storage.SpendRow{row(time.Time{}, "a", 5, p{10, 20, 30}), row(time.Time{}, "b", 3, p{1, 2, 3})}, 0,
			p{}, []p{{10, 20, 30}, {1, 2, 3}}, nil, nil},
		{"a group over two buckets has none; each bucket keeps its own",
			[]storage.SpendRow{row(h0, "a", 5, p{10, 20, 30}), row(h1, "a", 4, p{40, 50, 60}), row(h1, "b", 1, p{7, 8, 9})}, 0,
			p{}, []p{{}, {7, 8, 9}}, nil, []p{{10, 20, 30}, {40, 50, 60}, {7, 8, 9}}},
		{"others folded from one group keeps it, from two has none",
			[]storage.SpendRow{row(time.Time{}, "a", 5, p{10, 20, 30}), row(time.Time{}, "b", 3, p{1, 2, 3}),
				row(time.Time{}, "c", 2, p{4, 5, 6})}, 1,
			p{}, []p{{10, 20, 30}}, &p{}, nil},
		{"others of exactly one group",
			[]storage.SpendRow{row(time.Time{}, "a", 5, p{10, 20, 30}), row(time.Time{}, "b", 3, p{1, 2, 3})}, 1,
			p{}, []p{{10, 20, 30}}, &p{1, 2, 3}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := summariseSpend(tc.rows, tc.top)
			if got := latencyOf(r.Total); got != tc.total {
				t.Errorf("total latency = %v, want %v", got, tc.total)
			}
			if len(r.Groups) != len(tc.groups) {
				t.Fatalf("%d groups, want %d", len(r.Groups), len(tc.groups))
			}
			for i, g := range r.Groups {
				if got := latencyOf(g.amount); got != tc.groups[i] {
					t.Errorf("group %q latency = %v, want %v", g.Group, got, tc.groups[i])
				}
			}
			if (r.Others == nil) != (tc.others == nil) {
				t.Fatalf("others = %+v, want %v", r.Others, tc.others)
			}
			if r.Others != nil {
				if got := latencyOf(r.Others.amount); got != *tc.others {
					t.Errorf("others latency = %v, want %v", got, *tc.others)
				}
			}
			if len(r.Series) != len(tc.series) {
				t.Fatalf("%d series rows, want %d", len(r.Series), len(tc.series))
			}
			for i, s := range r.Series {
				if got := latencyOf(s.amount); got != tc.series[i] {
					t.Errorf("series[%d] (%s %q) latency = %v, want %v", i, s.Bucket.Format(time.Kitchen), s.Group, got, tc.series[i])
				}
			}
		})
	}
}

// The fixture's call durations: alpha 900, 200, 50 and 500 ms, all in the
// 10:00 bucket; beta 400 ms (10:00) and 30 ms (11:00); lone 20 ms. The
// store's percentiles are nearest-rank (rank ceil(p·n) of n sorted).
func TestSpendLatencyThroughTheStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, key, target string
		total             p
		groups            map[string]p
	}{
		{"no grouping: the total is one row", adminKey, "/admin/spend", p{200, 900, 900}, map[string]p{"": {200, 900, 900}}},
		{"by team", adminKey, "/admin/spend?group_by=team", p{},
			map[string]p{"alpha": {200, 900, 900}, "beta": {30, 400, 400}, "": {20, 20, 20}}},
		{"by team per hour: beta spans two buckets", adminKey, "/admin/spend?group_by=team&bucket=hour", p{},
			map[string]p{"alpha": {200, 900, 900}, "beta": {}, "": {20, 20, 20}}},
		{"team key sees its own calls only", betaKey, "/admin/spend?group_by=layer", p{30, 400, 400},
			map[string]p{"llm": {30, 400, 400}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r spendResponse
			f.getJSON(t, tc.target, tc.key, http.StatusOK, &r)
			if got := latencyOf(r.Total); got != tc.total {
				t.Errorf("total latency = %v, want %v", got, tc.total)
			}
			if len(r.Groups) != len(tc.groups) {
				t.Fatalf("groups = %+v, want %v", r.Groups, tc.groups)
			}
			for _, g := range r.Groups {
				if got := latencyOf(g.amount); got != tc.groups[g.Group] {
					t.Errorf("group %q latency = %v, want %v", g.Group, got, tc.groups[g.Group])
				}
			}
		})
	}
}
