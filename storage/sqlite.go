package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-gw/switchboard/trace"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// sqliteSchema has the same meaning as the ClickHouse one: one row per span,
// cost as exact integer nano-USD, times as unix nanoseconds.
var sqliteSchema = []string{
	`CREATE TABLE IF NOT EXISTS spans (
		trace_id BLOB NOT NULL, span_id BLOB NOT NULL, parent_span_id BLOB NOT NULL,
		layer TEXT NOT NULL, name TEXT NOT NULL,
		start_ns INTEGER NOT NULL, duration_ns INTEGER NOT NULL,
		status TEXT NOT NULL, http_status INTEGER NOT NULL, error TEXT NOT NULL,
		key_id TEXT NOT NULL, key_name TEXT NOT NULL, team TEXT NOT NULL, org TEXT NOT NULL,
		model TEXT NOT NULL, provider TEXT NOT NULL, deployment TEXT NOT NULL,
		tool_server TEXT NOT NULL, tool TEXT NOT NULL, agent TEXT NOT NULL,
		input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL,
		cost_nano INTEGER NOT NULL, retries INTEGER NOT NULL, fallbacks INTEGER NOT NULL,
		ttft_ns INTEGER NOT NULL, attrs TEXT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id)`,
	`CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns)`,
	`CREATE INDEX IF NOT EXISTS spans_team ON spans (team, start_ns)`,
	`CREATE INDEX IF NOT EXISTS spans_key ON spans (key_id, start_ns)`,
	`CREATE TABLE IF NOT EXISTS records (
		kind TEXT NOT NULL, id TEXT NOT NULL, data BLOB NOT NULL, updated_ns INTEGER NOT NULL,
		PRIMARY KEY (kind, id))`,
	`CREATE TABLE IF NOT EXISTS audit (
		time_ns INTEGER NOT NULL, actor TEXT NOT NULL, actor_name TEXT NOT NULL, team TEXT NOT NULL,
		action TEXT NOT NULL, target TEXT NOT NULL, rule TEXT NOT NULL, status TEXT NOT NULL,
		remote_addr TEXT NOT NULL, request_id TEXT NOT NULL, detail TEXT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS audit_time ON audit (time_ns)`,
	`CREATE INDEX IF NOT EXISTS audit_team ON audit (team, time_ns)`,
}

const spanColumns = `trace_id, span_id, parent_span_id, layer, name, start_ns, duration_ns, status, http_status, error,
	key_id, key_name, team, org, model, provider, deployment, tool_server, tool, agent,
	input_tokens, output_tokens, cached_tokens, cost_nano, retries, fallbacks, ttft_ns, attrs`

type sqliteStore struct {
	db  *sql.DB
	log *slog.Logger
}

func openSQLite(ctx context.Context, cfg SQLiteConfig, log *slog.Logger) (*sqliteStore, error) {
	path := cfg.Path
	if path == "" {
		path = DefaultSQLitePath
	}
	memory := path == ":memory:"
	if !memory {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("storage: sqlite dir: %w", err)
		}
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(off)", "journal_mode(WAL)", "synchronous(NORMAL)"} {
		if memory && strings.HasPrefix(p, "journal_mode") {
			continue
		}
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("storage: sqlite: %w", err)
	}
	if memory {
		// Every connection to ":memory:" is a separate database.
		db.SetMaxOpenConns(1)
	} else {
		db.SetMaxOpenConns(4)
	}
	s := &sqliteStore{db: db, log: log}
	for _, stmt := range sqliteSchema {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			db.Close()
			return nil, fmt.Errorf("storage: sqlite migration: %w", err)
		}
	}
	return s, nil
}

func (s *sqliteStore) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *sqliteStore) Close() error { return s.db.Close() }

