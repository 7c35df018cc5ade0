package governance

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

const redactTestSecret = "Bearer tok-0123456789abcdef"

func TestRedactorReplacesEveryConfiguredSecret(t *testing.T) {
	t.Parallel()
	r := NewRedactor(redactTestSecret, "t1", "k<ey>&0123")
	tests := []struct {
		name, in, want string
	}{
		{"no secret", `{"text":"hello"}`, `{"text":"hello"}`},
		{"whole value", "token " + redactTestSecret + " rejected", "token [redacted] rejected"},
		{"credential without its scheme", "tok-0123456789abcdef!", "[redacted]!"},
		{"twice", redactTestSecret + redactTestSecret, "[redacted][redacted]"},
		{"in JSON", `["tok-0123456789abcdef","tok-0123456789abcdef"]`, `["[redacted]","[redacted]"]`},
		{"short values are not secrets", "tenant t1", "tenant t1"},
		{"raw form of a value JSON escapes", `{"t":"k<ey>&0123"}`, `{"t":"[redacted]"}`},
		{"HTML-escaped JSON form", `"k\u003cey\u003e\u00260123"`, `"[redacted]"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := r.String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
			got := r.Bytes([]byte(tt.in))
			if string(got) != tt.want {
				t.Errorf("Bytes(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if json.Valid([]byte(tt.in)) && !json.Valid(got) {
				t.Errorf("redacted %s is no longer JSON", got)
			}
		})
	}
}

func TestRedactorWithoutSecretsCopiesNothing(t *testing.T) {
	t.Parallel()
	for _, r := range []*Redactor{nil, NewRedactor("t1"), NewRedactor(redactTestSecret)} {
		in := []byte(`{"jsonrpc":"2.0","result":{}}`)
		if out := r.Bytes(in); &out[0] != &in[0] {
			t.Errorf("redactor %v copied a body without secrets", r)
		}
	}
	if NewRedactor("t1", "json", "") != nil {
		t.Error("short values made a redactor")
	}
	var none *Redactor
	if none.String(redactTestSecret) != redactTestSecret || none.Contains([]byte(redactTestSecret)) {
		t.Error("a nil redactor changed its input")
	}
}

func TestRedactorKeepsErrorKinds(t *testing.T) {
	t.Parallel()
	r := NewRedactor(redactTestSecret)
	err := r.Error(fmt.Errorf("invalid token tok-0123456789abcdef: %w", io.ErrUnexpectedEOF))
	if strings.Contains(err.Error(), "tok-0123456789abcdef") || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error = %v (is the cause: %v)", err, errors.Is(err, io.ErrUnexpectedEOF))
	}
	plain := errors.New("nothing secret")
	if r.Error(plain) != plain || r.Error(nil) != nil {
		t.Fatal("an error without secrets was wrapped")
	}
}

// A body read in pieces is redacted even when a secret is split between two
// reads, and everything else is passed on as soon as it cannot be one.
func TestRedactorAppendStreamAcrossPieces(t *testing.T) {
	t.Parallel()
	r := NewRedactor(redactTestSecret)
	body := `data: {"error":"tok-0123456789abcdef is wrong"}` + "\n\n" + `data: {"n":"tok-0123"}` + "\n\n"
	for _, size := range []int{1, 3, 7, 16, len(body)} {
		var out, held []byte
		for i := 0; i < len(body); i += size {
			piece := body[i:min(i+size, len(body))]
			var rest []byte
			out, rest = r.AppendStream(out, append(held, piece...), i+size >= len(body))
			held = append([]byte(nil), rest...)
		}
		want := `data: {"error":"[redacted] is wrong"}` + "\n\n" + `data: {"n":"tok-0123"}` + "\n\n"
		if string(out) != want {
			t.Errorf("pieces of %d bytes: %q, want %q", size, out, want)
		}
	}
	out, rest := r.AppendStream(nil, []byte("event one\n\nnext tok-01"), false)
	if string(out) != "event one\n\nnext " || string(rest) != "tok-01" {
		t.Errorf("held back %q after %q: only a possible secret's start may wait", rest, out)
	}
}

// BenchmarkRedactorNoSecret is the check every relayed answer of an upstream
// with configured credentials pays when it holds none.
func BenchmarkRedactorNoSecret(b *testing.B) {
	r := NewRedactor(redactTestSecret, "k-0123456789abcdef")
	for _, size := range []int{64, 64 << 10} {
		body := []byte(`{"jsonrpc":"2.0","id":"sb-relay-1","result":{"content":[{"type":"text","text":"` +
			strings.Repeat("x", size) + `"}]}}`)
		b.Run(fmt.Sprintf("text-%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if out := r.Bytes(body); len(out) != len(body) {
					b.Fatal("changed")
				}
			}
		})
	}
}

// Escaped finds a secret that only JSON decoding reveals, in JSON or in an
// SSE event holding JSON, and nothing in text whose literals hold none.
func TestRedactorEscaped(t *testing.T) {
	t.Parallel()
	r := NewRedactor("Bearer sk-live-0123456789")
	for _, tc := range []struct {
		name string
		in   string
		want bool
	}{
		{"every character escaped", `{"error":{"message":"bad key \u0073\u006b\u002d\u006c\u0069\u0076\u0065\u002d\u0030\u0031\u0032\u0033\u0034\u0035\u0036\u0037\u0038\u0039"}}`, true},
		{"one character escaped", `{"m":"sk\u002dlive-0123456789"}`, true},
		{"escaped solidus", `{"m":"sk-live-01234\/56789"}`, false},
		{"in an SSE event", "event: error\ndata: {\"m\":\"x sk-live\\u002d0123456789\"}\n\n", true},
		{"in a key", `{"sk\u002dlive-0123456789":1}`, true},
		{"escapes, no secret", `{"m":"line\nnext \u00e9 \"quoted\""}`, false},
		{"redacted already", `{"m":"key [redacted] \n"}`, false},
		{"no backslash", `{"m":"sk-live-0123456789"}`, false},
		{"unterminated", `{"m":"sk\u002dlive-0123456789`, false},
		{"not JSON", `sk\u002dlive-0123456789`, false},
	} {
		if got := r.Escaped([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: Escaped(%s) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
	if (*Redactor)(nil).Escaped([]byte(`{"m":"\u0041"}`)) {
		t.Error("a nil Redactor found a secret")
	}
}

// JSON hides a secret quoted in escapes by encoding the value again, keeping
// its numbers exact, and leaves a value without one byte for byte.
func TestRedactorJSON(t *testing.T) {
	t.Parallel()
	r := NewRedactor("Bearer sk-live-0123456789")
	for _, tc := range []struct{ name, in, want string }{
		{"escaped", `{"id":12345678901234567890,"m":"key \u0073k-live-0123456789","n":1.50}`,
			`{"id":12345678901234567890,"m":"key [redacted]","n":1.50}`},
		{"plain", `{"m":"key sk-live-0123456789\n"}`, `{"m":"key [redacted]\n"}`},
		{"no secret, escapes kept", `{"z":1,"a":"line\nnext \u00e9"}`, `{"z":1,"a":"line\nnext \u00e9"}`},
		{"not JSON", `"\u0073k-live-0123456789`, `"\u0073k-live-0123456789`},
	} {
		if got := string(r.JSON([]byte(tc.in))); got != tc.want {
			t.Errorf("%s: JSON(%s) = %s, want %s", tc.name, tc.in, got, tc.want)
		}
	}
}
