package mcp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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
type stdioProcess struct{ cmd *exec.Cmd }

// startStdio starts cfg.Command and returns mcp-go's transport over its
// pipes. A line longer than limit ends the transport; onTrip runs first.
// The process runs until the transport closes (stdioTransport.Close), which
// the upstream's supervisor does on shutdown too: a context would kill it
// before it had the chance to exit.
func startStdio(cfg *ServerConfig, limit *atomic.Int64, onTrip func()) (*transport.Stdio, *stdioProcess, error) {
	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Env = append(os.Environ(), cfg.envList()...)
	// stderr goes to /dev/null (cmd.Stderr nil), as mcp-go's transport
	// discarded it: a pipe nobody reads would block the server once full.
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
	p := &stdioProcess{cmd: cmd}
	tripped := func() {
		// The server may be blocked writing the rest of the line; a closed
		// pipe ends that write rather than the exit grace period.
		_ = stdout.Close()
		onTrip()
	}
	return transport.NewIO(&lineLimit{r: stdout, limit: limit, onTrip: tripped}, stdin, nil), p, nil
}

// stop waits for the server to exit after its stdin was closed, then asks
// it with SIGTERM, then kills it. Wait starts only here because it closes
// stdout: earlier, it could drop the last messages of a server that answers
// and exits.
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
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if waitExit() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-exited
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
