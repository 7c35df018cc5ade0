package storage_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/storage/storagetest"
)

func TestSQLiteConformance(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, storagetest.Options{}, func(t *testing.T) storage.Store {
		s, err := storage.Open(context.Background(), storage.Config{SQLite: storage.SQLiteConfig{Path: ":memory:"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestSQLiteFileReopens(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub", "switchboard.db")
	cfg := storage.Config{SQLite: storage.SQLiteConfig{Path: path}}
	ctx := context.Background()
	s, err := storage.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutRecord(ctx, "k", "id", []byte("v")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Migrations run again on an existing file without complaint.
	s, err = storage.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.ListRecords(ctx, "k")
	if err != nil || len(recs) != 1 || string(recs[0].Data) != "v" {
		t.Fatalf("after reopen: %v %v", recs, err)
	}
}
