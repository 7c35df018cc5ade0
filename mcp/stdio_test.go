package mcp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/switchboard-gw/switchboard/trace"
)

// lineLimit delivers every line up to the limit, in reads of any size, and
// fails at the first line past it without handing on more of it than the
// read that crossed the limit.
func TestLineLimit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		limit    int64
		lines    []string // what a line reader gets before the error
		tripped  bool
	}{
		{"under", "ab\ncd\n", 2, []string{"ab\n", "cd\n"}, false},
		{"empty lines", "\n\n\n", 0, []string{"\n", "\n", "\n"}, false},
		{"unterminated at EOF", "ab\ncd", 2, []string{"ab\n", "cd"}, false},
		{"first line over", "abc\nd\n", 2, nil, true},
		{"later line over", "ab\ncde\nf\n", 2, []string{"ab\n"}, true},
		{"over without newline", "ab\n" + strings.Repeat("x", 100), 10, []string{"ab\n"}, true},
		{"exactly the limit", strings.Repeat("x", 10) + "\n", 10, []string{strings.Repeat("x", 10) + "\n"}, false},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for _, tc := range cases {
		for rname, wrap := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				t.Parallel()
				var limit atomic.Int64
				limit.Store(tc.limit)
				trips := 0
				br := bufio.NewReader(&lineLimit{r: wrap(strings.NewReader(tc.in)), limit: &limit, onTrip: func() { trips++ }})
				var got []string
				var err error
				for {
					var line string
					line, err = br.ReadString('\n')
					if err != nil {
						if err == io.EOF && line != "" {
							got = append(got, line)
						}
						break
					}
					got = append(got, line)
				}
				if strings.Join(got, "|") != strings.Join(tc.lines, "|") {
					t.Fatalf("lines %q, want %q", got, tc.lines)
				}
				if tc.tripped != errors.Is(err, errLineTooLong) || tc.tripped != (trips == 1) {
					t.Fatalf("err %v after %d trips, tripped want %v", err, trips, tc.tripped)
				}
			})
		}
	}
}

// A stdio server that answers with a line over mcp.max_response_bytes fails
// that call as a tool error that says so, and is restarted: the next call
// works. Before the limit was in place the gateway read such a line whole,
// however long.
func TestStdioAnswerOverLimitFailsTheCall(t *testing.T) {
	t.Parallel()
	const limit = 64 << 10
	e := start(t, func(c *Config) {
		c.MaxResponseBytes = limit
		c.Servers = append(c.Servers, ServerConfig{Name: "pad", Command: []string{mockBin, "mcp", "--stdio", "--tools", "add,pad"},
			Timeout: 10 * time.Second})
	})
	e.waitTools(t, func(names []string) bool { return slices.Contains(names, "pad__pad") })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20260728)

	res, err := callTool(ctx, cli, "pad__pad", map[string]any{"bytes": limit / 2})
	// The mock adds a line with the trace context.
	if err != nil || res.IsError || !strings.HasPrefix(resultText(res), strings.Repeat("x", limit/2)+"\n") {
		t.Fatalf("pad under the limit = %d bytes of text (error %v), %v", len(resultText(res)), res.IsError, err)
	}
	want := "MCP server pad answered more than 65536 bytes"
	res, err = callTool(ctx, cli, "pad__pad", map[string]any{"bytes": 4 * limit})
	if err != nil || !res.IsError || resultText(res) != want {
		t.Fatalf("pad over the limit = %+v, %v; want the tool error %q", res, err, want)
	}
	eventually(t, 10*time.Second, func() bool {
		_, ok := e.spans.find(func(s trace.Span) bool { return s.ToolServer == "pad" && s.Tool == "pad" && s.Error == want })
		return ok
	}, "the failed call's span, with its error")
	eventually(t, 20*time.Second, func() bool {
		res, err := callTool(ctx, cli, "pad__add", map[string]any{"a": 1, "b": 2})
		return err == nil && !res.IsError && strings.HasPrefix(resultText(res), "3\n")
	}, "a healthy call after the server was restarted")
}

