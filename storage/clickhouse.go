package storage

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/switchboard-gw/switchboard/trace"
)

type clickHouseStore struct {
	conn driver.Conn
	db   string // quoted
	log  *slog.Logger

	versionMu   sync.Mutex
	lastVersion int64
}

func openClickHouse(ctx context.Context, cfg ClickHouseConfig, log *slog.Logger) (*clickHouseStore, error) {
	cfg = cfg.withDefaults()
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr: cfg.addrs(),
		// Tables are always named with their database, which may not exist
		// before the first migration.
		Auth:         clickhouse.Auth{Database: "default", Username: cfg.Username, Password: cfg.Password},
		DialTimeout:  cfg.DialTimeout,
		ReadTimeout:  cfg.ReadTimeout,
		MaxOpenConns: cfg.MaxOpenConns,
		MaxIdleConns: min(cfg.MaxOpenConns, 5),
		Compression:  &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		ClientInfo:   clickhouse.ClientInfo{Products: []struct{ Name, Version string }{{Name: "switchboard", Version: "1"}}},
	})
	if err != nil {
		return nil, fmt.Errorf("storage: clickhouse: %w", err)
	}
	s := &clickHouseStore{conn: conn, db: "`" + cfg.Database + "`", log: log}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("storage: clickhouse %s: %w", cfg.Addr, err)
	}
	for _, stmt := range schemaFor(cfg.Database) {
		if err := conn.Exec(ctx, stmt); err != nil {
			conn.Close()
			return nil, fmt.Errorf("storage: clickhouse migration: %w", err)
		}
	}
	return s, nil
}

func (s *clickHouseStore) Ping(ctx context.Context) error { return s.conn.Ping(ctx) }

func (s *clickHouseStore) Close() error { return s.conn.Close() }

const chSpanColumns = `start, start_ns, trace_id, span_id, parent_span_id, layer, name, duration_ns, status, http_status, error,
	key_id, key_name, team, org, model, provider, deployment, tool_server, tool, agent,
	input_tokens, output_tokens, cached_tokens, cost_nano, retries, fallbacks, ttft_ns, attr_keys, attr_values`

