// Package storage keeps spans and the small records governance needs, and
// answers the spend and trace questions the dashboard and budgets ask. It has
// two implementations behind Store: ClickHouse (native protocol) and an
// embedded SQLite file used when no ClickHouse is configured.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-gw/switchboard/trace"
)

// ErrNotFound is returned by Trace for an unknown trace id.
var ErrNotFound = errors.New("storage: not found")

// Store is what the gateway writes and asks. Every implementation passes the
// suite in storage/storagetest.
type Store interface {
	trace.Sink
	// Spend sums cost, calls, errors and tokens and gives call latency
	// percentiles per bucket and group.
	Spend(ctx context.Context, q SpendQuery) ([]SpendRow, error)
	// SpendSince is the exact spend in nano-USD of a key (span.KeyID) or team
	// (span.Team) from since on; budgets are rebuilt from it at start-up.
	SpendSince(ctx context.Context, scope Scope, id string, since time.Time) (int64, error)
	// Trace returns the spans of one trace as a forest ordered by start: the
	// gateway's own root, or, when the trace's root lives outside the
	// gateway, every span whose parent is not stored. No node is invented.
	// An unknown id gives ErrNotFound.
	Trace(ctx context.Context, id trace.TraceID) ([]TraceNode, error)
	// RecentTraces summarises the newest traces matching f, newest first.
	RecentTraces(ctx context.Context, f TraceFilter) ([]TraceSummary, error)
	// PutRecord stores data under (kind, id); the latest put wins.
	PutRecord(ctx context.Context, kind, id string, data []byte) error
	// DeleteRecord removes (kind, id); deleting a missing record is not an error.
	DeleteRecord(ctx context.Context, kind, id string) error
	// ListRecords returns the live records of kind ordered by id.
	ListRecords(ctx context.Context, kind string) ([]Record, error)
	// AppendAudit stores audit events; events are never changed afterwards.
	AppendAudit(ctx context.Context, events []AuditEvent) error
	// Audit returns the events matching q, newest first.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)
	Ping(ctx context.Context) error
	Close() error
}