// How a stdio server ended is in the log: its exit status, how it was
// stopped when it did not go on its own, and the end of its stderr, with
// its env values hidden. Every stderr line is in the debug log as well.
func TestStdioExitIsReported(t *testing.T) {
	t.Parallel()
	const token = "tok-secret-12345678"
	cases := []struct {
		name, script      string
		status, stopped   string
		stderr, debugLine string
	}{
		{
			name:   "fails to start",
			script: `echo starting >&2; echo "fatal: token $TOKEN rejected" >&2; exit 3`,
			status: "exit status 3", stderr: "starting\nfatal: token [redacted] rejected", debugLine: "starting",
		},
		{
			// It never answers initialize, and outlives its stdin.
			name:   "ignores its stdin closing",
			script: `echo "waiting with $TOKEN" >&2; exec sleep 60`,
			status: "signal: terminated", stopped: "it did not exit when its stdin closed: sent SIGTERM",
			stderr: "waiting with [redacted]", debugLine: "waiting with [redacted]",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			rec, err := trace.NewRecorder(trace.RecorderConfig{SpillDir: t.TempDir()}, &spanSink{}, nil, quietLogger())
			if err != nil {
				t.Fatal(err)
			}
			gw, err := New(Config{Servers: []ServerConfig{{Name: "broken", Command: []string{"sh", "-c", tc.script},
				Env: map[string]string{"TOKEN": token}, Timeout: time.Second}}},
				Deps{Governor: newGovernor(t), Tracer: trace.NewTracer(rec), Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = gw.Close()
				_ = rec.Close(context.Background())
			})
			records := func() []map[string]any {
				var out []map[string]any
				for _, line := range strings.Split(logs.String(), "\n") {
					var rec map[string]any
					if json.Unmarshal([]byte(line), &rec) == nil && rec["mcp_server"] == "broken" {
						out = append(out, rec)
					}
				}
				return out
			}
			var exit map[string]any
			eventually(t, 15*time.Second, func() bool {
				for _, rec := range records() {
					if rec["msg"] == "mcp stdio server exited" {
						exit = rec
						return true
					}
				}
				return false
			}, "the report of the server's exit")
			if exit["level"] != "WARN" || exit["status"] != tc.status || exit["stderr"] != tc.stderr || (exit["stopped"] != nil) != (tc.stopped != "") ||
				(tc.stopped != "" && exit["stopped"] != tc.stopped) {
				t.Fatalf("exit report %v; want WARN, status %q, stderr %q, stopped %q", exit, tc.status, tc.stderr, tc.stopped)
			}
			if !slices.ContainsFunc(records(), func(rec map[string]any) bool {
				return rec["msg"] == "mcp stdio server stderr" && rec["level"] == "DEBUG" && rec["line"] == tc.debugLine
			}) {
				t.Fatalf("no debug record of the stderr line %q in:\n%s", tc.debugLine, logs.String())
			}
			if strings.Contains(logs.String(), token) {
				t.Fatalf("the env value reached the log:\n%s", logs.String())
			}
		})
	}
}

// stderrLog logs each line (its first stderrLineBytes) and keeps the last
// stderrTailBytes; a cut never leaves part of a word, which could be part
// of a secret the log would otherwise hide.
func TestStderrLog(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("w ", stderrLineBytes/2-1) + "SECRETVALUE\n" // the cut falls in SECRETVALUE
	cases := []struct {
		name   string
		writes []string
		lines  []string
		tail   string
	}{
		{"lines", []string{"starting\n", "fatal: no\n"}, []string{"starting", "fatal: no"}, "starting\nfatal: no"},
		{"split writes", []string{"sta", "rting\nfat", "al\n"}, []string{"starting", "fatal"}, "starting\nfatal"},
		{"blank lines", []string{"\n  \nx\n"}, []string{"x"}, "x"},
		{"unterminated", []string{"a\nb"}, []string{"a"}, "a\nb"},
		{"long line", []string{long}, []string{strings.TrimSpace(strings.Repeat("w ", stderrLineBytes/2-1))}, strings.TrimSpace(long)},
		{"tail from a line start", []string{strings.Repeat("x", stderrTailBytes) + "\nlast words\n"}, nil, "last words"},
		{"tail from a word start", []string{strings.Repeat("x", stderrTailBytes) + " last words"}, nil, "last words"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			s := &stderrLog{log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			for _, w := range tc.writes {
				if n, err := s.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var rec struct{ Msg, Line string }
				if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "mcp stdio server stderr" {
					lines = append(lines, rec.Line)
				}
			}
			if tc.lines != nil && !slices.Equal(lines, tc.lines) {
				t.Fatalf("logged lines %q, want %q", lines, tc.lines)
			}
			if got := s.tailText(); got != tc.tail {
				t.Fatalf("tail %q, want %q", got, tc.tail)
			}
		})
	}
}
