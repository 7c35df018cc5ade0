package app

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/switchboard-gw/switchboard/governance"
)

// streamLimiter bounds streamed responses for every protocol in one place: how many run at once
// (server.max_concurrent_streams, and a key's and its team's limits.max_streams, so that one key cannot take
// every slot) and how long each may run (server.max_stream_duration).
//
// A request that asks for a stream carries the duration limit as its context's deadline (fiber's UserContext),
// so the protocol packages can end the stream themselves with their protocol's final error event; the
// connection is closed only streamDeadlineGrace later, as the backstop for a stream that ignores the deadline.
// A stream the request did not announce was told no deadline and is closed at the limit itself.
//
// A shutdown ends streams the same way, through that context, with errShuttingDown as its cause (see
// endStreams): the deadline is moved to now.
//
// A stream outlives its handler (fasthttp writes the body after the handler returned), so the slot is tied to
// the connection and given back when fasthttp reports the connection idle (the response is fully written) or
// closed.
type streamLimiter struct {
	slots  chan struct{}
	maxDur time.Duration
	gov    streamGovernor // nil: no per-key limits
	held   sync.Map       // net.Conn → *streamSlot
	mu     sync.Mutex
	active map[*streamSlot]struct{} // every slot taken, for a shutdown to end
	// calls are the requests running that may turn into a stream without having asked for one (MCP POSTs): a
	// shutdown ends them with the streams, through their context.
	calls    map[*context.CancelCauseFunc]struct{}
	ending   streamsEnding // how far a shutdown got
	grace    time.Duration // what the shutdown gives a stream it ended before closing its connection
	refused  prometheus.Counter
	expired  prometheus.Counter
	prevHook func(net.Conn, fasthttp.ConnState)
}

// streamGovernor holds a stream's place under its key's and team's limits.max_streams and audits a refusal.
type streamGovernor interface {
	AcquireStream(rawKey string, kind governance.Kind) (*governance.StreamHold, *governance.Principal, error)
	Denied(d governance.Denial)
}

// streamDeadlineGrace is how long a stream told of its deadline has to write its final event before the
// connection is closed under it.
const streamDeadlineGrace = 5 * time.Second

// errShuttingDown is the cause a stream's context ends with when a shutdown ends the stream; the protocol
// packages send its text in the stream's final error event.
var errShuttingDown = errors.New("the gateway is shutting down")

// streamsEnding is how far a shutdown got in ending streams.
type streamsEnding int

const (
	endingNone    streamsEnding = iota
	endingEndless               // streams that never end by themselves (listening streams, subscriptions)
	endingAll
)

func newStreamLimiter(max int, maxDur time.Duration, reg prometheus.Registerer) *streamLimiter {
	l := &streamLimiter{
		slots:  make(chan struct{}, max),
		maxDur: maxDur,
		active: map[*streamSlot]struct{}{},
		calls:  map[*context.CancelCauseFunc]struct{}{},
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_streams_refused_total", Help: "Stream requests refused because server.max_concurrent_streams were running.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_streams_expired_total", Help: "Streams whose connection the gateway closed because they outlived server.max_stream_duration (and its grace period when they were told the deadline).",
		}),
	}
	reg.MustRegister(l.refused, l.expired, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchboard_streams_active", Help: "Streamed responses running now.",
	}, func() float64 { return float64(len(l.slots)) }))
	return l
}

// streamSlot is one running stream's place; release is safe to call more than once and from the timer.
type streamSlot struct {
	l    *streamLimiter
	once sync.Once
	hold *governance.StreamHold // the key's and team's max_streams place
	// endless: the stream never ends by itself (an MCP GET listening stream, an A2A subscription), so a
	// shutdown ends it at once rather than letting it run on.
	endless bool

	// Guarded by l.mu: a shutdown moves them.
	timer    *time.Timer
	deadline time.Time               // told to the handler; zero when the stream was found after it
	cancel   context.CancelCauseFunc // of the deadline's context; the cause tells the handler why it ended
	stop     context.CancelFunc      // the deadline's own timer
	ended    bool                    // by a shutdown
}

func (l *streamLimiter) acquire() *streamSlot {
	select {
	case l.slots <- struct{}{}:
		s := &streamSlot{l: l}
		l.mu.Lock()
		l.active[s] = struct{}{}
		l.mu.Unlock()
		return s
	default:
		return nil
	}
}

