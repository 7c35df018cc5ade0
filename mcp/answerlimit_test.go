package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

func TestIsEventStream(t *testing.T) {
	t.Parallel()
	for ct, want := range map[string]bool{
		"text/event-stream": true, "Text/Event-Stream; charset=utf-8": true, " text/event-stream ;x=y": true,
		"application/json": false, "text/event-streams": false, "": false, "text/event": false,
	} {
		if got := isEventStream(ct); got != want {
			t.Errorf("isEventStream(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestConfigValidateMaxResponseBytes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		value int64
		want  string // error text, "" for valid
		eff   int64  // the value in effect
	}{
		{"default", 0, "", DefaultMaxResponseBytes},
		{"set", 1 << 20, "", 1 << 20},
		{"negative", -1, "mcp.max_response_bytes: must not be negative", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{MaxResponseBytes: tc.value}
			err := cfg.Validate()
			if tc.want != "" {
				if err == nil || err.Error() != tc.want {
					t.Fatalf("Validate = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.withDefaults().MaxResponseBytes; got != tc.eff {
				t.Fatalf("max_response_bytes in effect = %d, want %d", got, tc.eff)
			}
		})
	}
}

// limitedBody counts a JSON body whole and an event stream per event, with
// events ended by blank lines of any line ending, however the reads split.
func TestLimitedBody(t *testing.T) {
	t.Parallel()
	event := "data: " + strings.Repeat("x", 20) + "\n\n" // 28 bytes
	cases := []struct {
		name   string
		body   string
		stream bool
		limit  int64
		over   bool
	}{
		{name: "json within", body: strings.Repeat("x", 100), limit: 100},
		{name: "json over", body: strings.Repeat("x", 101), limit: 100, over: true},
		{name: "events each within", body: strings.Repeat(event, 50), stream: true, limit: 30},
		{name: "one event over", body: event + "data: " + strings.Repeat("x", 40) + "\n\n", stream: true, limit: 30, over: true},
		{name: "multi-line event over", body: "data: 0123456789\ndata: 0123456789\n\n", stream: true, limit: 30, over: true},
		{name: "crlf events within", body: strings.Repeat("data: 0123456789\r\n\r\n", 10), stream: true, limit: 20},
		{name: "cr events within", body: strings.Repeat("data: 0123456789\r\r", 10), stream: true, limit: 20},
		{name: "crlf lines are one event", body: "data: 0123456789\r\ndata: 0123456789\r\n\r\n", stream: true, limit: 30, over: true},
		{name: "unterminated event over", body: "data: " + strings.Repeat("x", 40), stream: true, limit: 30, over: true},
	}
	for _, tc := range cases {
		for _, split := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/one-byte-reads=%v", tc.name, split), func(t *testing.T) {
				t.Parallel()
				var src io.Reader = strings.NewReader(tc.body)
				if split {
					src = iotest.OneByteReader(src)
				}
				var trips atomic.Uint64
				b := &limitedBody{rc: io.NopCloser(src), limit: tc.limit, stream: tc.stream, trips: &trips}
				_, err := io.ReadAll(b)
				var big *responseTooLargeError
				if got := errors.As(err, &big); got != tc.over || (trips.Load() == 1) != tc.over {
					t.Fatalf("read error %v, trips %d; want over=%v", err, trips.Load(), tc.over)
				}
				if tc.over {
					if _, err := b.Read(make([]byte, 8)); !errors.As(err, &big) {
						t.Fatalf("read after the limit = %v", err)
					}
				}
			})
		}
	}
}

// An upstream answer over mcp.max_response_bytes fails the call as a tool
// error that says so, the span records it, and the next call to the same
// server works. Over Streamable HTTP (the relay) the answer is a 17 MiB JSON
// body, or a 17 MiB notification event on the call's SSE stream; over legacy
// SSE (mcp-go's client) the result is itself a 17 MiB event on the session's
// stream.
func TestOversizedAnswerFailsTheCall(t *testing.T) {
	t.Parallel()
	servers := map[string][]string{TransportStreamableHTTP: {"big", "big_event"}, TransportSSE: {"big"}}
	e := start(t, func(c *Config) {
		for tr := range servers {
			c.Servers = append(c.Servers, ServerConfig{Name: "big-" + strings.ReplaceAll(tr, "_", "-"),
				URL: echoingUpstream(t, tr), Transport: tr, Timeout: 30 * time.Second})
		}
	})
	e.waitTools(t, func(names []string) bool {
		return slices.Contains(names, "big-streamable-http__big") && slices.Contains(names, "big-sse__big")
	})
	const size = 17 << 20
	want := "answered more than 16777216 bytes"
	for tr, tools := range servers {
		name := "big-" + strings.ReplaceAll(tr, "_", "-")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Producing 17 MiB takes the upstream seconds under -race.
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)
			for _, tool := range tools {
				res, err := callTool(ctx, cli, name+nameSeparator+tool, map[string]any{"bytes": size})
				if err != nil || !res.IsError || resultText(res) != "MCP server "+name+" "+want {
					t.Fatalf("%s = %+v, %v; want the tool error %q", tool, res, err, want)
				}
				if sp := e.spanOf(t, name, tool); sp.Error != "MCP server "+name+" "+want {
					t.Fatalf("%s span error %q", tool, sp.Error)
				}
				// Over the relay the session survives; a legacy SSE
				// upstream whose event stream was cut reconnects first.
				eventually(t, 10*time.Second, func() bool {
					res, err := callTool(ctx, cli, name+"__add", map[string]any{"a": 1, "b": 2})
					ok := err == nil && !res.IsError && resultText(res) == "3"
					if !ok && tr == TransportStreamableHTTP {
						t.Fatalf("add after %s = %+v, %v", tool, res, err)
					}
					return ok
				}, "a healthy call after "+tool)
			}
		})
	}
}
