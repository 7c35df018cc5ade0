package mcp

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/switchboard-gw/switchboard/governance"
)

// redactValue redacts the strings of a decoded JSON value (notification
// params), copying only the maps and slices on the way to a string that
// changed.
func redactValue(r *governance.Redactor, v any) (any, bool) {
	if r == nil {
		return v, false
	}
	switch x := v.(type) {
	case string:
		red := r.String(x)
		return red, red != x
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			red, changed := redactValue(r, e)
			if !changed {
				continue
			}
			if out == nil {
				out = maps.Clone(x)
			}
			out[k] = red
		}
		if out == nil {
			return x, false
		}
		return out, true
	case []any:
		var out []any
		for i, e := range x {
			red, changed := redactValue(r, e)
			if !changed {
				continue
			}
			if out == nil {
				out = slices.Clone(x)
			}
			out[i] = red
		}
		if out == nil {
			return x, false
		}
		return out, true
	}
	return v, false
}

// redactingHandler is a slog.Handler that hides an upstream's secrets in the
// message and attributes of every record, including those mcp-go's
// transports log about the upstream's answers.
type redactingHandler struct {
	next slog.Handler
	r    *governance.Redactor
}

// redactLogger returns log unchanged when there is nothing to hide.
func redactLogger(log *slog.Logger, r *governance.Redactor) *slog.Logger {
	if r == nil {
		return log
	}
	return slog.New(redactingHandler{next: log.Handler(), r: r})
}

func (h redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = h.attr(a)
	}
	return redactingHandler{next: h.next.WithAttrs(red), r: h.r}
}

func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{next: h.next.WithGroup(name), r: h.r}
}

// attr renders every non-numeric value as text, because an error or a
// struct may carry a secret that only shows once formatted.
func (h redactingHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		group := v.Group()
		red := make([]slog.Attr, len(group))
		for i, g := range group {
			red[i] = h.attr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	case slog.KindString:
		return slog.String(a.Key, h.r.String(v.String()))
	case slog.KindAny:
		s := fmt.Sprint(v.Any())
		if red := h.r.String(s); red != s {
			return slog.String(a.Key, red)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
