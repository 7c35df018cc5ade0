package mcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
)

// stdioExitGrace is how long a stdio server gets to exit after its stdin
// closes, and again after SIGTERM, before it is killed (mcp-go's own
// command transport waits alike).
const stdioExitGrace = 2 * time.Second

// stdioProcess is a stdio MCP server run by the gateway rather than by
// mcp-go's command transport: that transport reads the server's stdout a
// whole line at a time with no bound, so a server writing one endless line
// would grow the gateway's memory without limit. Here mcp-go gets the output
// through lineLimit instead.
type stdioProcess struct {
	cmd    *exec.Cmd
	stderr *stderrLog
	log    *slog.Logger
}

// startStdio starts cfg.Command and returns mcp-go's transport over its
// pipes. A line longer than limit ends the transport; onTrip runs first.
// The process runs until the transport closes (stdioTransport.Close), which
// the upstream's supervisor does on shutdown too: a context would kill it
// before it had the chance to exit.
func startStdio(cfg *ServerConfig, limit *atomic.Int64, onTrip func(), log *slog.Logger) (*transport.Stdio, *stdioProcess, error) {
	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Env = append(os.Environ(), cfg.envList()...)
	// mcp-go's transport discarded stderr, where a server that fails to
	// start says why.
	stderr := &stderrLog{log: log}
	cmd.Stderr = stderr
	// A child of the server that keeps stderr open would hold up Wait.
	cmd.WaitDelay = stdioExitGrace
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", cfg.Command[0], err)
	}
	p := &stdioProcess{cmd: cmd, stderr: stderr, log: log}
	tripped := func() {
		// The server may be blocked writing the rest of the line; a closed
		// pipe ends that write rather than the exit grace period.
		_ = stdout.Close()
		onTrip()
	}
	return transport.NewIO(&lineLimit{r: stdout, limit: limit, onTrip: tripped}, stdin, nil), p, nil
}

// stop waits for the server to exit after its stdin was closed, then asks
// it with SIGTERM, then kills it, and reports how it ended. Wait starts
// only here because it closes stdout: earlier, it could drop the last
// messages of a server that answers and exits.
func (p *stdioProcess) stop() {
	exited := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(exited)
	}()
	waitExit := func() bool {
		t := time.NewTimer(stdioExitGrace)
		defer t.Stop()
		select {
		case <-exited:
			return true
		case <-t.C:
			return false
		}
	}
	if waitExit() {
		p.report("")
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if waitExit() {
		p.report("it did not exit when its stdin closed: sent SIGTERM")
		return
	}
	_ = p.cmd.Process.Kill()
	<-exited
	p.report("it did not exit when its stdin closed, nor on SIGTERM: killed")
}

// report logs how the server ended. A clean exit is routine (every
// restart and shutdown ends one); anything else quotes the end of its
// stderr, where a server that fails to start says why.
func (p *stdioProcess) report(forced string) {
	state := p.cmd.ProcessState
	if forced == "" && state.Success() {
		p.log.Debug("mcp stdio server exited", "status", state.String())
		return
	}
	attrs := []any{"status", state.String(), "stderr", p.stderr.tailText()}
	if forced != "" {
		attrs = append(attrs, "stopped", forced)
	}
	p.log.Warn("mcp stdio server exited", attrs...)
}

// stderrTailBytes is how much of a stdio server's stderr the report of its
// exit quotes.
const stderrTailBytes = 2048

// stderrLineBytes bounds one stderr line in the debug log.
const stderrLineBytes = 1024

// stderrLog takes a stdio server's stderr: each line goes to the debug log
// (many servers log there as a matter of course), and the last
// stderrTailBytes are kept for the report of the server's exit.
type stderrLog struct {
	log     *slog.Logger
	mu      sync.Mutex
	tail    []byte
	dropped bool   // tail lost its start
	line    []byte // the current line, its first stderrLineBytes
	long    bool   // the current line is longer
}

func (s *stderrLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tail = append(s.tail, p...)
	if over := len(s.tail) - stderrTailBytes; over > 0 {
		s.tail = append(s.tail[:0], s.tail[over:]...)
		s.dropped = true
	}
	debug := s.log.Enabled(context.Background(), slog.LevelDebug)
	for rest := p; debug && len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		part := rest
		if i >= 0 {
			part = rest[:i]
		}
		room := stderrLineBytes - len(s.line)
		s.line = append(s.line, part[:min(len(part), room)]...)
		s.long = s.long || len(part) > room
		if i < 0 {
			break
		}
		line := s.line
		if s.long {
			line = wholeWords(line, false)
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			s.log.Debug("mcp stdio server stderr", "line", string(line))
		}
		s.line, s.long = s.line[:0], false
		rest = rest[i+1:]
	}
	return len(p), nil
}

// tailText is the end of stderr, from a line's start where one is in it.
func (s *stderrLog) tailText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	tail := s.tail
	if s.dropped {
		if i := bytes.IndexByte(tail, '\n'); i >= 0 {
			tail = tail[i+1:]
		} else {
			tail = wholeWords(tail, true)
		}
	}
	return string(bytes.TrimSpace(tail))
}

// wholeWords drops the word that a cut split, at the start or the end of
// b: the log hides env values only where they appear whole, so a part of
// one must not be left.
func wholeWords(b []byte, cutAtStart bool) []byte {
	if cutAtStart {
		if i := bytes.IndexAny(b, " \t"); i >= 0 {
			return b[i+1:]
		}
		return nil
	}
	if i := bytes.LastIndexAny(b, " \t"); i >= 0 {
		return b[:i]
	}
	return nil
}

// errLineTooLong ends a stdio transport whose server wrote a line (one
// JSON-RPC message) over mcp.max_response_bytes.
var errLineTooLong = errors.New("stdio server wrote a message over mcp.max_response_bytes")

// lineLimit passes a stdio server's output through until a line grows past
// limit bytes (the newline aside), then fails every read. The lines that
// ended before it are still delivered.
type lineLimit struct {
	r      io.Reader
	limit  *atomic.Int64 // mcp.max_response_bytes; Reload changes it in place
	onTrip func()
	run    int64 // bytes of the current line read so far
	err    error
}

func (l *lineLimit) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	limit := l.limit.Load()
	for lineStart := 0; ; {
		i := bytes.IndexByte(p[lineStart:n], '\n')
		end := n // of the current line's bytes in p
		if i >= 0 {
			end = lineStart + i
		}
		l.run += int64(end - lineStart)
		if l.run > limit {
			l.err = errLineTooLong
			l.onTrip()
			if lineStart == 0 {
				return 0, l.err
			}
			return lineStart, nil
		}
		if i < 0 {
			return n, err
		}
		l.run = 0
		lineStart = end + 1
	}
}
