package llm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
	"github.com/valyala/fasthttp"
)

// upstreamClient sends requests to providers with one pooled fasthttp client.
type upstreamClient struct {
	hc *fasthttp.Client
	// maxResponse is hc's MaxResponseBodySize, fixed for hc's lifetime: a
	// reload that changes router.max_response_bytes builds a new client.
	maxResponse int
	// conns finds the connection under a streamed response: fasthttp keeps
	// the header deadline on the connection for the whole body, so a stream
	// clears it and runs its own idle-gap timer instead.
	conns sync.Map // connKey -> *trackedConn
}

type connKey struct{ local, remote string }

type trackedConn struct {
	net.Conn
	owner *upstreamClient
	key   connKey
	once  sync.Once
	// answered is set by a read and cleared by the next write: a write that finds it set starts a request on a
	// pooled keep-alive connection, which the upstream may have closed while it sat idle since answeredAt.
	answered   bool
	answeredAt time.Time
	probe      peerProbe
}

// staleAfter is how long a pooled connection sits idle before a request on it first checks that the upstream has
// not closed it. Servers close idle connections after seconds (gunicorn 2 s, uvicorn and Node.js 5 s), and the
// check is a system call, which a connection busy with back-to-back calls should not pay for each of them.
const staleAfter = time.Second

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.answered {
		c.answered, c.answeredAt = true, time.Now()
	}
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	if c.answered {
		c.answered = false
		if time.Since(c.answeredAt) >= staleAfter && c.probe.closed() {
			return 0, errStaleConn
		}
	}
	return c.Conn.Write(b)
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.owner.conns.Delete(c.key) })
	return c.Conn.Close()
}

// errStaleConn is a pooled connection its upstream closed while it was idle, found before any byte of the
// request was written: sending the request on another connection cannot run it twice. Servers close idle
// connections after a few seconds (uvicorn, so vLLM, and Node.js after 5 s), so after a burst of parallel calls,
// such as Claude Code's context count, every idle connection of the pool is stale at once.
var errStaleConn = errors.New("pooled upstream connection was closed by the upstream")

// maxConnsPerHost bounds the connections to one upstream host.
const maxConnsPerHost = 4096

func newUpstreamClient(maxResponse int) *upstreamClient {
	u := &upstreamClient{maxResponse: maxResponse}
	u.hc = &fasthttp.Client{
		MaxResponseBodySize:      maxResponse,
		NoDefaultUserAgentHeader: true,
		MaxConnsPerHost:          maxConnsPerHost,
		MaxConnWaitTimeout:       5 * time.Second,
		MaxIdleConnDuration:      30 * time.Second,
		ReadBufferSize:           16 << 10,
		// Enough to go through a whole pool of stale connections, each
		// refused before it was written to, and still dial a new one.
		MaxIdemponentCallAttempts: maxConnsPerHost + 2,
		// A stale pooled keep-alive connection fails before the upstream saw
		// the request; only that case is safe to resend a POST for. One the
		// probe missed (closed as the request went out) shows as an EOF.
		RetryIfErr: func(_ *fasthttp.Request, attempts int, err error) (bool, bool) {
			if errors.Is(err, errStaleConn) {
				return false, true
			}
			return false, attempts < 2 && (errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed))
		},
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			c, err := fasthttp.DialTimeout(addr, timeout)
			if err != nil {
				return nil, err
			}
			tc := &trackedConn{Conn: c, owner: u, key: connKey{c.LocalAddr().String(), c.RemoteAddr().String()}}
			tc.probe.init(c)
			u.conns.Store(tc.key, tc)
			return tc, nil
		},
	}
	return u
}

// upstreamRequest is one HTTP call to a deployment.
type upstreamRequest struct {
	url      string
	body     []byte
	headers  [][2]string
	stream   bool
	deadline time.Time
	trace    trace.SpanContext // sent as traceparent when valid
	// ends, a stream's context (nil for other calls), ends the wait for the upstream's headers when the gateway
	// cancels it with a cause of its own (to shut down); its deadline is already in deadline.
	ends context.Context
}

