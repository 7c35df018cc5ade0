package storage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/switchboard-gw/switchboard/trace"
)

func (s *clickHouseStore) Trace(ctx context.Context, id trace.TraceID) ([]TraceNode, error) {
	var first, last time.Time
	rows, err := s.conn.Query(ctx, `SELECT minMerge(start_min), maxMerge(start_max) FROM `+s.db+`.trace_index
		WHERE trace_id = unhex(?) GROUP BY trace_id`, id.String())
	if err != nil {
		return nil, fmt.Errorf("storage: trace: %w", err)
	}
	found := rows.Next()
	if found {
		err = rows.Scan(&first, &last)
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("storage: trace: %w", err)
	}
	if !found {
		return nil, ErrNotFound
	}
	rows, err = s.conn.Query(ctx, `SELECT `+chSpanColumns+` FROM `+s.db+`.spans
		WHERE start >= toDateTime(?) AND start <= toDateTime(?) AND trace_id = unhex(?)`, first.Unix(), last.Unix(), id.String())
	if err != nil {
		return nil, fmt.Errorf("storage: trace: %w", err)
	}
	defer rows.Close()
	return collectTrace(rows, scanClickHouseSpan)
}

func scanClickHouseSpan(rows driver.Rows) (trace.Span, error) {
	var sp trace.Span
	var start time.Time
	var startNs, durNs, ttftNs int64
	var tid, sid, pid []byte
	var layer, status string
	var httpStatus int32
	var keys, values []string
	err := rows.Scan(&start, &startNs, &tid, &sid, &pid, &layer, &sp.Name, &durNs, &status, &httpStatus, &sp.Error,
		&sp.KeyID, &sp.KeyName, &sp.Team, &sp.Org, &sp.Model, &sp.Provider, &sp.Deployment, &sp.ToolServer, &sp.Tool, &sp.Agent,
		&sp.InputTokens, &sp.OutputTokens, &sp.CachedTokens, &sp.CostNanoUSD, &sp.Retries, &sp.Fallbacks, &ttftNs, &keys, &values)
	if err != nil {
		return sp, err
	}
	copy(sp.TraceID[:], tid)
	copy(sp.SpanID[:], sid)
	copy(sp.ParentSpanID[:], pid)
	sp.Layer, sp.Status, sp.HTTPStatus = trace.Layer(layer), trace.Status(status), int(httpStatus)
	sp.Start, sp.Duration, sp.TTFT = time.Unix(0, startNs).UTC(), time.Duration(durNs), time.Duration(ttftNs)
	if len(keys) > 0 && len(keys) == len(values) {
		sp.Attrs = make([]trace.Attr, len(keys))
		for i := range keys {
			sp.Attrs[i] = trace.Attr{Key: keys[i], Value: values[i]}
		}
	}
	return sp, nil
}

// RecentTraces reads the trace_list_v2 rollup when it holds every trace that
// may match (see rollup.go) and spans otherwise. From the rollup a trace is
// listed by its first span and summarised whole; from spans only its spans
// in the range count. Both agree unless a trace crosses an end of the range.
func (s *clickHouseStore) RecentTraces(ctx context.Context, f TraceFilter) ([]TraceSummary, error) {
	if since := s.rollups.traces; since.IsZero() || !f.From.IsZero() && !f.From.Before(since) {
		return s.recentFromRollup(ctx, f)
	}
	query, args := s.traceSpansQuery(f)
	out, err := s.traceSummaries(ctx, query, args)
	if err != nil {
		return nil, fmt.Errorf("storage: recent traces: %w", err)
	}
	return out, nil
}

// traceWindows are how far back from the end of the range the rollup is
// searched before the whole range is: the newest traces usually fill the
// list from the last day alone.
var traceWindows = []time.Duration{24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}

// recentFromRollup asks trace_list_v2 for traces whose first span starts in a
// window at the end of the range, widening the window until the list is full
// or the window is the whole range. Since traces are listed newest first by
// their first span, a full list from a window is the list for the range.
func (s *clickHouseStore) recentFromRollup(ctx context.Context, f TraceFilter) ([]TraceSummary, error) {
	end := f.To
	if end.IsZero() {
		end = time.Now()
	}
	for i := 0; ; i++ {
		from := f.From
		if i < len(traceWindows) {
			if w := end.Add(-traceWindows[i]); w.After(f.From) {
				from = w
			}
		}
		query, args := s.traceListQuery(f, from)
		out, err := s.traceSummaries(ctx, query, args)
		if err == nil && !from.IsZero() {
			out, err = s.dropEarlierTraces(ctx, out, rowsFrom(from))
		}
		if err != nil {
			return nil, fmt.Errorf("storage: recent traces: %w", err)
		}
		if len(out) >= f.limit() || from.Equal(f.From) {
			return out, nil
		}
	}
}

// rowsFrom is the first day of trace_list_v2 rows read for traces starting at
// or after from: a day early, so every span of such a trace is in them.
func rowsFrom(from time.Time) time.Time {
	return from.UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
}

