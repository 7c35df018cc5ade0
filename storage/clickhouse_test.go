package storage_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/storage/storagetest"
	"github.com/switchboard-gw/switchboard/trace"
)

const clickHouseEnv = "SWITCHBOARD_TEST_CLICKHOUSE"

// clickHouseAddr skips the test unless a ClickHouse was provided; once one is
// provided, failing to reach it fails the test.
func clickHouseAddr(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv(clickHouseEnv)
	if addr == "" {
		tb.Skipf("%s is not set: ClickHouse tests skipped (make test starts ClickHouse and sets it)", clickHouseEnv)
	}
	return addr
}

// openClickHouse opens a store on a fresh database that is dropped afterwards.
func openClickHouse(tb testing.TB, addr string) (storage.Store, string) {
	tb.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	db := "sbtest_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := storage.Open(ctx, storage.Config{ClickHouse: &storage.ClickHouseConfig{Addr: addr, Database: db, DialTimeout: 2 * time.Second}}, nil)
	if err != nil {
		tb.Fatalf("open ClickHouse at %s: %v", addr, err)
	}
	tb.Cleanup(func() {
		s.Close()
		dropDatabase(tb, addr, db)
	})
	return s, db
}

func rawConn(tb testing.TB, addr string) clickhouse.Conn {
	tb.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 2 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	return conn
}

func dropDatabase(tb testing.TB, addr, db string) {
	conn := rawConn(tb, addr)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS `%s`", db)); err != nil {
		tb.Logf("drop test database %s: %v", db, err)
	}
}

func TestClickHouseConformance(t *testing.T) {
	t.Parallel()
	addr := clickHouseAddr(t)
	storagetest.Run(t, storagetest.Options{LatencyTolerance: 0.005}, func(t *testing.T) storage.Store {
		s, _ := openClickHouse(t, addr)
		return s
	})
}

func TestClickHouseMigrationsAreIdempotent(t *testing.T) {
	t.Parallel()
	addr := clickHouseAddr(t)
	s, db := openClickHouse(t, addr)
	ctx := context.Background()
	if err := s.PutRecord(ctx, "k", "id", []byte("v")); err != nil {
		t.Fatal(err)
	}
	again, err := storage.Open(ctx, storage.Config{ClickHouse: &storage.ClickHouseConfig{Addr: addr, Database: db}}, nil)
	if err != nil {
		t.Fatalf("second open: %v", err)
	}
	defer again.Close()
	recs, err := again.ListRecords(ctx, "k")
	if err != nil || len(recs) != 1 {
		t.Fatalf("records after re-migration: %v %v", recs, err)
	}
}

func TestClickHouseUnreachableFails(t *testing.T) {
	t.Parallel()
	clickHouseAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Port 1 on loopback refuses connections.
	_, err := storage.Open(ctx, storage.Config{ClickHouse: &storage.ClickHouseConfig{Addr: "127.0.0.1:1", DialTimeout: time.Second}}, nil)
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
}

// TestClickHouseRecentTracesFromRollup covers what only the trace rollup
// does: widening its search window from the end of the range, and listing a
// trace by its first span and summarising it whole.
func TestClickHouseRecentTracesFromRollup(t *testing.T) {
	t.Parallel()
	s, _ := openClickHouse(t, clickHouseAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	now := time.Now().UTC()
	ages := []time.Duration{time.Hour, 2 * time.Hour, 3 * 24 * time.Hour, 10 * 24 * time.Hour, 40 * 24 * time.Hour}
	var spans []trace.Span
	for i, age := range ages {
		spans = append(spans, trace.Span{TraceID: trace.TraceID{7, byte(i)}, SpanID: trace.SpanID{7, byte(i)}, Layer: trace.LayerAgent,
			Name: "a", Start: now.Add(-age), Duration: time.Second, Status: trace.StatusOK, CostNanoUSD: 1})
	}
	// A trace that started three days ago and is still going.
	long := trace.Span{TraceID: trace.TraceID{7, 9}, SpanID: trace.SpanID{7, 9}, Layer: trace.LayerAgent, Name: "long",
		Start: now.Add(-3*24*time.Hour - time.Minute), Duration: time.Second, Status: trace.StatusOK, CostNanoUSD: 5}
	late := long
	late.SpanID, late.ParentSpanID, late.Name, late.Start, late.CostNanoUSD = trace.SpanID{7, 10}, long.SpanID, "late", now.Add(-30*time.Minute), 7
	spans = append(spans, long, late)
	if err := s.WriteSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    storage.TraceFilter
		want []byte // TraceID[1] of the traces, newest first
	}{
		{"last day fills the list", storage.TraceFilter{Limit: 2}, []byte{0, 1}},
		{"widens to a week", storage.TraceFilter{Limit: 4}, []byte{0, 1, 2, 9}},
		{"widens to everything", storage.TraceFilter{}, []byte{0, 1, 2, 9, 3, 4}},
		{"a trace is listed by its first span", storage.TraceFilter{From: now.Add(-2 * time.Hour)}, []byte{0, 1}},
		{"closed range", storage.TraceFilter{From: now.Add(-20 * 24 * time.Hour), To: now.Add(-90 * time.Minute)}, []byte{1, 2, 9, 3}},
		{"filter on a later span of a long trace", storage.TraceFilter{MinCostNanoUSD: 12}, []byte{9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.RecentTraces(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []byte
			for _, g := range got {
				ids = append(ids, g.TraceID[1])
				if g.TraceID[1] == 9 && (g.Spans != 2 || g.CostNanoUSD != 12 || g.Name != "long") {
					t.Errorf("long trace summarised as %+v", g)
				}
			}
			if string(ids) != string(tc.want) {
				t.Fatalf("traces %v, want %v", ids, tc.want)
			}
		})
	}
}