// Record is one small key-value record (governance's runtime keys and teams).
type Record struct {
	Kind      string    `json:"kind"`
	ID        string    `json:"id"`
	Data      []byte    `json:"data"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Scope selects whose spend SpendSince sums.
type Scope string

// Spend scopes.
const (
	ScopeKey  Scope = "key"  // span.KeyID
	ScopeTeam Scope = "team" // span.Team
)

// GroupBy is the dimension spend rows are grouped by.
type GroupBy string

// Spend groupings; GroupNone puts everything in one group named "".
const (
	GroupNone       GroupBy = ""
	GroupTeam       GroupBy = "team"
	GroupKey        GroupBy = "key" // span.KeyID
	GroupModel      GroupBy = "model"
	GroupProvider   GroupBy = "provider"
	GroupToolServer GroupBy = "tool_server"
	GroupTool       GroupBy = "tool"
	GroupAgent      GroupBy = "agent"
	GroupLayer      GroupBy = "layer"
)

// groupColumns maps groupings to the span column both stores use; only these
// names ever reach SQL.
var groupColumns = map[GroupBy]string{
	GroupTeam: "team", GroupKey: "key_id", GroupModel: "model", GroupProvider: "provider",
	GroupToolServer: "tool_server", GroupTool: "tool", GroupAgent: "agent", GroupLayer: "layer",
}

// Bucket is the time bucket of spend rows, in UTC.
type Bucket string

// Spend buckets; BucketNone sums the whole range into one row per group.
const (
	BucketNone Bucket = ""
	BucketHour Bucket = "hour"
	BucketDay  Bucket = "day"
)

// SpendQuery asks for spend over [From, To). Zero From or To leaves that end
// open; empty Team/KeyID do not filter.
type SpendQuery struct {
	From, To time.Time
	GroupBy  GroupBy
	Bucket   Bucket
	Team     string
	KeyID    string
}

// SpendRow is the spend of one group in one bucket. Cost and tokens sum
// every span; Requests, Errors and the latency percentiles cover only spans
// that stand for a client call, not the upstream attempts the llm package
// records as children of a call. Percentiles are nearest-rank on SQLite and
// read from a histogram with 1% wide buckets on ClickHouse (within 0.5%);
// they are zero when the group has no call.
type SpendRow struct {
	Bucket       time.Time     `json:"bucket"` // zero for BucketNone
	Group        string        `json:"group"`
	CostNanoUSD  int64         `json:"cost_nano_usd"`
	Requests     int64         `json:"requests"`
	Errors       int64         `json:"errors"`
	InputTokens  int64         `json:"input_tokens"`
	OutputTokens int64         `json:"output_tokens"`
	CachedTokens int64         `json:"cached_tokens"`
	LatencyP50   time.Duration `json:"latency_p50_ns"`
	LatencyP95   time.Duration `json:"latency_p95_ns"`
	LatencyP99   time.Duration `json:"latency_p99_ns"`
}

// Validate rejects unknown groupings and buckets and reversed ranges.
func (q SpendQuery) Validate() error {
	if _, ok := groupColumns[q.GroupBy]; !ok && q.GroupBy != GroupNone {
		return fmt.Errorf("storage: unknown spend grouping %q", q.GroupBy)
	}
	switch q.Bucket {
	case BucketNone, BucketHour, BucketDay:
	default:
		return fmt.Errorf("storage: unknown spend bucket %q", q.Bucket)
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return errors.New("storage: spend range ends before it starts")
	}
	return nil
}

func (q SpendQuery) bucketSeconds() int64 {
	switch q.Bucket {
	case BucketHour:
		return 3600
	case BucketDay:
		return 86400
	}
	return 0
}

// TraceNode is one span and the spans it started, ordered by start.
type TraceNode struct {
	Span     trace.Span  `json:"span"`
	Children []TraceNode `json:"children,omitempty"`
}

// TraceFilter selects traces for RecentTraces. A trace matches when any of
// its spans in [From, To) has the team, key and layer asked for; Status,
// MinCostNanoUSD and MinDuration apply to the trace as a whole (status error
// means at least one span failed). Only spans in the range are summarised,
// except where ClickHouse answers from its trace rollup: there a trace is
// listed when its first span starts in the range and is summarised whole.
// The two agree unless a trace crosses an end of the range.
type TraceFilter struct {
	From, To       time.Time
	Team           string
	KeyID          string
	Layer          trace.Layer
	Status         trace.Status
	MinCostNanoUSD int64
	MinDuration    time.Duration
	Limit          int // default 50, at most 1000
}

// Limits of RecentTraces.
const (
	DefaultTraceLimit = 50
	MaxTraceLimit     = 1000
)

func (f TraceFilter) limit() int {
	if f.Limit <= 0 {
		return DefaultTraceLimit
	}
	return min(f.Limit, MaxTraceLimit)
}

// TraceSummary is one trace in a list. Name, Layer, Team, KeyID and KeyName
// come from its earliest span.
type TraceSummary struct {
	TraceID      trace.TraceID `json:"trace_id"`
	Name         string        `json:"name"`
	Layer        trace.Layer   `json:"layer"`
	Start        time.Time     `json:"start"`
	Duration     time.Duration `json:"duration_ns"` // first start to last end
	Spans        int64         `json:"spans"`
	Errors       int64         `json:"errors"`
	Status       trace.Status  `json:"status"`
	CostNanoUSD  int64         `json:"cost_nano_usd"`
	InputTokens  int64         `json:"input_tokens"`
	OutputTokens int64         `json:"output_tokens"`
	Team         string        `json:"team,omitempty"`
	KeyID        string        `json:"key_id,omitempty"`
	KeyName      string        `json:"key_name,omitempty"`
}

// Open connects to ClickHouse when cfg.ClickHouse is set and to the embedded
// SQLite store otherwise, and brings the schema up to date.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ClickHouse != nil {
		return openClickHouse(ctx, *cfg.ClickHouse, log)
	}
	return openSQLite(ctx, cfg.SQLite, log)
}

func checkScope(scope Scope) (string, error) {
	switch scope {
	case ScopeKey:
		return "key_id", nil
	case ScopeTeam:
		return "team", nil
	}
	return "", fmt.Errorf("storage: unknown spend scope %q", scope)
}

func traceStatus(errs int64) trace.Status {
	if errs > 0 {
		return trace.StatusError
	}
	return trace.StatusOK
}
