package mock

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

var (
	// errStreamAborted breaks the chunked framing on purpose: fasthttp closes
	// the connection without the terminating chunk, as a crashed upstream would.
	errStreamAborted = errors.New("mock: stream aborted by x-mock-fail-after")
	errShuttingDown  = errors.New("mock: server shutting down")
)

// sseEvent is one pre-rendered SSE event; paced events wait one token
// interval before they are sent.
type sseEvent struct {
	data  []byte
	paced bool
}

// eventStream is the response body of a streamed reply. fasthttp writes and
// flushes one chunk per Read, so every event reaches the client on its own.
type eventStream struct {
	events    []sseEvent
	interval  time.Duration
	failAfter int // events to send before dropping the connection; -1: never
	done      <-chan struct{}

	next    int
	pending []byte
}

func (s *eventStream) Read(p []byte) (int, error) {
	if len(s.pending) == 0 {
		if s.failAfter >= 0 && s.next >= s.failAfter {
			return 0, errStreamAborted
		}
		if s.next == len(s.events) {
			return 0, io.EOF
		}
		ev := s.events[s.next]
		if ev.paced && !sleepCtx(s.done, s.interval) {
			return 0, errShuttingDown
		}
		s.pending = ev.data
		s.next++
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

func startStream(ctx *fasthttp.RequestCtx, s *eventStream) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/event-stream; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBodyStream(s, -1)
}

// countTokens is the mock's tokenizer: one token per whitespace-separated
// word, so tests can predict usage exactly.
func countTokens(s string) int { return len(strings.Fields(s)) }

// truncateWords applies max_tokens (limit < 0: none) and names the finish
// reason OpenAI would give.
func truncateWords(words []string, limit int) ([]string, string) {
	if limit >= 0 && len(words) > limit {
		return words[:limit], "length"
	}
	return words, "stop"
}

func splitEvery(s string, n int) []string {
	var out []string
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

// contentText flattens a message content that is either a string or an
// array of parts (OpenAI text parts, Anthropic text and tool_result blocks).
func contentText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '[':
		var parts []struct {
			Text    string          `json:"text"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(raw, &parts) != nil {
			return ""
		}
		texts := make([]string, 0, len(parts))
		for _, p := range parts {
			if p.Text != "" {
				texts = append(texts, p.Text)
			} else if len(p.Content) > 0 {
				texts = append(texts, contentText(p.Content))
			}
		}
		return strings.Join(texts, " ")
	}
	return ""
}

// argumentsFor builds tool-call arguments that satisfy the property types
// of a JSON schema, so a client can decode them into its own types.
func argumentsFor(schema json.RawMessage) string {
	var s struct {
		Properties map[string]struct {
			Type any `json:"type"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(schema, &s)
	args := make(map[string]any, len(s.Properties))
	for name, p := range s.Properties {
		typ, _ := p.Type.(string)
		switch typ {
		case "integer", "number":
			args[name] = 1
		case "boolean":
			args[name] = true
		case "array":
			args[name] = []any{}
		case "object":
			args[name] = map[string]any{}
		default:
			args[name] = "mock"
		}
	}
	b, _ := json.Marshal(args)
	return string(b)
}

// appendJSONString appends s as a JSON string literal; invalid UTF-8 becomes
// U+FFFD as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