// dropEarlierTraces removes the traces that have spans before rows: they
// started long before the window and only looked recent in its rows.
// trace_index answers by its primary key.
func (s *clickHouseStore) dropEarlierTraces(ctx context.Context, list []TraceSummary, rows time.Time) ([]TraceSummary, error) {
	if len(list) == 0 {
		return list, nil
	}
	marks := make([]string, len(list))
	args := make([]any, 0, len(list)+1)
	for i, ts := range list {
		marks[i] = "unhex(?)"
		args = append(args, ts.TraceID.String())
	}
	args = append(args, rows.Unix())
	res, err := s.conn.Query(ctx, `SELECT hex(trace_id) FROM `+s.db+`.trace_index
		WHERE trace_id IN (`+strings.Join(marks, ", ")+`) GROUP BY trace_id HAVING minMerge(start_min) < toDateTime(?)`, args...)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	early := map[string]bool{}
	for res.Next() {
		var tid string
		if err := res.Scan(&tid); err != nil {
			return nil, err
		}
		early[strings.ToLower(tid)] = true
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list, func(ts TraceSummary) bool { return early[ts.TraceID.String()] }), nil
}

func (s *clickHouseStore) traceSummaries(ctx context.Context, query string, args []any) ([]TraceSummary, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TraceSummary
	for rows.Next() {
		var ts TraceSummary
		var tid, layer string
		var first, last int64
		var n, errs uint64
		if err := rows.Scan(&tid, &first, &last, &n, &errs, &ts.CostNanoUSD, &ts.InputTokens, &ts.OutputTokens,
			&ts.Name, &layer, &ts.Team, &ts.KeyID, &ts.KeyName); err != nil {
			return nil, err
		}
		if err := ts.TraceID.UnmarshalText([]byte(strings.ToLower(tid))); err != nil {
			return nil, err
		}
		ts.Spans, ts.Errors = int64(n), int64(errs)
		ts.Layer, ts.Start, ts.Duration = trace.Layer(layer), time.Unix(0, first).UTC(), time.Duration(last-first)
		ts.Status = traceStatus(ts.Errors)
		out = append(out, ts)
	}
	return out, rows.Err()
}

// traceSummaryColumns summarise a trace from its rows in spans or in
// trace_list_v2, which share these column names; traceSummaries scans them.
const traceSummaryColumns = `hex(trace_id), min(start_ns) AS first, max(start_ns + duration_ns), toUInt64(count()),
			toUInt64(countIf(status = 'error' AND ` + callCondition + `)), sum(cost_nano), sum(input_tokens), sum(output_tokens),
			argMin(name, start_ns), argMin(layer, start_ns), argMin(team, start_ns), argMin(key_id, start_ns), argMin(key_name, start_ns)`

// clickHouseCountIf is traceHaving's count of a trace's spans meeting cond.
func clickHouseCountIf(cond string) string { return "countIf(" + cond + ")" }

// traceListQuery lists traces whose first span starts in [from, f.To),
// reading only the trace_list_v2 rows since rowsFrom(from): a trace starting
// at or after from has all its rows there, so its summary is whole. The inner
// query picks the traces reading only the columns the filters need, the
// outer one summarises them. A trace longer than a day that started before
// those rows may look as if it started after from; dropEarlierTraces removes
// it. GLOBAL IN lets the same query run on a cluster's Distributed table,
// where a plain IN over another Distributed table is refused.
func (s *clickHouseStore) traceListQuery(f TraceFilter, from time.Time) (string, []any) {
	var w, h where
	if !from.IsZero() {
		w.add("day >= toDateTime(?)", rowsFrom(from).Unix())
		h.add("first >= ?", from.UnixNano())
	}
	if !f.To.IsZero() {
		h.add("first < ?", f.To.UnixNano())
	}
	traceHaving(&h, f, clickHouseCountIf, callCondition)
	limit := fmt.Sprint(f.limit())
	outer := where{conds: slices.Clone(w.conds), args: slices.Clone(w.args)}
	outer.add(`trace_id GLOBAL IN (SELECT trace_id FROM (
			SELECT trace_id, min(start_ns) AS first FROM `+s.db+`.trace_list_v2`+w.sql()+`
			GROUP BY trace_id`+h.clause("HAVING")+` ORDER BY first DESC, trace_id LIMIT `+limit+`))`, append(w.args, h.args...)...)
	return `SELECT ` + traceSummaryColumns + `
		FROM ` + s.db + `.trace_list_v2` + outer.sql() + `
		GROUP BY trace_id ORDER BY first DESC, trace_id LIMIT ` + limit, outer.args
}

// traceSpansQuery summarises the spans in the range trace by trace.
func (s *clickHouseStore) traceSpansQuery(f TraceFilter) (string, []any) {
	var w, h where
	spanRange(&w, f.From, f.To)
	traceHaving(&h, f, clickHouseCountIf, callCondition)
	return `SELECT ` + traceSummaryColumns + `
		FROM ` + s.db + `.spans` + w.sql() + ` GROUP BY trace_id` + h.clause("HAVING") + `
		ORDER BY first DESC, trace_id LIMIT ` + fmt.Sprint(f.limit()), append(append([]any{}, w.args...), h.args...)
}
