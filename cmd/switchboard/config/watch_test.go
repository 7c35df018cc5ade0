package config

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects log output from the watcher goroutine.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestWatchAppliesValidChangesAndKeepsOldOnBrokenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "switchboard.yaml")
	write := func(s string) {
		t.Helper()
		// Replace by rename, as editors and Kubernetes do.
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write("log:\n  level: info\n")

	applied := make(chan *Config, 10)
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(logs, nil))
	if err := Watch(ctx, path, 50*time.Millisecond, log, func(c *Config) error { applied <- c; return nil }); err != nil {
		t.Fatal(err)
	}

	write("log:\n  level: debug\n")
	select {
	case c := <-applied:
		if c.Log.Level != "debug" {
			t.Fatalf("applied config has level %q", c.Log.Level)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a valid change was not applied")
	}

	write("log:\n  level: deafening\n")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "config reload rejected") {
		if time.Now().After(deadline) {
			t.Fatalf("broken file not reported; logs: %s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "log.level") {
		t.Errorf("rejection does not name the field: %s", logs.String())
	}
	select {
	case c := <-applied:
		t.Fatalf("a broken config was applied: %+v", c)
	default:
	}

	write("log:\n  level: warn\n")
	select {
	case c := <-applied:
		if c.Log.Level != "warn" {
			t.Fatalf("applied config has level %q", c.Log.Level)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a valid change after a broken one was not applied")
	}
}