func (s *clickHouseStore) WriteSpans(ctx context.Context, spans []trace.Span) error {
	if len(spans) == 0 {
		return nil
	}
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+s.db+`.spans (`+chSpanColumns+`)`)
	if err != nil {
		return fmt.Errorf("storage: write spans: %w", err)
	}
	defer batch.Abort()
	for i := range spans {
		sp := &spans[i]
		keys, values := make([]string, len(sp.Attrs)), make([]string, len(sp.Attrs))
		for j, a := range sp.Attrs {
			keys[j], values[j] = a.Key, a.Value
		}
		if err := batch.Append(sp.Start, sp.Start.UnixNano(), sp.TraceID[:], sp.SpanID[:], sp.ParentSpanID[:],
			string(sp.Layer), sp.Name, int64(sp.Duration), string(sp.Status), int32(sp.HTTPStatus), sp.Error,
			sp.KeyID, sp.KeyName, sp.Team, sp.Org, sp.Model, sp.Provider, sp.Deployment, sp.ToolServer, sp.Tool, sp.Agent,
			sp.InputTokens, sp.OutputTokens, sp.CachedTokens, sp.CostNanoUSD, sp.Retries, sp.Fallbacks, int64(sp.TTFT),
			keys, values); err != nil {
			return fmt.Errorf("storage: write spans: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("storage: write spans: %w", err)
	}
	return nil
}

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

// Spend answers whole UTC days from spend_daily and the partial days at
// either end of the range from spans, then merges the pieces.
func (s *clickHouseStore) Spend(ctx context.Context, q SpendQuery) ([]SpendRow, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	group := "''"
	if col, ok := groupColumns[q.GroupBy]; ok {
		group = col
	}
	var out []SpendRow
	run := func(table, bucket string, w where) error {
		if q.Team != "" {
			w.add("team = ?", q.Team)
		}
		if q.KeyID != "" {
			w.add("key_id = ?", q.KeyID)
		}
		var query string
		if table == "spans" {
			query = `SELECT ` + bucket + ` AS b, ` + group + ` AS g, sum(cost_nano), toUInt64(count()), toUInt64(countIf(status = 'error')),
				sum(input_tokens), sum(output_tokens), sum(cached_tokens) FROM ` + s.db + `.spans` + w.sql() + ` GROUP BY b, g`
		} else {
			query = `SELECT ` + bucket + ` AS b, ` + group + ` AS g, sum(cost_nano), sum(requests), sum(errors),
				sum(input_tokens), sum(output_tokens), sum(cached_tokens) FROM ` + s.db + `.spend_daily` + w.sql() + ` GROUP BY b, g`
		}
		rows, err := s.conn.Query(ctx, query, w.args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r SpendRow
			var b, reqs, errs uint64
			if err := rows.Scan(&b, &r.Group, &r.CostNanoUSD, &reqs, &errs, &r.InputTokens, &r.OutputTokens, &r.CachedTokens); err != nil {
				return err
			}
			if reqs == 0 {
				// GROUP BY on constant keys answers an empty range with one
				// zero row; a real group always has a span.
				continue
			}
			r.Bucket, r.Requests, r.Errors = bucketTime(q, int64(b)), int64(reqs), int64(errs)
			out = append(out, r)
		}
		return rows.Err()
	}
	rawBucket, dayBucket := "toUInt64(0)", "toUInt64(0)"
	if n := q.bucketSeconds(); n > 0 {
		rawBucket = fmt.Sprintf("toUInt64(intDiv(toUInt32(start), %d) * %d)", n, n)
		dayBucket = "toUInt64(toUInt32(day))"
	}
	pieces := splitDays(q.From, q.To)
	if q.Bucket == BucketHour {
		pieces = []piece{{from: q.From, to: q.To}}
	}
	for _, p := range pieces {
		var w where
		var err error
		if p.daily {
			if !p.from.IsZero() {
				w.add("day >= toDateTime(?)", p.from.Unix())
			}
			if !p.to.IsZero() {
				w.add("day < toDateTime(?)", p.to.Unix())
			}
			err = run("spend_daily", dayBucket, w)
		} else {
			spanRange(&w, p.from, p.to)
			err = run("spans", rawBucket, w)
		}
		if err != nil {
			return nil, fmt.Errorf("storage: spend: %w", err)
		}
	}
	return finishSpend(out), nil
}

// piece is part of a time range; daily pieces start and end on UTC midnights
// (or are open).
type piece struct {
	from, to time.Time
	daily    bool
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

func (s *clickHouseStore) RecentTraces(ctx context.Context, f TraceFilter) ([]TraceSummary, error) {
	var w where
	spanRange(&w, f.From, f.To)
	havingSQL, havingArgs := traceHaving(f, func(cond string) string { return "countIf(" + cond + ")" })
	args := append(append([]any{}, w.args...), havingArgs...)
	rows, err := s.conn.Query(ctx, `SELECT hex(trace_id), min(start_ns) AS first, max(start_ns + duration_ns), toUInt64(count()),
			toUInt64(countIf(status = 'error')), sum(cost_nano), sum(input_tokens), sum(output_tokens),
			argMin(name, start_ns), argMin(layer, start_ns), argMin(team, start_ns), argMin(key_id, start_ns), argMin(key_name, start_ns)
		FROM `+s.db+`.spans`+w.sql()+` GROUP BY trace_id`+havingSQL+`
		ORDER BY first DESC, trace_id LIMIT `+fmt.Sprint(f.limit()), args...)
	if err != nil {
		return nil, fmt.Errorf("storage: recent traces: %w", err)
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
			return nil, fmt.Errorf("storage: recent traces: %w", err)
		}
		if err := ts.TraceID.UnmarshalText([]byte(strings.ToLower(tid))); err != nil {
			return nil, fmt.Errorf("storage: recent traces: %w", err)
		}
		ts.Spans, ts.Errors = int64(n), int64(errs)
		ts.Layer, ts.Start, ts.Duration = trace.Layer(layer), time.Unix(0, first).UTC(), time.Duration(last-first)
		ts.Status = traceStatus(ts.Errors)
		out = append(out, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: recent traces: %w", err)
	}
	return out, nil
}

// nextVersion orders writes of this process even within one clock tick.
func (s *clickHouseStore) nextVersion() int64 {
	s.versionMu.Lock()
	defer s.versionMu.Unlock()
	v := max(time.Now().UnixNano(), s.lastVersion+1)
	s.lastVersion = v
	return v
}

func (s *clickHouseStore) putRecord(ctx context.Context, kind, id string, data []byte, deleted uint8) error {
	batch, err := s.conn.PrepareBatch(ctx, `INSERT INTO `+s.db+`.records (kind, id, data, deleted, version)`)
	if err != nil {
		return err
	}
	defer batch.Abort()
	if err := batch.Append(kind, id, string(data), deleted, s.nextVersion()); err != nil {
		return err
	}
	return batch.Send()
}

func (s *clickHouseStore) PutRecord(ctx context.Context, kind, id string, data []byte) error {
	if err := s.putRecord(ctx, kind, id, data, 0); err != nil {
		return fmt.Errorf("storage: put record: %w", err)
	}
	return nil
}

func (s *clickHouseStore) DeleteRecord(ctx context.Context, kind, id string) error {
	if err := s.putRecord(ctx, kind, id, nil, 1); err != nil {
		return fmt.Errorf("storage: delete record: %w", err)
	}
	return nil
}

func (s *clickHouseStore) ListRecords(ctx context.Context, kind string) ([]Record, error) {
	rows, err := s.conn.Query(ctx, `SELECT id, argMax(data, version), argMax(deleted, version), max(version)
		FROM `+s.db+`.records WHERE kind = ? GROUP BY id ORDER BY id`, kind)
	if err != nil {
		return nil, fmt.Errorf("storage: list records: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var id, data string
		var deleted uint8
		var version int64
		if err := rows.Scan(&id, &data, &deleted, &version); err != nil {
			return nil, fmt.Errorf("storage: list records: %w", err)
		}
		if deleted == 0 {
			out = append(out, Record{Kind: kind, ID: id, Data: []byte(data), UpdatedAt: time.Unix(0, version).UTC()})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list records: %w", err)
	}
	return out, nil
}
