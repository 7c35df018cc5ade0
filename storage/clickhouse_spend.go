package storage

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// spanRange adds conditions for spans starting in [from, to): the DateTime
// test lets ClickHouse skip parts by the sort key, the start_ns test is exact.
func spanRange(w *where, from, to time.Time) {
	if !from.IsZero() {
		w.add("start >= toDateTime(?) AND start_ns >= ?", from.Unix(), from.UnixNano())
	}
	if !to.IsZero() {
		w.add("start <= toDateTime(?) AND start_ns < ?", to.Unix(), to.UnixNano())
	}
}

// Spend answers whole UTC days the spend rollup holds from spend_daily_v2
// and the rest of the range from spans, in one query: both sides yield sums
// and latency histograms, which the outer query adds up per bucket and group.
func (s *clickHouseStore) Spend(ctx context.Context, q SpendQuery) ([]SpendRow, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	group := "''"
	if col, ok := groupColumns[q.GroupBy]; ok {
		group = col
	}
	rawBucket, dayBucket := "toUInt64(0)", "toUInt64(0)"
	if n := q.bucketSeconds(); n > 0 {
		rawBucket = fmt.Sprintf("toUInt64(intDiv(toUInt32(start), %d) * %d)", n, n)
		dayBucket = "toUInt64(toUInt32(day))"
	}
	var parts []string
	var args []any
	for _, p := range spendPieces(q, s.rollups.spend) {
		var w where
		if p.daily {
			if !p.from.IsZero() {
				w.add("day >= toDateTime(?)", p.from.Unix())
			}
			if !p.to.IsZero() {
				w.add("day < toDateTime(?)", p.to.Unix())
			}
		} else {
			spanRange(&w, p.from, p.to)
		}
		if q.Team != "" {
			w.add("team = ?", q.Team)
		}
		if q.KeyID != "" {
			w.add("key_id = ?", q.KeyID)
		}
		if p.daily {
			parts = append(parts, `SELECT `+dayBucket+` AS b, `+group+` AS g, spans AS n, cost_nano AS cost, requests AS req,
				errors AS errs, input_tokens AS inp, output_tokens AS outp, cached_tokens AS cached,
				latencyMap.bucket AS lb, latencyMap.calls AS lc
				FROM `+s.db+`.spend_daily_v2`+w.sql())
		} else {
			parts = append(parts, `SELECT `+rawBucket+` AS b, `+group+` AS g, count() AS n, sum(cost_nano) AS cost,
				countIf(`+callCondition+`) AS req, countIf(status = 'error' AND `+callCondition+`) AS errs,
				sum(input_tokens) AS inp, sum(output_tokens) AS outp, sum(cached_tokens) AS cached,
				tupleElement(`+latencyHistogram+`, 1) AS lb, tupleElement(`+latencyHistogram+`, 2) AS lc
				FROM `+s.db+`.spans`+w.sql()+` GROUP BY b, g`)
		}
		args = append(args, w.args...)
	}
	rows, err := s.conn.Query(ctx, `SELECT b, g, sum(n), sum(cost), sum(req), sum(errs), sum(inp), sum(outp), sum(cached),
			tupleElement(sumMap(lb, lc), 1), tupleElement(sumMap(lb, lc), 2)
		FROM (`+strings.Join(parts, "\n\t\tUNION ALL\n\t\t")+`) GROUP BY b, g`, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: spend: %w", err)
	}
	defer rows.Close()
	var out []SpendRow
	for rows.Next() {
		var r SpendRow
		var b, n, reqs, errs uint64
		var buckets []uint16
		var calls []uint64
		if err := rows.Scan(&b, &r.Group, &n, &r.CostNanoUSD, &reqs, &errs, &r.InputTokens, &r.OutputTokens, &r.CachedTokens, &buckets, &calls); err != nil {
			return nil, fmt.Errorf("storage: spend: %w", err)
		}
		if n == 0 {
			// GROUP BY on constant keys answers an empty range with one
			// zero row; a real group always has a span.
			continue
		}
		r.Bucket, r.Requests, r.Errors = bucketTime(q, int64(b)), int64(reqs), int64(errs)
		r.LatencyP50, r.LatencyP95, r.LatencyP99 = histogramPercentiles(buckets, calls)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: spend: %w", err)
	}
	return finishSpend(out), nil
}

// piece is part of a time range; daily pieces start and end on UTC midnights
// (or are open).
type piece struct {
	from, to time.Time
	daily    bool
}

// spendPieces cuts q's range into pieces read from spans and whole days read
// from the rollup, which is complete from the first midnight after since.
// Hourly buckets always read spans.
func spendPieces(q SpendQuery, since time.Time) []piece {
	if q.Bucket == BucketHour {
		return []piece{{from: q.From, to: q.To}}
	}
	pieces := splitDays(q.From, q.To)
	cut := nextMidnight(since)
	if cut.IsZero() {
		return pieces
	}
	var out []piece
	for _, p := range pieces {
		switch {
		case !p.daily || !p.from.IsZero() && !p.from.Before(cut):
			out = append(out, p)
		case !p.to.IsZero() && !p.to.After(cut):
			out = append(out, piece{from: p.from, to: p.to})
		default:
			out = append(out, piece{from: p.from, to: cut}, piece{from: cut, to: p.to, daily: true})
		}
	}
	return out
}

// splitDays cuts [from, to) into a partial first day, whole days, and a
// partial last day; empty pieces are left out.
func splitDays(from, to time.Time) []piece {
	const day = 24 * time.Hour
	start := from
	if !from.IsZero() {
		if start = from.UTC().Truncate(day); start.Before(from) {
			start = start.Add(day)
		}
	}
	end := to
	if !to.IsZero() {
		end = to.UTC().Truncate(day)
	}
	if !start.IsZero() && !end.IsZero() && !start.Before(end) {
		return []piece{{from: from, to: to}}
	}
	var out []piece
	if !from.IsZero() && start.After(from) {
		out = append(out, piece{from: from, to: start})
	}
	out = append(out, piece{from: start, to: end, daily: true})
	if !to.IsZero() && to.After(end) {
		out = append(out, piece{from: end, to: to})
	}
	return out
}

func (s *clickHouseStore) SpendSince(ctx context.Context, scope Scope, id string, since time.Time) (int64, error) {
	col, err := checkScope(scope)
	if err != nil {
		return 0, err
	}
	q := SpendQuery{From: since}
	if col == "team" {
		q.Team = id
	} else {
		q.KeyID = id
	}
	rows, err := s.Spend(ctx, q)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, r := range rows {
		total += r.CostNanoUSD
	}
	return total, nil
}