// send performs the call. For streams the returned response's body is
// unread and its connection has no read deadline; the caller must close it
// through openStream.
//
// An *endedError means r.ends was ended while the upstream had not answered: the call is abandoned to a
// goroutine of its own, which still holds r.body until the upstream answers or r.deadline passes.
func (u *upstreamClient) send(r upstreamRequest) (*fasthttp.Response, error) {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI(r.url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if r.stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	for _, h := range r.headers {
		req.Header.Set(h[0], h[1])
	}
	if r.trace.IsValid() {
		var tp [trace.TraceparentLen]byte
		req.Header.SetBytesV(trace.HeaderTraceparent, r.trace.AppendTraceparent(tp[:0]))
	}
	req.SetBodyRaw(r.body)
	resp := fasthttp.AcquireResponse()
	resp.StreamBody = r.stream
	var err error
	if r.ends == nil || r.ends.Done() == nil {
		err = u.hc.DoDeadline(req, resp, r.deadline)
	} else {
		// Apart, so that what its goroutines capture is moved to the heap for watched streams only.
		err = u.doWatched(req, resp, r.deadline, r.ends)
	}
	if err != nil {
		var ended *endedError
		if !errors.As(err, &ended) {
			fasthttp.ReleaseRequest(req)
			fasthttp.ReleaseResponse(resp)
		}
		return nil, err
	}
	fasthttp.ReleaseRequest(req)
	// An error reply is read under the header deadline; only a stream that
	// is really flowing runs on the idle-gap timer alone.
	if r.stream && resp.StatusCode() >= 200 && resp.StatusCode() < 300 {
		u.clearReadDeadline(resp)
	}
	return resp, nil
}

// doWatched runs the call until the upstream answers, deadline passes or ends is ended with a cause of the
// gateway's. fasthttp cannot cancel a call in flight, so in the last case the call runs on in a goroutine that
// drops the upstream's answer and releases req and resp: a shutdown must not wait router.timeout for headers.
func (u *upstreamClient) doWatched(req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time, ends context.Context) error {
	if err := endedBefore(ends); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- u.hc.DoDeadline(req, resp, deadline) }()
	select {
	case err := <-done:
		return err
	case <-ends.Done():
	}
	if err := endedBefore(ends); err != nil {
		go func() {
			if <-done == nil {
				// Dropping the connection tells the upstream nobody reads its answer any more.
				if rc, ok := resp.BodyStream().(fasthttp.ReadCloserWithError); ok {
					_ = rc.CloseWithError(err)
				} else {
					_ = resp.CloseBodyStream()
				}
			}
			fasthttp.ReleaseResponse(resp)
			fasthttp.ReleaseRequest(req)
		}()
		return err
	}
	// The stream's deadline is deadline too: DoDeadline times out at the same moment.
	return <-done
}

// endedBefore tells whether a stream's context was ended for a reason of the gateway's other than its
// deadline, which the caller handles as server.max_stream_duration.
func endedBefore(ends context.Context) error {
	cause := context.Cause(ends)
	if cause == nil || errors.Is(cause, context.DeadlineExceeded) {
		return nil
	}
	return &endedError{cause}
}

func (u *upstreamClient) clearReadDeadline(resp *fasthttp.Response) {
	l, r := resp.LocalAddr(), resp.RemoteAddr()
	if l == nil || r == nil {
		return
	}
	if v, ok := u.conns.Load(connKey{l.String(), r.String()}); ok {
		_ = v.(*trackedConn).SetReadDeadline(time.Time{})
	}
}

var (
	errStreamIdle      = errors.New("upstream stream stalled")
	errStreamTruncated = errors.New("upstream stream ended without its terminal event")
	errClientGone      = errors.New("client went away")
	// errStreamDuration is the gateway's own limit (server.max_stream_duration), never the upstream's fault.
	errStreamDuration = errors.New("stream exceeded the gateway's maximum stream duration")
	errEventTooLarge  = errors.New("upstream event larger than router.max_response_bytes")
	// errUnreadableEvent wraps what the stream's translator found wrong with an event, told to the client as is:
	// it is the upstream's output, not its connection, that failed.
	errUnreadableEvent = errors.New("upstream sent an unreadable event")
)

