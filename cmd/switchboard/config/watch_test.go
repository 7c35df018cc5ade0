package config

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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
	rejected := make(chan error, 10)
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	Watch(ctx, path, WatchOptions{Debounce: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(logs, nil)),
		Apply: func(c *Config) error { applied <- c; return nil }, Rejected: func(err error) { rejected <- err }})

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
	case err := <-rejected:
		if !strings.Contains(err.Error(), "switchboard.yaml:2: log.level") {
			t.Errorf("Rejected got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a broken file was not passed to Rejected")
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

// startWatch starts Watch on path with a short debounce; it returns what Watch applied and rejected, and its log.
func startWatch(t *testing.T, path string, debounce time.Duration, reread <-chan os.Signal) (chan *Config, chan error, *logBuffer) {
	t.Helper()
	applied, rejected, logs := make(chan *Config, 10), make(chan error, 10), &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	Watch(ctx, path, WatchOptions{Debounce: debounce, Log: slog.New(slog.NewTextHandler(logs, nil)), Reread: reread,
		Apply: func(c *Config) error { applied <- c; return nil }, Rejected: func(err error) { rejected <- err }})
	return applied, rejected, logs
}

func wantLevel(t *testing.T, applied <-chan *Config, level string, within time.Duration) {
	t.Helper()
	select {
	case c := <-applied:
		if c.Log.Level != level {
			t.Fatalf("applied config has level %q, want %q", c.Log.Level, level)
		}
	case <-time.After(within):
		t.Fatalf("level %q not applied within %v", level, within)
	}
}

func TestWatchIgnoresOtherFilesInTheDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "switchboard.yaml")
	if err := os.WriteFile(path, []byte("log:\n  level: info\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	applied, _, _ := startWatch(t, path, 200*time.Millisecond, nil)

	// A neighbour that changes more often than the debounce (an access log, a sidecar's state file) for longer
	// than the reload may take.
	stop := make(chan struct{})
	noisy := make(chan struct{})
	go func() {
		defer close(noisy)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				_ = os.WriteFile(filepath.Join(dir, "access.log"), []byte(strings.Repeat("x", i)), 0o600)
			}
		}
	}()
	defer func() { close(stop); <-noisy }()
	time.Sleep(100 * time.Millisecond)
	if err := os.WriteFile(path, []byte("log:\n  level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantLevel(t, applied, "debug", 3*time.Second)
}

// A Kubernetes ConfigMap volume: the file is a symlink through ..data, and an update swaps ..data to a new
// directory in one rename; the file itself sees no event.
func TestWatchFollowsConfigMapUpdates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	publish := func(version, content string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, version), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, version, "switchboard.yaml"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(version, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, configMapData)); err != nil {
			t.Fatal(err)
		}
	}
	publish("..2026_01_01_00_00_00.1", "log:\n  level: info\n")
	path := filepath.Join(dir, "switchboard.yaml")
	if err := os.Symlink(filepath.Join(configMapData, "switchboard.yaml"), path); err != nil {
		t.Fatal(err)
	}
	applied, _, _ := startWatch(t, path, 50*time.Millisecond, nil)

	publish("..2026_01_01_00_01_00.2", "log:\n  level: warn\n")
	wantLevel(t, applied, "warn", 10*time.Second)
}

// The signal (SIGHUP in serve) reads the file at once, even when no file event announced the change (here the
// config is a symlink into a directory nobody watches) and even when nothing changed; a broken file is rejected as
// it would be on a file event.
func TestWatchRereadsOnSignal(t *testing.T) {
	t.Parallel()
	elsewhere, dir := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "real.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(target, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("log:\n  level: info\n")
	path := filepath.Join(dir, "switchboard.yaml")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	reread := make(chan os.Signal)
	applied, rejected, logs := startWatch(t, path, 50*time.Millisecond, reread)

	write("log:\n  level: debug\n")
	reread <- syscall.SIGHUP
	wantLevel(t, applied, "debug", 10*time.Second)
	reread <- syscall.SIGHUP
	wantLevel(t, applied, "debug", 10*time.Second)

	write("log:\n  level: info\nlog_level: debug\n")
	reread <- syscall.SIGHUP
	select {
	case err := <-rejected:
		if !strings.Contains(err.Error(), "switchboard.yaml:3: log_level: unknown field") {
			t.Errorf("Rejected got %v", err)
		}
	case c := <-applied:
		t.Fatalf("a broken config was applied: %+v", c)
	case <-time.After(10 * time.Second):
		t.Fatal("a broken file was not rejected on the signal")
	}
	if !strings.Contains(logs.String(), "signal=hangup") {
		t.Errorf("the signal is not logged: %s", logs.String())
	}
}