// WriteSpans writes a batch in one transaction.
func (s *sqliteStore) WriteSpans(ctx context.Context, batch ...[]trace.Span) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: write spans: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO spans (`+spanColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("storage: write spans: %w", err)
	}
	defer stmt.Close()
	for _, spans := range batch {
		for i := range spans {
			sp := &spans[i]
			attrs, err := json.Marshal(sp.Attrs)
			if err != nil {
				return fmt.Errorf("storage: write spans: %w", err)
			}
			if _, err := stmt.ExecContext(ctx, sp.TraceID[:], sp.SpanID[:], sp.ParentSpanID[:], string(sp.Layer), sp.Name,
				sp.Start.UnixNano(), int64(sp.Duration), string(sp.Status), sp.HTTPStatus, sp.Error,
				sp.KeyID, sp.KeyName, sp.Team, sp.Org, sp.Model, sp.Provider, sp.Deployment, sp.ToolServer, sp.Tool, sp.Agent,
				sp.InputTokens, sp.OutputTokens, sp.CachedTokens, sp.CostNanoUSD, sp.Retries, sp.Fallbacks, int64(sp.TTFT), string(attrs)); err != nil {
				return fmt.Errorf("storage: write spans: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: write spans: %w", err)
	}
	return nil
}

func (w *where) timeRange(from, to time.Time) {
	if !from.IsZero() {
		w.add("start_ns >= ?", from.UnixNano())
	}
	if !to.IsZero() {
		w.add("start_ns < ?", to.UnixNano())
	}
}

// sqliteCall is callCondition in SQLite's words.
const sqliteCall = "NOT (layer = 'llm' AND substr(name, 1, 8) = 'attempt ')"

func (s *sqliteStore) Spend(ctx context.Context, q SpendQuery) ([]SpendRow, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	bucket := "0"
	if n := q.bucketSeconds(); n > 0 {
		bucket = fmt.Sprintf("(start_ns / %d) * %d", n*1e9, n)
	}
	group := "''"
	if col, ok := groupColumns[q.GroupBy]; ok {
		group = col
	}
	var w where
	w.timeRange(q.From, q.To)
	if q.Team != "" {
		w.add("team = ?", q.Team)
	}
	if q.KeyID != "" {
		w.add("key_id = ?", q.KeyID)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+bucket+` AS b, `+group+` AS g, SUM(cost_nano), SUM(`+sqliteCall+`),
		SUM(status = 'error' AND `+sqliteCall+`), SUM(input_tokens), SUM(output_tokens), SUM(cached_tokens)
		FROM spans`+w.sql()+` GROUP BY b, g`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("storage: spend: %w", err)
	}
	defer rows.Close()
	var out []SpendRow
	at := map[spendKey]int{}
	for rows.Next() {
		var r SpendRow
		var b int64
		if err := rows.Scan(&b, &r.Group, &r.CostNanoUSD, &r.Requests, &r.Errors, &r.InputTokens, &r.OutputTokens, &r.CachedTokens); err != nil {
			return nil, fmt.Errorf("storage: spend: %w", err)
		}
		r.Bucket = bucketTime(q, b)
		at[spendKey{b, r.Group}] = len(out)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: spend: %w", err)
	}
	if err := s.latencies(ctx, bucket, group, w, out, at); err != nil {
		return nil, fmt.Errorf("storage: spend: %w", err)
	}
	return finishSpend(out), nil
}

type spendKey struct {
	bucket int64
	group  string
}

// latencies fills in the nearest-rank percentiles (the value at rank
// ceil(p*n) of the n sorted call durations) of the rows at indexes at.
func (s *sqliteStore) latencies(ctx context.Context, bucket, group string, w where, out []SpendRow, at map[spendKey]int) error {
	w = where{conds: slices.Clone(w.conds), args: slices.Clone(w.args)}
	w.add(sqliteCall)
	rank := func(pct int) string {
		return fmt.Sprintf("MAX(CASE WHEN rn = (cnt * %d + 99) / 100 THEN duration_ns END)", pct)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT b, g, `+rank(50)+`, `+rank(95)+`, `+rank(99)+`
		FROM (SELECT b, g, duration_ns, ROW_NUMBER() OVER (PARTITION BY b, g ORDER BY duration_ns) AS rn,
				COUNT(*) OVER (PARTITION BY b, g) AS cnt
			FROM (SELECT `+bucket+` AS b, `+group+` AS g, duration_ns FROM spans`+w.sql()+`))
		GROUP BY b, g`, w.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k spendKey
		var p50, p95, p99 int64
		if err := rows.Scan(&k.bucket, &k.group, &p50, &p95, &p99); err != nil {
			return err
		}
		if i, ok := at[k]; ok {
			out[i].LatencyP50, out[i].LatencyP95, out[i].LatencyP99 = time.Duration(p50), time.Duration(p95), time.Duration(p99)
		}
	}
	return rows.Err()
}

