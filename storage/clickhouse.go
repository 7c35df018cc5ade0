package storage

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/switchboard-gw/switchboard/trace"
)

type clickHouseStore struct {
	conn    driver.Conn
	db      string // quoted
	log     *slog.Logger
	rollups rollupSince

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
	if err := s.migrate(ctx, cfg); err != nil {
		conn.Close()
		return nil, fmt.Errorf("storage: clickhouse migration: %w", err)
	}
	return s, nil
}

func (s *clickHouseStore) migrate(ctx context.Context, cfg ClickHouseConfig) error {
	hadSpans, err := spansExist(ctx, s.conn, cfg.Database)
	if err != nil {
		return err
	}
	stmts := chSchema(cfg.Database, cfg.Cluster)
	if cfg.AuditTTL > 0 {
		stmts = append(stmts, auditTTLStatement(cfg.Database, cfg.Cluster, cfg.AuditTTL))
	}
	for _, stmt := range stmts {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	s.rollups, err = loadRollups(ctx, s.conn, s.db+".rollups", hadSpans)
	return err
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