// endedError is a stream the gateway ended before its time (to shut down): cause, its stream context's, says why.
type endedError struct{ cause error }

func (e *endedError) Error() string { return e.cause.Error() }

// apiError is what the client sees: 503, as the gateway is going away, not the upstream failing.
func (e *endedError) apiError() *apiError {
	return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "stream_ended", message: e.Error()}
}

// upstreamStream reads a streamed upstream body event by event, with an
// idle-gap timeout and an optional context that ends the whole stream, and
// feeds the events through a translator.
type upstreamStream struct {
	resp    *fasthttp.Response
	body    io.Reader
	idle    time.Duration
	timer   *time.Timer
	unlimit func() bool // stops watching the stream's context; nil without one
	tr      streamTranslator
	buf     []byte
	bufp    *[]byte // buf's pool entry
	split   sseSplitter
	// maxEvent bounds the bytes of one event still waiting for its end.
	maxEvent int
	secrets  *governance.Redactor // the deployment's, hidden in the error events relayed

	mu       sync.Mutex
	closed   bool
	timedOut bool
	ended    error // errStreamDuration or *endedError: the stream's context ended it
	released bool
}

// openStream starts reading resp from deployment d. When ends passes its
// deadline the stream ends with errStreamDuration; when it is cancelled with
// a cause of the gateway's, with an *endedError; a plain cancel is the client
// connection being done with.
func openStream(resp *fasthttp.Response, d *deployment, r RouterConfig, ends context.Context, tr streamTranslator) *upstreamStream {
	s := &upstreamStream{resp: resp, body: resp.BodyStream(), idle: r.StreamIdleTimeout, tr: tr,
		bufp: streamBufs.Get().(*[]byte), maxEvent: r.MaxResponseBytes, secrets: d.secrets}
	s.buf = *s.bufp
	s.timer = time.AfterFunc(s.idle, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.closed {
			s.closed, s.timedOut = true, true
			s.closeBody(errStreamIdle)
		}
	})
	if ends != nil && ends.Done() != nil {
		expire := func() {
			var err error
			switch cause := context.Cause(ends); {
			case errors.Is(cause, context.DeadlineExceeded):
				err = errStreamDuration
			case errors.Is(cause, context.Canceled):
				err = errClientGone
			default:
				err = &endedError{cause}
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.closed {
				s.closed, s.ended = true, err
				s.closeBody(err)
			}
		}
		// Already ended (the headers came late): ended before the first read, so the client gets a plain error
		// reply rather than whatever events raced the context.
		if ends.Err() != nil {
			expire()
		} else {
			s.unlimit = context.AfterFunc(ends, expire)
		}
	}
	return s
}

func (s *upstreamStream) closeBody(cause error) {
	if rc, ok := s.body.(fasthttp.ReadCloserWithError); ok {
		_ = rc.CloseWithError(cause)
		return
	}
	_ = s.resp.CloseBodyStream()
}

// pump does one upstream read and appends the translated output of every
// event it completed. io.EOF means the stream finished properly.
func (s *upstreamStream) pump(out []byte) ([]byte, error) {
	if s.tr.done() {
		s.drain()
		return out, io.EOF
	}
	s.timer.Reset(s.idle)
	n, err := s.body.Read(s.buf)
	s.split.feed(s.buf[:n])
	for {
		ev, ok := s.split.next()
		if !ok {
			break
		}
		before := len(out)
		var terr error
		if out, terr = s.tr.event(ev, out); terr != nil {
			if errors.Is(terr, errUpstreamStreamError) {
				// The error event is the upstream's own text, which may quote the key it was sent; quoted with
				// JSON escapes, which Bytes cannot see, the event is replaced by one of the gateway's own.
				red := s.secrets.Bytes(out[before:])
				if s.secrets.Escaped(red) {
					red = s.tr.errorEvent(&apiError{status: http.StatusBadGateway, typ: "server_error",
						code: "upstream_error", message: "the upstream's error event quoted a credential; not relayed"})
				}
				out = append(out[:before], red...)
				return out, terr
			}
			return out, fmt.Errorf("%w: %w", errUnreadableEvent, terr)
		}
		if s.tr.done() {
			return out, nil
		}
	}
	switch {
	case s.split.buffered() > s.maxEvent:
		return out, errEventTooLarge
	case err == nil:
		return out, nil
	case s.endedBy() != nil:
		return out, s.endedBy()
	case s.isTimedOut():
		return out, errStreamIdle
	case errors.Is(err, io.EOF):
		// fasthttp reports a connection that died between chunks as a clean
		// EOF, so only the terminal event proves the stream is complete.
		return out, errStreamTruncated
	}
	return out, err
}