func (s *sqliteStore) SpendSince(ctx context.Context, scope Scope, id string, since time.Time) (int64, error) {
	col, err := checkScope(scope)
	if err != nil {
		return 0, err
	}
	var total int64
	err = s.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(cost_nano), 0) FROM spans WHERE `+col+` = ? AND start_ns >= ?`,
		id, since.UnixNano()).Scan(&total)
	if err != nil {
		return 0, fmt.Errorf("storage: spend since: %w", err)
	}
	return total, nil
}

func (s *sqliteStore) Trace(ctx context.Context, id trace.TraceID) ([]TraceNode, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+spanColumns+` FROM spans WHERE trace_id = ?`, id[:])
	if err != nil {
		return nil, fmt.Errorf("storage: trace: %w", err)
	}
	defer rows.Close()
	return collectTrace(rows, scanSQLiteSpan)
}

func scanSQLiteSpan(rows *sql.Rows) (trace.Span, error) {
	var sp trace.Span
	var tid, sid, pid []byte
	var layer, status, attrs string
	var startNs, durNs, ttftNs int64
	err := rows.Scan(&tid, &sid, &pid, &layer, &sp.Name, &startNs, &durNs, &status, &sp.HTTPStatus, &sp.Error,
		&sp.KeyID, &sp.KeyName, &sp.Team, &sp.Org, &sp.Model, &sp.Provider, &sp.Deployment, &sp.ToolServer, &sp.Tool, &sp.Agent,
		&sp.InputTokens, &sp.OutputTokens, &sp.CachedTokens, &sp.CostNanoUSD, &sp.Retries, &sp.Fallbacks, &ttftNs, &attrs)
	if err != nil {
		return sp, err
	}
	if len(tid) != 16 || len(sid) != 8 || len(pid) != 8 {
		return sp, errors.New("malformed span id in database")
	}
	copy(sp.TraceID[:], tid)
	copy(sp.SpanID[:], sid)
	copy(sp.ParentSpanID[:], pid)
	sp.Layer, sp.Status = trace.Layer(layer), trace.Status(status)
	sp.Start, sp.Duration, sp.TTFT = time.Unix(0, startNs).UTC(), time.Duration(durNs), time.Duration(ttftNs)
	if err := json.Unmarshal([]byte(attrs), &sp.Attrs); err != nil {
		return sp, fmt.Errorf("span attrs: %w", err)
	}
	if len(sp.Attrs) == 0 {
		sp.Attrs = nil
	}
	return sp, nil
}

func (s *sqliteStore) RecentTraces(ctx context.Context, f TraceFilter) ([]TraceSummary, error) {
	var w where
	w.timeRange(f.From, f.To)
	var h where
	traceHaving(&h, f, func(cond string) string { return "SUM(" + cond + ")" }, sqliteCall)
	havingSQL := h.clause("HAVING")
	args := append(append([]any{}, w.args...), h.args...)
	rows, err := s.db.QueryContext(ctx, `SELECT g.trace_id, g.first, g.last, g.n, g.errs, g.cost, g.inp, g.outp,
			e.name, e.layer, e.team, e.key_id, e.key_name
		FROM (SELECT trace_id, MIN(start_ns) AS first, MAX(start_ns + duration_ns) AS last, COUNT(*) AS n,
				SUM(status = 'error' AND `+sqliteCall+`) AS errs, SUM(cost_nano) AS cost, SUM(input_tokens) AS inp, SUM(output_tokens) AS outp
			FROM spans`+w.sql()+` GROUP BY trace_id`+havingSQL+`
			ORDER BY first DESC, trace_id LIMIT ?) AS g
		JOIN spans AS e ON e.rowid = (SELECT rowid FROM spans WHERE trace_id = g.trace_id AND start_ns = g.first LIMIT 1)
		ORDER BY g.first DESC, g.trace_id`, append(args, f.limit())...)
	if err != nil {
		return nil, fmt.Errorf("storage: recent traces: %w", err)
	}
	defer rows.Close()
	var out []TraceSummary
	for rows.Next() {
		var ts TraceSummary
		var tid []byte
		var first, last int64
		var layer string
		if err := rows.Scan(&tid, &first, &last, &ts.Spans, &ts.Errors, &ts.CostNanoUSD, &ts.InputTokens, &ts.OutputTokens,
			&ts.Name, &layer, &ts.Team, &ts.KeyID, &ts.KeyName); err != nil {
			return nil, fmt.Errorf("storage: recent traces: %w", err)
		}
		copy(ts.TraceID[:], tid)
		ts.Layer, ts.Start, ts.Duration = trace.Layer(layer), time.Unix(0, first).UTC(), time.Duration(last-first)
		ts.Status = traceStatus(ts.Errors)
		out = append(out, ts)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: recent traces: %w", err)
	}
	return out, nil
}

func (s *sqliteStore) PutRecord(ctx context.Context, kind, id string, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO records (kind, id, data, updated_ns) VALUES (?, ?, ?, ?)
		ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data, updated_ns = excluded.updated_ns`,
		kind, id, data, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("storage: put record: %w", err)
	}
	return nil
}

func (s *sqliteStore) DeleteRecord(ctx context.Context, kind, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM records WHERE kind = ? AND id = ?`, kind, id); err != nil {
		return fmt.Errorf("storage: delete record: %w", err)
	}
	return nil
}

func (s *sqliteStore) ListRecords(ctx context.Context, kind string) ([]Record, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, data, updated_ns FROM records WHERE kind = ? ORDER BY id`, kind)
	if err != nil {
		return nil, fmt.Errorf("storage: list records: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r := Record{Kind: kind}
		var ns int64
		if err := rows.Scan(&r.ID, &r.Data, &ns); err != nil {
			return nil, fmt.Errorf("storage: list records: %w", err)
		}
		r.UpdatedAt = time.Unix(0, ns).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list records: %w", err)
	}
	return out, nil
}
