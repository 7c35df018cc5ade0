package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// AuditEvent is one entry of the audit log: who did what to what, and
// whether it was allowed. It never holds a secret.
type AuditEvent struct {
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor"` // key id, or "admin"
	ActorName  string    `json:"actor_name,omitempty"`
	Team       string    `json:"team,omitempty"`
	Action     string    `json:"action"` // key.create, key.disable, team.update, config.reload, request.denied, ...
	Target     string    `json:"target,omitempty"`
	Rule       string    `json:"rule,omitempty"`
	Status     string    `json:"status"` // ok or denied
	RemoteAddr string    `json:"remote_addr,omitempty"`
	RequestID  string    `json:"request_id,omitempty"`
	Detail     string    `json:"detail,omitempty"`
}

// AuditQuery selects audit events in [From, To) (a zero end is open); empty
// Actor, Team and Action do not filter. Team is how a team-scoped reader is
// kept to its own team's events.
type AuditQuery struct {
	From, To time.Time
	Actor    string
	Team     string
	Action   string
	Limit    int // default 100, at most 1000
}

// Limits of Audit.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// Validate rejects reversed ranges and negative limits.
func (q AuditQuery) Validate() error {
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return errors.New("storage: audit range ends before it starts")
	}
	if q.Limit < 0 {
		return errors.New("storage: audit limit must not be negative")
	}
	return nil
}

func (q AuditQuery) limit() int {
	if q.Limit == 0 {
		return DefaultAuditLimit
	}
	return min(q.Limit, MaxAuditLimit)
}

// filters adds the equality filters both stores share; the column names are
// constants, the values bound parameters.
func (q AuditQuery) filters(w *where) {
	if q.Actor != "" {
		w.add("actor = ?", q.Actor)
	}
	if q.Team != "" {
		w.add("team = ?", q.Team)
	}
	if q.Action != "" {
		w.add("action = ?", q.Action)
	}
}

const auditColumns = `actor, actor_name, team, action, target, rule, status, remote_addr, request_id, detail`

func (s *clickHouseStore) AppendAudit(ctx context.Context, events []AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	err := insert(ctx, s.conn, `INSERT INTO `+s.db+`.audit (time, time_ns, `+auditColumns+`)`, func(b driver.Batch) error {
		for _, e := range events {
			if err := b.Append(e.Time, e.Time.UnixNano(), e.Actor, e.ActorName, e.Team, e.Action, e.Target, e.Rule,
				e.Status, e.RemoteAddr, e.RequestID, e.Detail); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: append audit: %w", err)
	}
	return nil
}

func (s *clickHouseStore) Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	var w where
	if !q.From.IsZero() {
		w.add("time >= toDateTime(?) AND time_ns >= ?", q.From.Unix(), q.From.UnixNano())
	}
	if !q.To.IsZero() {
		w.add("time <= toDateTime(?) AND time_ns < ?", q.To.Unix(), q.To.UnixNano())
	}
	q.filters(&w)
	rows, err := s.conn.Query(ctx, `SELECT time_ns, `+auditColumns+` FROM `+s.db+`.audit`+w.sql()+`
		ORDER BY time DESC, time_ns DESC LIMIT `+fmt.Sprint(q.limit()), w.args...)
	if err != nil {
		return nil, fmt.Errorf("storage: audit: %w", err)
	}
	defer rows.Close()
	return scanAudit(rows)
}

func (s *sqliteStore) AppendAudit(ctx context.Context, events []AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: append audit: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit (time_ns, `+auditColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("storage: append audit: %w", err)
	}
	defer stmt.Close()
	for _, e := range events {
		if _, err := stmt.ExecContext(ctx, e.Time.UnixNano(), e.Actor, e.ActorName, e.Team, e.Action, e.Target, e.Rule,
			e.Status, e.RemoteAddr, e.RequestID, e.Detail); err != nil {
			return fmt.Errorf("storage: append audit: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: append audit: %w", err)
	}
	return nil
}

func (s *sqliteStore) Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	var w where
	if !q.From.IsZero() {
		w.add("time_ns >= ?", q.From.UnixNano())
	}
	if !q.To.IsZero() {
		w.add("time_ns < ?", q.To.UnixNano())
	}
	q.filters(&w)
	rows, err := s.db.QueryContext(ctx, `SELECT time_ns, `+auditColumns+` FROM audit`+w.sql()+`
		ORDER BY time_ns DESC, rowid DESC LIMIT ?`, append(w.args, q.limit())...)
	if err != nil {
		return nil, fmt.Errorf("storage: audit: %w", err)
	}
	defer rows.Close()
	return scanAudit(rows)
}

// auditRows is what both stores' query results offer for reading audit rows.
type auditRows interface {
	spanRows
	Scan(dest ...any) error
}

// scanAudit reads rows selected as `time_ns, ` + auditColumns.
func scanAudit(rows auditRows) ([]AuditEvent, error) {
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var ns int64
		if err := rows.Scan(&ns, &e.Actor, &e.ActorName, &e.Team, &e.Action, &e.Target, &e.Rule, &e.Status,
			&e.RemoteAddr, &e.RequestID, &e.Detail); err != nil {
			return nil, fmt.Errorf("storage: audit: %w", err)
		}
		e.Time = time.Unix(0, ns).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: audit: %w", err)
	}
	return out, nil
}
