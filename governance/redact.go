package governance

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// RedactedText stands in for a secret in everything the gateway relays,
// records or logs.
const RedactedText = "[redacted]"

// MinSecretLen is the shortest configured value treated as a credential:
// hiding a shorter one (a version "2", a tenant "t1", "json") would garble
// ordinary answers, and no real credential is that short.
const MinSecretLen = 8

// Redactor hides the credentials the gateway sends to one upstream — an API
// key, configured header values — in what that upstream sends back.
// Providers, MCP servers and agents quote what they were sent in errors and
// debug output; the gateway must not pass that on to its clients, spans or
// logs. It is built once per upstream configuration and is safe for
// concurrent use; a nil *Redactor hides nothing. It guards against an
// upstream echoing a credential, not against one set on leaking it: Bytes
// does not recognise a value re-encoded (base64, unusual \u escapes), though
// Escaped finds one written with JSON escapes.
type Redactor struct {
	// secrets are every form a value may take in an answer, longest first
	// so that a secret containing another is replaced whole.
	secrets [][]byte
}

// NewRedactor treats each value of at least MinSecretLen bytes as a secret,
// and for "Bearer <token>" style values the token alone too, since an
// upstream may quote it without its scheme. It returns nil when no value
// qualifies.
func NewRedactor(values ...string) *Redactor {
	forms := map[string]bool{}
	add := func(s string) {
		if len(s) < MinSecretLen {
			return
		}
		// Answers are mostly JSON: a secret holding characters JSON escapes
		// appears escaped there (Go's encoder also escapes <, > and &).
		for _, form := range []string{s, jsonEscaped(s, true), jsonEscaped(s, false)} {
			forms[form] = true
		}
	}
	for _, v := range values {
		add(v)
		if i := strings.LastIndexByte(v, ' '); i >= 0 {
			add(v[i+1:])
		}
	}
	if len(forms) == 0 {
		return nil
	}
	r := &Redactor{}
	for s := range forms {
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

// Contains reports whether b holds any secret.
func (r *Redactor) Contains(b []byte) bool {
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

// Bytes returns b with every secret replaced: b itself, not a copy, when it
// holds none, so the common case costs a few substring scans.
func (r *Redactor) Bytes(b []byte) []byte {
	if !r.Contains(b) {
		return b
	}
	out, _ := r.AppendStream(make([]byte, 0, len(b)), b, true)
	return out
}

// String is Bytes for text (error messages, log values).
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	b := []byte(s)
	if !r.Contains(b) {
		return s
	}
	out, _ := r.AppendStream(make([]byte, 0, len(b)), b, true)
	return string(out)
}

// Error returns err with its message redacted; errors.Is and errors.As
// still see the original error.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := r.String(msg); red != msg {
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

// AppendStream appends src to dst with every secret replaced, for a body
// read piece by piece. Unless final, it holds back the end of src that could
// be the start of a secret the next piece completes, and returns it as rest
// (a sub-slice of src) to be passed in again in front of the next piece.
func (r *Redactor) AppendStream(dst, src []byte, final bool) (out, rest []byte) {
	if r == nil {
		return append(dst, src...), nil
	}
	for {
		at, n := r.first(src)
		if at < 0 {
			break
		}
		dst = append(dst, src[:at]...)
		dst = append(dst, RedactedText...)
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
func (r *Redactor) first(b []byte) (at, n int) {
	at = -1
	for _, s := range r.secrets {
		if i := bytes.Index(b, s); i >= 0 && (at < 0 || i < at) {
			at, n = i, len(s)
		}
	}
	return at, n
}

// partial is the length of the longest end of b that a secret starts with.
func (r *Redactor) partial(b []byte) int {
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

// Escaped reports whether b, JSON or text holding JSON (an SSE event), has
// a string literal that holds a secret once its escapes are decoded: one
// written \u0073\u006b... passes Bytes untouched, yet a client's JSON decoder
// reads the secret out of it. Run on what Bytes returned, it tells a caller
// not to relay b.
// Only literals with a backslash are decoded, so text without one costs a
// single scan.
func (r *Redactor) Escaped(b []byte) bool {
	if r == nil || bytes.IndexByte(b, '\\') < 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		end, escaped := i+1, false
		for end < len(b) && b[end] != '"' {
			if b[end] == '\\' {
				escaped = true
				end++
			}
			end++
		}
		if end >= len(b) {
			return false
		}
		var s string
		if escaped && json.Unmarshal(b[i:end+1], &s) == nil && r.Contains([]byte(s)) {
			return true
		}
		i = end
	}
	return false
}

// JSON is Bytes for one JSON value relayed as bytes (an MCP result, a
// JSON-RPC message): a secret it quotes in JSON escapes, which Bytes leaves,
// is caught by decoding the value and encoding it again, escapes gone,
// before Bytes runs once more. Only that rare value pays the round trip (and
// has its object keys sorted); b that does not decode is returned as Bytes
// leaves it, since no client can read a secret out of it either.
func (r *Redactor) JSON(b []byte) []byte {
	b = r.Bytes(b)
	if !r.Escaped(b) {
		return b
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return b
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return b
	}
	return r.Bytes(plain)
}
