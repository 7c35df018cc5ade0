package app

import (
	"io"
	"log/slog"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
)

// NewLogger builds the structured logger the config asks for. The returned level can be changed at run time
// (config hot reload).
func NewLogger(cfg config.LogConfig, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	if l, err := config.ParseLevel(cfg.Level); err == nil {
		level.Set(l)
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), level
	}
	return slog.New(slog.NewJSONHandler(w, opts)), level
}
