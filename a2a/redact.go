package a2a

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// redactedText stands in for a secret in everything the gateway relays,
// records or logs.
const redactedText = "[redacted]"

// minSecretLen keeps short header values (a tenant "t1", "json") from
// being treated as secrets: redacting them would mangle ordinary answers.
const minSecretLen = 8

// redactor removes an agent's secrets — its configured header values,
// typically its credentials — from what the agent sends back. Agents echo
// them by accident (a JSON-RPC error quoting the request, a debug artifact),
// and the gateway must not pass them on to its clients, spans or logs. It is
// built once per agent configuration; a nil redactor has no secrets.
type redactor struct {
	// secrets are the byte patterns to replace, longest first so that a
	// secret containing another is replaced whole.
	secrets [][]byte
}

func newRedactor(headers map[string]string) *redactor {
	seen := map[string]bool{}
	add := func(s string) {
		if len(s) < minSecretLen {
			return
		}
		// The agent's answer is JSON: a secret with characters JSON escapes
		// appears escaped in it (Go's encoder also escapes <, > and &).
		for _, form := range []string{s, jsonEscaped(s, true), jsonEscaped(s, false)} {
			if len(form) >= minSecretLen {
				seen[form] = true
			}
		}
	}
	for _, v := range headers {
		add(v)
		// "Bearer <token>": an agent may quote the credential without its scheme.
		if i := strings.LastIndexByte(v, ' '); i >= 0 {
			add(v[i+1:])
		}
	}
	if len(seen) == 0 {
		return nil
	}
	r := &redactor{}
	for s := range seen {
		r.secrets = append(r.secrets, []byte(s))
	}
	slices.SortFunc(r.secrets, func(a, b []byte) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return bytes.Compare(a, b)
	})
	return r
}

// jsonEscaped is s as it appears between the quotes of a JSON string.
func jsonEscaped(s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(s) // a string always encodes
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	return string(out[1 : len(out)-1])
}

// in reports whether b holds any secret.
func (r *redactor) in(b []byte) bool {
	if r == nil {
		return false
	}
	for _, s := range r.secrets {
		if bytes.Contains(b, s) {
			return true
		}
	}
	return false
}

// bytes returns b with every secret replaced; b itself, not a copy, when
// it holds none.
func (r *redactor) bytes(b []byte) []byte {
	if !r.in(b) {
		return b
	}
	out, _ := r.appendRedacted(make([]byte, 0, len(b)), b, true)
	return out
}

// string is bytes for text (error messages, log values).
func (r *redactor) string(s string) string {
	if r == nil {
		return s
	}
	b := []byte(s)
	if !r.in(b) {
		return s
	}
	out, _ := r.appendRedacted(make([]byte, 0, len(b)), b, true)
	return string(out)
}

// appendRedacted appends src to dst with every secret replaced. Unless
// final, it holds back the end of src that could be the start of a secret
// the next read completes, and returns it as rest (a sub-slice of src).
func (r *redactor) appendRedacted(dst, src []byte, final bool) (out, rest []byte) {
	if r == nil {
		return append(dst, src...), nil
	}
	for {
		at, n := r.first(src)
		if at < 0 {
			break
		}
		dst = append(dst, src[:at]...)
		dst = append(dst, redactedText...)
		src = src[at+n:]
	}
	keep := 0
	if !final {
		keep = r.partial(src)
	}
	return append(dst, src[:len(src)-keep]...), src[len(src)-keep:]
}

// first finds the earliest secret in b, the longest one at a tie; at is -1
// when there is none.
func (r *redactor) first(b []byte) (at, n int) {
	at = -1
	for _, s := range r.secrets {
		if i := bytes.Index(b, s); i >= 0 && (at < 0 || i < at) {
			at, n = i, len(s)
		}
	}
	return at, n
}

// partial is the length of the longest end of b that a secret starts with.
func (r *redactor) partial(b []byte) int {
	best := 0
	for _, s := range r.secrets {
		for k := min(len(s)-1, len(b)); k > best; k-- {
			if b[len(b)-k] == s[0] && bytes.Equal(b[len(b)-k:], s[:k]) {
				best = k
				break
			}
		}
	}
	return best
}
