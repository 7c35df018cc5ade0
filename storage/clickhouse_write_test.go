package storage_test

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// TestClickHouseConcurrentSpanWrites: writes share column buffers between
// calls (the recorder's writer and its replay can write at once), so each
// of several concurrent batches, of differing sizes and attributes, must
// arrive whole and unmixed.
func TestClickHouseConcurrentSpanWrites(t *testing.T) {
	t.Parallel()
	s, _ := openClickHouse(t, clickHouseAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	batches := make([][]trace.Span, 6)
	for w := range batches {
		n := 50 + 40*w
		for i := range n {
			sp := trace.Span{
				TraceID: trace.TraceID{9, byte(w)}, SpanID: trace.SpanID{9, byte(w), byte(i >> 8), byte(i)},
				Layer: trace.LayerAgent, Name: fmt.Sprint("w", w), Start: base.Add(time.Duration(i)*time.Millisecond + time.Duration(w)),
				Duration: time.Duration(i+1) * time.Microsecond, Status: trace.StatusOK, Team: fmt.Sprint("team-", w),
				InputTokens: int64(i), CostNanoUSD: int64(w*1000 + i),
			}
			if i > 0 {
				sp.ParentSpanID = trace.SpanID{9, byte(w), 0, 0}
			}
			for a := range (i + w) % 4 {
				sp.Attrs = append(sp.Attrs, trace.Attr{Key: fmt.Sprint("k", a), Value: fmt.Sprint(w, "/", i, "/", a)})
			}
			batches[w] = append(batches[w], sp)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(batches))
	for w, b := range batches {
		wg.Go(func() { errs[w] = s.WriteSpans(ctx, b) })
	}
	wg.Wait()
	for w, want := range batches {
		if errs[w] != nil {
			t.Fatalf("batch %d: %v", w, errs[w])
		}
		nodes, err := s.Trace(ctx, want[0].TraceID)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 1 {
			t.Fatalf("batch %d: %d roots, want 1", w, len(nodes))
		}
		got := []trace.Span{nodes[0].Span}
		for _, c := range nodes[0].Children {
			got = append(got, c.Span)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("batch %d differs after the round trip:\n got %+v\nwant %+v", w, got, want)
		}
	}
}

// TestClickHouseInsertsKeepThePooledConnection writes with contexts cancelled the moment each write returns, as
// the recorder's write timeout does, on a pool of one connection: each write must leave that connection usable
// for the next operation (clickhouse-go's batch watchdog could close it; see storage/insert.go).
func TestClickHouseInsertsKeepThePooledConnection(t *testing.T) {
	t.Parallel()
	addr := clickHouseAddr(t)
	db := "sbtest_pool_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx := context.Background()
	s, err := storage.Open(ctx, storage.Config{ClickHouse: &storage.ClickHouseConfig{Addr: addr, Database: db, MaxOpenConns: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		dropDatabase(t, addr, db)
	})
	// Runnable goroutines queue up ahead of the driver's watchdog goroutine, as a busy process's do.
	stop := make(chan struct{})
	var busy sync.WaitGroup
	for range 64 {
		busy.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					runtime.Gosched()
				}
			}
		})
	}
	defer busy.Wait()
	defer close(stop)
	for i := range 200 {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.PutRecord(wctx, "pool", strconv.Itoa(i), []byte("{}"))
		cancel()
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("ping after write %d: %v", i, err)
		}
	}
}

// TestClickHouseBatchIsOnePart: a batch handed over in several chunks, one of
// them longer than an insert block, is one INSERT, so ClickHouse makes one
// part of it in spans and one in each rollup. Parts are what an insert costs
// the server; a part per chunk or block would undo the recorder's batching.
func TestClickHouseBatchIsOnePart(t *testing.T) {
	t.Parallel()
	addr := clickHouseAddr(t)
	s, db := openClickHouse(t, addr)
	conn := rawConn(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tables := []string{"spans", "spend_daily_v2", "trace_index", "trace_list_v2"}
	for _, table := range tables {
		// Without merges, every insert's part stays countable.
		if err := conn.Exec(ctx, "SYSTEM STOP MERGES `"+db+"`.`"+table+"`"); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2026, 3, 11, 9, 0, 0, 0, time.UTC)
	var chunks [][]trace.Span
	n := 0
	for _, size := range []int{3000, 12000, 1} {
		chunk := make([]trace.Span, size)
		for i := range chunk {
			chunk[i] = trace.Span{
				TraceID: trace.TraceID{7, byte(n >> 16), byte(n >> 8), byte(n)}, SpanID: trace.SpanID{7, byte(n >> 16), byte(n >> 8), byte(n)},
				Layer: trace.LayerLLM, Name: "chat m", Start: base.Add(time.Duration(n) * time.Millisecond), Duration: time.Millisecond,
				Status: trace.StatusOK, Team: "t", KeyID: "k", Model: "m", CostNanoUSD: 1,
			}
			n++
		}
		chunks = append(chunks, chunk)
	}
	if err := s.WriteSpans(ctx, chunks...); err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		var parts uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND table = ? AND active", db, table).Scan(&parts); err != nil {
			t.Fatal(err)
		}
		if parts != 1 {
			t.Errorf("%s: %d parts after one batch of %d chunks, want 1", table, parts, len(chunks))
		}
	}
	var rows, cost uint64
	if err := conn.QueryRow(ctx, "SELECT count(), toUInt64(sum(cost_nano)) FROM `"+db+"`.spans").Scan(&rows, &cost); err != nil {
		t.Fatal(err)
	}
	if rows != uint64(n) || cost != uint64(n) {
		t.Fatalf("spans: %d rows costing %d, want %d of each", rows, cost, n)
	}
}
