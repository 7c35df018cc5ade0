package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
)

// redactedText replaces an upstream's secret wherever the gateway passes on
// what that upstream said.
const redactedText = "[redacted]"

// minSecretLen is the shortest header value treated as a secret: shorter
// values ("json", "1") occur in ordinary text and redacting them would
// mangle answers without protecting anything.
const minSecretLen = 8

// redactor hides one upstream's configured header values (its API keys) in
// what the upstream sends back: an upstream quoting the key in an error or a
// tool result must not hand it to the gateway's clients, spans or logs. A
// nil *redactor has no secrets and passes everything through.
//
// It is a guard against an upstream echoing a key, not against one set on
// leaking it: a value re-encoded (base64, \u escapes) is not recognised.
type redactor struct {
	// secrets are the byte forms searched for in raw JSON: each value and,
	// when JSON escapes it differently, its escaped form; longest first so
	// that a value containing another is replaced whole.
	secrets [][]byte
	text    []string // the plain values, for strings
	raw     *strings.Replacer
	plain   *strings.Replacer
}

// newRedactor builds the redactor for a server's configured headers; nil
// when none of them is long enough to be a secret.
func newRedactor(headers map[string]string) *redactor {
	var text []string
	add := func(v string) {
		if len(v) >= minSecretLen && !slices.Contains(text, v) {
			text = append(text, v)
		}
	}
	for _, v := range headers {
		add(v)
		// "Bearer <token>": an upstream rejecting the token tends to quote
		// the token alone.
		if _, cred, ok := strings.Cut(v, " "); ok {
			add(strings.TrimSpace(cred))
		}
	}
	if len(text) == 0 {
		return nil
	}
	byLength := func(a, b string) int { return len(b) - len(a) }
	slices.SortFunc(text, byLength)
	var raw []string
	for _, v := range text {
		raw = append(raw, v)
		if q := jsonEscaped(v); q != v {
			raw = append(raw, q)
		}
	}
	slices.SortFunc(raw, byLength)
	r := &redactor{text: text}
	pairs := make([]string, 0, 2*len(raw))
	for _, v := range raw {
		r.secrets = append(r.secrets, []byte(v))
		pairs = append(pairs, v, redactedText)
	}
	r.raw = strings.NewReplacer(pairs...)
	pairs = pairs[:0]
	for _, v := range text {
		pairs = append(pairs, v, redactedText)
	}
	r.plain = strings.NewReplacer(pairs...)
	return r
}

// jsonEscaped is v as it appears inside a JSON string written by
// encoding/json (which also escapes <, > and &).
func jsonEscaped(v string) string {
	q, err := json.Marshal(v)
	if err != nil {
		return v
	}
	return string(q[1 : len(q)-1])
}

// json returns the raw JSON b with every secret replaced, or b itself when
// it holds none: the common case costs a few substring scans and no copy.
// The replacement is plain ASCII without quotes or backslashes, so a secret
// inside a JSON string leaves the document valid.
func (r *redactor) json(b []byte) []byte {
	if r == nil || !r.foundIn(b) {
		return b
	}
	return []byte(r.raw.Replace(string(b)))
}

func (r *redactor) foundIn(b []byte) bool {
	for _, s := range r.secrets {
		if bytes.Contains(b, s) {
			return true
		}
	}
	return false
}

// string returns s with every secret replaced.
func (r *redactor) string(s string) string {
	if r == nil {
		return s
	}
	for _, v := range r.text {
		if strings.Contains(s, v) {
			return r.plain.Replace(s)
		}
	}
	return s
}

// error hides the secrets in err's message; errors.Is and errors.As still
// see err, so its kind (transport failure, JSON-RPC code) is kept.
func (r *redactor) error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := r.string(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// value redacts the strings of a decoded JSON value (notification params),
// copying only the maps and slices on the way to a string that changed.
func (r *redactor) value(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		red := r.string(x)
		return red, red != x
	case map[string]any:
		var out map[string]any
		for k, e := range x {
			red, changed := r.value(e)
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
			red, changed := r.value(e)
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
	r    *redactor
}

// redactLogger returns log unchanged when there is nothing to hide.
func redactLogger(log *slog.Logger, r *redactor) *slog.Logger {
	if r == nil {
		return log
	}
	return slog.New(redactingHandler{next: log.Handler(), r: r})
}

func (h redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.string(rec.Message), rec.PC)
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
		return slog.String(a.Key, h.r.string(v.String()))
	case slog.KindAny:
		s := fmt.Sprint(v.Any())
		if red := h.r.string(s); red != s {
			return slog.String(a.Key, red)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
