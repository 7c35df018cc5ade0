package config

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce covers editors and ConfigMap updates that touch a file several times for one save.
const DefaultDebounce = 300 * time.Millisecond

// Watch calls apply with each new valid version of the file until ctx ends. A file that fails to parse or
// validate is logged and skipped, so the running config stays in force; apply may refuse a config too (its error
// is logged the same way). The directory is watched rather than the file, because editors and Kubernetes
// replace files by renaming, which ends a watch on the old inode.
func Watch(ctx context.Context, path string, debounce time.Duration, log *slog.Logger, apply func(*Config) error) error {
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := watcher.Add(filepath.Dir(path)); err != nil {
		watcher.Close()
		return err
	}
	last, _ := os.ReadFile(path)
	go func() {
		defer watcher.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case err, ok := <-watcher.Errors:
				if !ok {
					return
				}
				log.Warn("config watch error", "err", err)
			case _, ok := <-watcher.Events:
				if !ok {
					return
				}
				timer.Reset(debounce)
			case <-timer.C:
				raw, err := os.ReadFile(path)
				if err != nil {
					log.Error("config reload rejected, keeping the running config", "path", path, "err", err)
					continue
				}
				if bytes.Equal(raw, last) {
					continue
				}
				last = raw
				cfg, err := Parse(raw, path)
				if err == nil {
					err = apply(cfg)
				}
				if err != nil {
					log.Error("config reload rejected, keeping the running config", "path", path, "err", err)
					continue
				}
				log.Info("config reloaded", "path", path)
			}
		}
	}()
	return nil
}
