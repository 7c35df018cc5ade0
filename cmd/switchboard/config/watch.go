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

// configMapData is the symlink a Kubernetes ConfigMap volume swaps to publish new contents at once; the file names
// in the volume are symlinks through it and see no event of their own.
const configMapData = "..data"

// WatchOptions says what Watch does with each version of the file.
type WatchOptions struct {
	// Debounce is how long the file must stay quiet before it is read; DefaultDebounce when 0.
	Debounce time.Duration
	Log      *slog.Logger
	// Apply puts a valid config in force. It may refuse one; it reports (audits) its own outcome either way.
	Apply func(*Config) error
	// Rejected, when set, hears why a version of the file could not be read, parsed or validated: Apply never saw
	// it, and a refusal must still be recorded.
	Rejected func(error)
	// Reread asks for the file to be read now, changed or not (serve feeds it SIGHUP), so an operator can retry a
	// refused config or reload a file whose change the directory watch cannot see.
	Reread <-chan os.Signal
}

// Watch calls o.Apply with each new valid version of the file at path until ctx ends. A file that fails to parse or
// validate is logged and passed to o.Rejected, and the running config stays in force. The directory is watched
// rather than the file, because editors and Kubernetes replace files by renaming, which ends a watch on the old
// inode; events for the directory's other files are ignored, or a busy neighbour (a log file) would postpone the
// reload for as long as it keeps changing. If the directory cannot be watched, o.Reread still works.
func Watch(ctx context.Context, path string, o WatchOptions) {
	if o.Debounce == 0 {
		o.Debounce = DefaultDebounce
	}
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	watcher, err := watchDir(filepath.Dir(path))
	if err != nil {
		o.Log.Warn("config file watch disabled: changes apply on SIGHUP only", "path", path, "err", err)
	} else {
		events, watchErrs = watcher.Events, watcher.Errors
	}
	last, _ := os.ReadFile(path)
	reload := func(force bool) {
		raw, err := os.ReadFile(path)
		if err == nil {
			if !force && bytes.Equal(raw, last) {
				return
			}
			last = raw
		}
		var cfg *Config
		if err == nil {
			cfg, err = Parse(raw, path)
		}
		if err == nil {
			err = o.Apply(cfg)
		} else if o.Rejected != nil {
			o.Rejected(err)
		}
		if err != nil {
			o.Log.Error("config reload rejected, keeping the running config", "path", path, "err", err)
			return
		}
		o.Log.Info("config reloaded", "path", path)
	}
	go func() {
		if watcher != nil {
			defer watcher.Close()
		}
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case err, ok := <-watchErrs:
				if !ok {
					watchErrs = nil
					continue
				}
				o.Log.Warn("config watch error", "err", err)
			case ev, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				if name := filepath.Base(ev.Name); name == filepath.Base(path) || name == configMapData {
					timer.Reset(o.Debounce)
				}
			case sig := <-o.Reread:
				o.Log.Info("config re-read on signal", "path", path, "signal", sig.String())
				reload(true)
			case <-timer.C:
				reload(false)
			}
		}
	}()
}

func watchDir(dir string) (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}
