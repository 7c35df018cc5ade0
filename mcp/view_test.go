package mcp

import (
	"log/slog"
	"strings"
	"testing"
)

// mcp-go's streamable server logs through atLeast{warn}: its info records
// (one per swept session) stay out, warnings and errors come through,
// also from a logger derived with attributes or a group.
func TestAtLeastDropsLowerLevels(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	base := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log := slog.New(atLeast{base.Handler(), slog.LevelWarn})
	for _, l := range []*slog.Logger{log, log.With("k", "v"), log.WithGroup("g")} {
		l.Debug("debug-record")
		l.Info("info-record")
		l.Warn("warn-record")
		l.Error("error-record")
	}
	got := out.String()
	for _, want := range []string{"warn-record", "error-record"} {
		if strings.Count(got, want) != 3 {
			t.Errorf("%s logged %d times, want 3:\n%s", want, strings.Count(got, want), got)
		}
	}
	for _, unwanted := range []string{"debug-record", "info-record"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("%s got through:\n%s", unwanted, got)
		}
	}
}