// maxDrainReads bounds what drain reads of an upstream that keeps sending
// after its terminal event; such a connection is dropped instead.
const maxDrainReads = 4

// drain reads what follows the terminal event, normally just the chunked
// body's last chunk, so that fasthttp sees the body fully read and pools the
// connection. Without it every stream closed its connection and the next
// one paid a new dial before its first byte. The idle timer still bounds
// each read; errors do not matter any more, the stream is complete.
func (s *upstreamStream) drain() {
	for range maxDrainReads {
		s.timer.Reset(s.idle)
		if _, err := s.body.Read(s.buf); err != nil {
			return
		}
	}
}

func (s *upstreamStream) isTimedOut() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timedOut
}

func (s *upstreamStream) endedBy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// close ends the upstream call; a non-nil cause drops the connection, which
// is how the upstream learns that the client went away. Extra calls are no-ops.
func (s *upstreamStream) close(cause error) {
	s.timer.Stop()
	if s.unlimit != nil {
		s.unlimit()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		return
	}
	if !s.closed {
		s.closed = true
		if cause == nil && !s.tr.done() {
			cause = errStreamTruncated
		}
		s.closeBody(cause)
	}
	s.released = true
	fasthttp.ReleaseResponse(s.resp)
	// pump and drain run on the goroutine that calls close, so nothing reads
	// into buf any more.
	streamBufs.Put(s.bufp)
	s.buf, s.bufp = nil, nil
}

// streamBufs recycles the upstream read buffers of streams, 16 KiB each.
var streamBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// sseSplitter cuts a byte stream into server-sent events (blank-line
// terminated), accepting both \n and \r\n line ends.
type sseSplitter struct {
	pending []byte
	off     int
}

func (p *sseSplitter) feed(b []byte) {
	if p.off > 0 && p.off == len(p.pending) {
		p.pending, p.off = p.pending[:0], 0
	}
	p.pending = append(p.pending, b...)
}

// buffered is the size of the event still waiting for its end.
func (p *sseSplitter) buffered() int { return len(p.pending) - p.off }

func (p *sseSplitter) next() ([]byte, bool) {
	rest := p.pending[p.off:]
	i := bytes.Index(rest, []byte("\n\n"))
	sep := 2
	if j := bytes.Index(rest, []byte("\r\n\r\n")); j >= 0 && (i < 0 || j < i) {
		i, sep = j, 4
	}
	if i < 0 {
		if p.off > 0 {
			p.pending = append(p.pending[:0], rest...)
			p.off = 0
		}
		return nil, false
	}
	ev := rest[:i+sep]
	p.off += i + sep
	return ev, true
}

// sseData returns the payload of an event's data lines (joined by \n) and
// its event name.
func sseData(ev []byte) (name string, data []byte) {
	for len(ev) > 0 {
		line := ev
		if i := bytes.IndexByte(ev, '\n'); i >= 0 {
			line, ev = ev[:i], ev[i+1:]
		} else {
			ev = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case bytes.HasPrefix(line, []byte("data:")):
			v := bytes.TrimPrefix(line[5:], []byte(" "))
			if data != nil {
				// Copy: appending in place would overwrite the event buffer.
				data = append(append(append([]byte(nil), data...), '\n'), v...)
			} else {
				data = v
			}
		case bytes.HasPrefix(line, []byte("event:")):
			name = string(bytes.TrimSpace(line[6:]))
		}
	}
	return name, data
}
