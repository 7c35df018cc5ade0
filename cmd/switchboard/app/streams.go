package app

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// streamLimiter bounds streamed responses for every protocol in one place: how many run at once
// (server.max_concurrent_streams) and how long each may run (server.max_stream_duration).
//
// A request that asks for a stream carries the duration limit as its context's deadline (fiber's UserContext),
// so the protocol packages can end the stream themselves with their protocol's final error event; the
// connection is closed only streamDeadlineGrace later, as the backstop for a stream that ignores the deadline.
// A stream the request did not announce was told no deadline and is closed at the limit itself.
//
// A stream outlives its handler (fasthttp writes the body after the handler returned), so the slot is tied to
// the connection and given back when fasthttp reports the connection idle (the response is fully written) or
// closed.
type streamLimiter struct {
	slots    chan struct{}
	maxDur   time.Duration
	held     sync.Map // net.Conn → *streamSlot
	refused  prometheus.Counter
	expired  prometheus.Counter
	prevHook func(net.Conn, fasthttp.ConnState)
}

// streamDeadlineGrace is how long a stream told of its deadline has to write its final event before the
// connection is closed under it.
const streamDeadlineGrace = 5 * time.Second

func newStreamLimiter(max int, maxDur time.Duration, reg prometheus.Registerer) *streamLimiter {
	l := &streamLimiter{
		slots:  make(chan struct{}, max),
		maxDur: maxDur,
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
	l        *streamLimiter
	once     sync.Once
	timer    *time.Timer
	deadline time.Time          // told to the handler; zero when the stream was found after it
	cancel   context.CancelFunc // of the deadline's context
}

func (l *streamLimiter) acquire() *streamSlot {
	select {
	case l.slots <- struct{}{}:
		return &streamSlot{l: l}
	default:
		return nil
	}
}

func (s *streamSlot) release() {
	s.once.Do(func() {
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.cancel != nil {
			s.cancel()
		}
		<-s.l.slots
	})
}

// middleware takes a slot before the handler for requests that ask for a stream, so a refused one never
// reaches an upstream; a response that turns into a stream without having asked takes its slot afterwards.
func (l *streamLimiter) middleware(c *fiber.Ctx) error {
	var slot *streamSlot
	if wantsStream(c) {
		if slot = l.acquire(); slot == nil {
			l.refused.Inc()
			return refuseStream(c)
		}
		// The stream outlives this middleware, so the context is cancelled on release, not here.
		slot.deadline = time.Now().Add(l.maxDur)
		var ctx context.Context
		ctx, slot.cancel = context.WithDeadline(c.UserContext(), slot.deadline)
		c.SetUserContext(ctx)
	}
	err := c.Next()
	if !c.Response().IsBodyStream() {
		if slot != nil {
			slot.release()
		}
		return err
	}
	if slot == nil {
		if slot = l.acquire(); slot == nil {
			l.refused.Inc()
			// Closes the stream the handler opened; its writer sees a closed pipe, as if the client left.
			c.Response().ResetBody()
			return refuseStream(c)
		}
	}
	conn := c.Context().Conn()
	backstop := l.maxDur
	if !slot.deadline.IsZero() {
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
		case path == "/v1/chat/completions" || path == "/v1/completions" || path == "/v1/messages":
			return jsonMemberIs(c.Body(), "stream", "true")
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

var a2aStreamMethods = []string{`"SendStreamingMessage"`, `"SubscribeToTask"`, `"message/stream"`, `"tasks/resubscribe"`}

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

// refuseStream answers in the shape the protocol's clients parse: JSON-RPC for A2A and MCP, OpenAI JSON
// elsewhere. 503 with Retry-After: the limit is the gateway's, not the caller's quota.
func refuseStream(c *fiber.Ctx) error {
	const msg = "too many streams running; retry shortly (server.max_concurrent_streams)"
	c.Set(fiber.HeaderRetryAfter, "1")
	c.Status(fiber.StatusServiceUnavailable)
	path := c.Path()
	if strings.HasPrefix(path, "/a2a/") || path == "/mcp" || strings.HasPrefix(path, "/mcp/") {
		return c.JSON(fiber.Map{"jsonrpc": "2.0", "id": nil, "error": fiber.Map{"code": -32000, "message": msg}})
	}
	return c.JSON(fiber.Map{"error": fiber.Map{
		"message": msg, "type": "server_error", "code": "too_many_streams",
		"request_id": c.GetRespHeader(fiber.HeaderXRequestID),
	}})
}