func (s *streamSlot) release() {
	s.once.Do(func() {
		s.l.mu.Lock()
		delete(s.l.active, s)
		s.l.mu.Unlock()
		s.hold.Release()
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.cancel != nil {
			// context.Canceled: the connection is done with, so a handler still running lost its client.
			s.cancel(nil)
			s.stop()
		}
		<-s.l.slots
	})
}

// tell gives the handler of a stream that asked for one its deadline. l.mu is held.
func (s *streamSlot) tell(c *fiber.Ctx) {
	s.deadline = time.Now().Add(s.l.maxDur)
	ctx, cancel := context.WithCancelCause(c.UserContext())
	s.cancel = cancel
	ctx, s.stop = context.WithDeadline(ctx, s.deadline)
	c.SetUserContext(ctx)
	if s.l.ending == endingAll || s.l.ending == endingEndless && s.endless {
		s.end()
	}
}

// end ends the stream for a shutdown: its handler is told through the context (errShuttingDown), and the
// connection is closed l.grace later if it has not finished by then. l.mu is held.
func (s *streamSlot) end() {
	s.ended = true
	if s.cancel != nil {
		s.deadline = time.Now()
		s.cancel(errShuttingDown)
	}
	if s.timer != nil {
		s.timer.Reset(s.l.grace)
	}
}

// endStreams ends, for a shutdown, the endless streams (all false) or all of them, and any such stream that
// starts from now on. A stream told of the end gets grace to write its final event before its connection is
// closed under it.
func (l *streamLimiter) endStreams(all bool, grace time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ending, l.grace = endingEndless, grace
	if all {
		l.ending = endingAll
	}
	for s := range l.active {
		if all || s.endless {
			s.end()
		}
	}
	if all {
		for cancel := range l.calls {
			(*cancel)(errShuttingDown)
		}
	}
}

