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
	storagetest.Run(t, func(t *testing.T) storage.Store {
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
