package storage

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
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

	// spanCols holds the column buffers of the last span write for the next
	// one (capacity 1).
	spanCols chan *chSpanBatch
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
	s := &clickHouseStore{conn: conn, db: "`" + cfg.Database + "`", log: log, spanCols: make(chan *chSpanBatch, 1)}
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

// WriteSpans sends a batch as one INSERT, in blocks of at most
// spanBlockRows spans, column by column: one typed slice per column instead
// of a row of 30 boxed values per span, which made the driver allocate for
// nearly every field of every span.
//
// The server gathers the blocks of one INSERT into one block before it
// writes anything (min_insert_block_size_rows, 1,048,576 by default, above
// trace.MaxBatchSize), so the batch makes one part per table and its views,
// and a failed insert writes none. The client meanwhile holds one block's
// columns, not the batch's.
func (s *clickHouseStore) WriteSpans(ctx context.Context, batch ...[]trace.Span) error {
	if !slices.ContainsFunc(batch, func(spans []trace.Span) bool { return len(spans) > 0 }) {
		return nil
	}
	cols := s.spanColumns()
	defer s.releaseSpanColumns(cols)
	err := insert(ctx, s.conn, `INSERT INTO `+s.db+`.spans (`+chSpanColumns+`)`, func(b driver.Batch) error {
		for _, spans := range batch {
			for len(spans) > 0 {
				block := spans[:min(len(spans), spanBlockRows)]
				spans = spans[len(block):]
				err := cols.appendTo(b, block)
				cols.reset()
				if err != nil {
					return err
				}
				if err := b.Flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: write spans: %w", err)
	}
	return nil
}

// spanBlockRows is the most spans in one block of a span insert, the
// recorder's chunk.
const spanBlockRows = 5000

// spanColumns returns the idle column buffers, or new ones when another
// write holds them (the recorder's writer and its replay of spilled spans
// may write at once).
func (s *clickHouseStore) spanColumns() *chSpanBatch {
	select {
	case c := <-s.spanCols:
		return c
	default:
		return &chSpanBatch{}
	}
}

// releaseSpanColumns keeps c, emptied, for the next write unless one is kept
// already.
func (s *clickHouseStore) releaseSpanColumns(c *chSpanBatch) {
	select {
	case s.spanCols <- c:
	default:
	}
}

// chSpanBatch holds the column slices of one span insert. Strings and ID
// bytes are not copied here: the slices point into the caller's spans, and
// the driver copies them into its own buffers when they are appended.
type chSpanBatch struct {
	start                                                                  []time.Time
	startNS, durationNS, inputTokens, outputTokens, cachedTokens, costNano []int64
	ttftNS                                                                 []int64
	traceID, spanID, parentSpanID                                          [][]byte
	layer, name, status, errText, keyID, keyName, team, org                []string
	model, provider, deployment, toolServer, tool, agent                   []string
	httpStatus, retries, fallbacks                                         []int32
	// One span's attribute keys and values, as pointers so that appending
	// them to an Array(String) column boxes no string.
	attrKeys, attrValues []*string
}

// appendTo fills batch with spans. The first columns go in whole; the
// attribute arrays go row by row, which costs an allocation only for spans
// that have attributes (a whole [][]string column would be appended by
// reflection, boxing every row and every string).
func (c *chSpanBatch) appendTo(batch driver.Batch, spans []trace.Span) error {
	for i := range spans {
		sp := &spans[i]
		c.start = append(c.start, sp.Start)
		c.startNS = append(c.startNS, sp.Start.UnixNano())
		c.traceID = append(c.traceID, sp.TraceID[:])
		c.spanID = append(c.spanID, sp.SpanID[:])
		c.parentSpanID = append(c.parentSpanID, sp.ParentSpanID[:])
		c.layer = append(c.layer, string(sp.Layer))
		c.name = append(c.name, sp.Name)
		c.durationNS = append(c.durationNS, int64(sp.Duration))
		c.status = append(c.status, string(sp.Status))
		c.httpStatus = append(c.httpStatus, int32(sp.HTTPStatus))
		c.errText = append(c.errText, sp.Error)
		c.keyID = append(c.keyID, sp.KeyID)
		c.keyName = append(c.keyName, sp.KeyName)
		c.team = append(c.team, sp.Team)
		c.org = append(c.org, sp.Org)
		c.model = append(c.model, sp.Model)
		c.provider = append(c.provider, sp.Provider)
		c.deployment = append(c.deployment, sp.Deployment)
		c.toolServer = append(c.toolServer, sp.ToolServer)
		c.tool = append(c.tool, sp.Tool)
		c.agent = append(c.agent, sp.Agent)
		c.inputTokens = append(c.inputTokens, sp.InputTokens)
		c.outputTokens = append(c.outputTokens, sp.OutputTokens)
		c.cachedTokens = append(c.cachedTokens, sp.CachedTokens)
		c.costNano = append(c.costNano, sp.CostNanoUSD)
		c.retries = append(c.retries, sp.Retries)
		c.fallbacks = append(c.fallbacks, sp.Fallbacks)
		c.ttftNS = append(c.ttftNS, int64(sp.TTFT))
	}
	// In chSpanColumns order.
	columns := []any{c.start, c.startNS, c.traceID, c.spanID, c.parentSpanID, c.layer, c.name, c.durationNS, c.status,
		c.httpStatus, c.errText, c.keyID, c.keyName, c.team, c.org, c.model, c.provider, c.deployment, c.toolServer,
		c.tool, c.agent, c.inputTokens, c.outputTokens, c.cachedTokens, c.costNano, c.retries, c.fallbacks, c.ttftNS}
	for i, col := range columns {
		if err := batch.Column(i).Append(col); err != nil {
			return err
		}
	}
	keys, values := batch.Column(len(columns)), batch.Column(len(columns)+1)
	for i := range spans {
		attrs := spans[i].Attrs
		c.attrKeys, c.attrValues = c.attrKeys[:0], c.attrValues[:0]
		for j := range attrs {
			c.attrKeys = append(c.attrKeys, &attrs[j].Key)
			c.attrValues = append(c.attrValues, &attrs[j].Value)
		}
		k, v := c.attrKeys, c.attrValues
		if len(attrs) == 0 {
			// A nil slice is boxed without allocating.
			k, v = nil, nil
		}
		if err := keys.AppendRow(k); err != nil {
			return err
		}
		if err := values.AppendRow(v); err != nil {
			return err
		}
	}
	return nil
}

// reset empties the slices but keeps their arrays, dropping references to
// the written spans.
func (c *chSpanBatch) reset() {
	for _, col := range []*[]string{&c.layer, &c.name, &c.status, &c.errText, &c.keyID, &c.keyName, &c.team, &c.org,
		&c.model, &c.provider, &c.deployment, &c.toolServer, &c.tool, &c.agent} {
		clear(*col)
		*col = (*col)[:0]
	}
	for _, col := range []*[][]byte{&c.traceID, &c.spanID, &c.parentSpanID} {
		clear(*col)
		*col = (*col)[:0]
	}
	for _, col := range []*[]int64{&c.startNS, &c.durationNS, &c.inputTokens, &c.outputTokens, &c.cachedTokens, &c.costNano, &c.ttftNS} {
		*col = (*col)[:0]
	}
	for _, col := range []*[]int32{&c.httpStatus, &c.retries, &c.fallbacks} {
		*col = (*col)[:0]
	}
	clear(c.attrKeys)
	clear(c.attrValues)
	c.start, c.attrKeys, c.attrValues = c.start[:0], c.attrKeys[:0], c.attrValues[:0]
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
	return insert(ctx, s.conn, `INSERT INTO `+s.db+`.records (kind, id, data, deleted, version)`, func(b driver.Batch) error {
		return b.Append(kind, id, string(data), deleted, s.nextVersion())
	})
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