// watch gives a request that may turn into a stream without having asked for one a context a shutdown ends as
// it ends streams, and registers it for endStreams until unwatch. The handler answers with its protocol's
// error for the request when the context ends with errShuttingDown.
func (l *streamLimiter) watch(c *fiber.Ctx) *context.CancelCauseFunc {
	ctx, cancel := context.WithCancelCause(c.UserContext())
	c.SetUserContext(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ending == endingAll {
		cancel(errShuttingDown)
	}
	l.calls[&cancel] = struct{}{}
	return &cancel
}

// unwatch ends what watch registered: the request is done with, or its stream holds a slot now. l.mu is held.
func (l *streamLimiter) unwatch(cancel *context.CancelCauseFunc) {
	delete(l.calls, cancel)
}

// forget unwatches a request that is done with, and releases its context; nil is a request not watched.
func (l *streamLimiter) forget(cancel *context.CancelCauseFunc) {
	if cancel == nil {
		return
	}
	l.mu.Lock()
	l.unwatch(cancel)
	l.mu.Unlock()
	(*cancel)(nil)
}

// middleware takes a slot before the handler for requests that ask for a stream, so a refused one never
// reaches an upstream; a response that turns into a stream without having asked takes its slot afterwards.
func (l *streamLimiter) middleware(c *fiber.Ctx) error {
	var slot *streamSlot
	var watched *context.CancelCauseFunc
	switch {
	case wantsStream(c):
		// The key's own limit first: a key at its limit must not take a server-wide slot, even for a moment.
		hold, err := l.holdKeyStream(c)
		if err != nil {
			return refuseKeyStream(c, err)
		}
		if slot = l.acquire(); slot == nil {
			hold.Release()
			l.refused.Inc()
			return refuseStream(c)
		}
		slot.hold = hold
		// The stream outlives this middleware, so the context is cancelled on release, not here.
		slot.endless = isEndless(c)
		l.mu.Lock()
		slot.tell(c)
		l.mu.Unlock()
	case mayStream(c):
		watched = l.watch(c)
	}
	// Copies the deferred cleanup reads, so that slot, which changes below, is not captured (and moved to the
	// heap on every request).
	heldSlot, heldCall, returned := slot, watched, false
	defer func() {
		if !returned {
			// The handler panicked (recoverPanic, outside this middleware, answers): nothing streams, and what it
			// held must not be held for ever.
			if heldSlot != nil {
				heldSlot.release()
			}
			l.forget(heldCall)
		}
	}()
	err := c.Next()
	returned = true
	if !c.Response().IsBodyStream() {
		if slot != nil {
			slot.release()
		}
		l.forget(watched)
		return err
	}
	if slot == nil {
		if slot = l.acquire(); slot == nil {
			l.refused.Inc()
			l.forget(watched)
			// Closes the stream the handler opened; its writer sees a closed pipe, as if the client left.
			c.Response().ResetBody()
			return refuseStream(c)
		}
	}
	conn := c.Context().Conn()
	l.mu.Lock()
	defer l.mu.Unlock()
	if watched != nil {
		// The stream carries on with the request's context: a shutdown ends it through its slot from now on.
		l.unwatch(watched)
		slot.cancel, slot.stop = *watched, func() {}
	}
	if l.ending == endingAll && !slot.ended {
		// Found after the shutdown ended streams: it gets no longer than those did.
		slot.end()
	}
	backstop := l.maxDur
	switch {
	case slot.ended && slot.deadline.IsZero():
		backstop = l.grace
	case slot.ended:
		backstop = time.Until(slot.deadline) + l.grace
	case !slot.deadline.IsZero():
		backstop = time.Until(slot.deadline) + streamDeadlineGrace
	}
	slot.timer = time.AfterFunc(backstop, func() {
		// Only a stream still holding its slot is ended: after release the connection may carry another request.
		if v, ok := l.held.Load(conn); ok && v == slot {
			l.expired.Inc()
			// Closing the connection is the one way to end a body fasthttp is writing from another goroutine
			// without racing it; the stream writers see a failed write and settle as an abandoned call.
			_ = conn.Close()
		}
	})
	l.held.Store(conn, slot)
	return err
}

// holdKeyStream takes the stream's place under its key's and team's limits.max_streams. A request without a
// valid key gets none and goes on to its handler, which refuses it in its protocol's shape.
func (l *streamLimiter) holdKeyStream(c *fiber.Ctx) (*governance.StreamHold, error) {
	if l.gov == nil {
		return nil, nil
	}
	kind, name := streamTarget(c)
	hold, p, err := l.gov.AcquireStream(governance.KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key")), kind)
	if err != nil {
		l.gov.Denied(governance.RequestDenial(c, p, kind, name, err))
	}
	return hold, err
}

// streamTarget is what a stream request calls, for the audit log: the agent is in the path, a model or tool
// only in the body, which the handler parses.
func streamTarget(c *fiber.Ctx) (governance.Kind, string) {
	path := c.Path()
	switch {
	case strings.HasPrefix(path, "/a2a/"):
		return governance.KindAgent, strings.Clone(strings.SplitN(path[len("/a2a/"):], "/", 2)[0])
	case path == "/mcp" || strings.HasPrefix(path, "/mcp/"):
		return governance.KindTool, ""
	}
	return governance.KindModel, ""
}

// connState gives the slot back once fasthttp finished writing a connection's response.
func (l *streamLimiter) connState(conn net.Conn, state fasthttp.ConnState) {
	if state == fasthttp.StateIdle || state == fasthttp.StateClosed || state == fasthttp.StateHijacked {
		if v, ok := l.held.LoadAndDelete(conn); ok {
			v.(*streamSlot).release()
		}
	}
	if l.prevHook != nil {
		l.prevHook(conn, state)
	}
}

// wantsStream tells from the request alone whether it asks for a streamed answer: an OpenAI or Anthropic
// call with "stream": true, an A2A streaming method, or an MCP GET stream.
func wantsStream(c *fiber.Ctx) bool {
	path := c.Path()
	switch c.Method() {
	case fiber.MethodGet:
		return (path == "/mcp" || strings.HasPrefix(path, "/mcp/")) &&
			strings.Contains(c.Get(fiber.HeaderAccept), "text/event-stream")
	case fiber.MethodPost:
		switch {
		case path == "/v1/chat/completions" || path == "/v1/completions" || path == "/v1/messages" || path == "/v1/responses":
			return jsonMemberIs(c.Body(), "stream", "true")
		case path == "/mcp" || strings.HasPrefix(path, "/mcp/"):
			return jsonMemberIs(c.Body(), "method", `"subscriptions/listen"`)
		case strings.HasPrefix(path, "/a2a/"):
			body := c.Body()
			for _, m := range a2aStreamMethods {
				if jsonMemberIs(body, "method", m) {
					return true
				}
			}
		}
	}
	return false
}

// mayStream tells of a request wantsStream did not take whether its answer may still turn into a stream: an MCP
// POST, whose answer becomes an SSE stream when the upstream reports progress first.
func mayStream(c *fiber.Ctx) bool {
	path := c.Path()
	return c.Method() == fiber.MethodPost && (path == "/mcp" || strings.HasPrefix(path, "/mcp/"))
}

var a2aStreamMethods = []string{`"SendStreamingMessage"`, `"SubscribeToTask"`, `"message/stream"`, `"tasks/resubscribe"`}

// isEndless tells of a request wantsStream accepted whether its stream may run for ever: an MCP listening
// stream (a 2025-11-25 GET, a 2026-07-28 subscriptions/listen), or an A2A subscription to a task that may never
// end.
func isEndless(c *fiber.Ctx) bool {
	if c.Method() == fiber.MethodGet {
		return true
	}
	body, path := c.Body(), c.Path()
	if path == "/mcp" || strings.HasPrefix(path, "/mcp/") {
		return jsonMemberIs(body, "method", `"subscriptions/listen"`)
	}
	return strings.HasPrefix(path, "/a2a/") &&
		(jsonMemberIs(body, "method", `"SubscribeToTask"`) || jsonMemberIs(body, "method", `"tasks/resubscribe"`))
}

// jsonMemberIs reports whether body has a member "key" whose raw value is want, at any depth. It may say yes
// for a nested member of that name; that only makes a plain call hold a slot while it runs, and a stream it
// misses still takes its slot when the handler returns.
func jsonMemberIs(body []byte, key, want string) bool {
	quoted := `"` + key + `"`
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(quoted))
		if j < 0 {
			return false
		}
		k := skipJSONSpace(body, i+j+len(quoted))
		if k < len(body) && body[k] == ':' {
			k = skipJSONSpace(body, k+1)
			if bytes.HasPrefix(body[k:], []byte(want)) {
				return true
			}
		}
		i += j + len(quoted)
	}
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// refuseStream answers a stream the server has no slot for. 503 with Retry-After: the limit is the gateway's,
// not the caller's quota.
func refuseStream(c *fiber.Ctx) error {
	c.Set(fiber.HeaderRetryAfter, "1")
	return writeStreamRefusal(c, fiber.StatusServiceUnavailable, "server_error", "too_many_streams",
		"too many streams running; retry shortly (server.max_concurrent_streams)")
}

// refuseKeyStream answers a stream its key's or team's limits.max_streams refused: 429 with Retry-After, as
// the other rate limits (503 when the shared counters cannot be asked).
func refuseKeyStream(c *fiber.Ctx, err error) error {
	var ge *governance.Error
	if !errors.As(err, &ge) {
		return err
	}
	ge.RateLimitHeaders(func(k, v string) { c.Set(k, v) })
	return writeStreamRefusal(c, ge.HTTPStatus(), ge.Type(), ge.Type(), ge.Message)
}

// writeStreamRefusal answers in the shape the protocol's clients parse: JSON-RPC for A2A and MCP, Anthropic's
// error on /v1/messages, OpenAI JSON elsewhere.
func writeStreamRefusal(c *fiber.Ctx, status int, typ, code, msg string) error {
	c.Status(status)
	path := c.Path()
	switch {
	case strings.HasPrefix(path, "/a2a/") || path == "/mcp" || strings.HasPrefix(path, "/mcp/"):
		return c.JSON(fiber.Map{"jsonrpc": "2.0", "id": nil, "error": fiber.Map{"code": -32000, "message": msg}})
	case path == "/v1/messages":
		return c.JSON(fiber.Map{"type": "error", "error": fiber.Map{"type": anthropicErrorType(status), "message": msg}})
	}
	return c.JSON(fiber.Map{"error": fiber.Map{
		"message": msg, "type": typ, "code": code, "request_id": c.GetRespHeader(fiber.HeaderXRequestID),
	}})
}

// anthropicErrorType is Anthropic's error.type for the statuses a stream refusal answers.
func anthropicErrorType(status int) string {
	switch status {
	case fiber.StatusTooManyRequests:
		return "rate_limit_error"
	case fiber.StatusServiceUnavailable:
		return "overloaded_error"
	}
	return "api_error"
}
