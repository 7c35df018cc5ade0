package a2a

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"

	"github.com/switchboard-gw/switchboard/governance"
)

var (
	errUpstreamUnavailable  = a2a.NewError(a2a.ErrServerError, "upstream agent unavailable")
	errContextInUse         = a2a.NewError(a2a.ErrInvalidParams, "contextId belongs to another caller")
	errInvalidAgentResponse = a2a.NewError(a2a.ErrInvalidAgentResponse, "upstream agent sent an empty result")
	errStreamDuration       = a2a.NewError(a2a.ErrServerError, "stream exceeded the gateway's maximum stream duration")
	errPushNotEnabled       = a2a.NewError(a2a.ErrPushNotificationNotSupported,
		"push notifications are not enabled for this agent at the gateway; poll with GetTask or stream instead")
	// errClientClosed is recorded, never sent: the client is gone.
	errClientClosed = errors.New("client closed the stream")
)

// call is the state of one JSON-RPC call through the gateway: who calls which
// agent, and what the span will say. The streaming handler may still be
// observing events on its own goroutine when the HTTP handler returns, hence
// the mutex.
type call struct {
	agent       *agent
	owners      taskOwners
	principal   *governance.Principal
	method      string
	endpoint    string // this agent's gateway URL, for rewriting extended cards
	traceparent string // the gateway span, sent upstream
	extensions  []string
	start       time.Time
	requestID   string // X-Request-Id, for log lines
	// ends is the context a stream runs under (nil: no limit), which ends its upstream call: the server's
	// stream limiter puts server.max_stream_duration on it as its deadline and ends it early, with a cause of
	// its own, to shut down.
	ends   context.Context
	replay *replay // the fast path's upstream exchange, answered again here

	mu        sync.Mutex
	reached   bool // a2a-go's handler decoded the params and called the proxy
	taskID    string
	contextID string
	states    []string
	err       error
	billable  bool
	ttft      time.Duration
	// card is the extended card GetExtendedAgentCard served, as rewritten.
	card *a2a.AgentCard
	// relayed: the proxy's event stream ran to its end, whatever that was.
	// a2a-go's handler returns before that only when it could not write to
	// the client.
	relayed bool
}

type callKey struct{}

func withCall(ctx context.Context, c *call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

func callFrom(ctx context.Context) (*call, error) {
	c, ok := ctx.Value(callKey{}).(*call)
	if !ok {
		return nil, a2a.ErrInternalError
	}
	c.mu.Lock()
	c.reached = true
	c.mu.Unlock()
	return c, nil
}

// outgoing is ctx with the headers the upstream must see: the gateway
// span's traceparent (so the agent's own calls back to the gateway join
// this trace) and the client's requested extensions. The A2A client adds
// A2A-Version itself, naming the version the upstream interface speaks.
func (c *call) outgoing(ctx context.Context) context.Context {
	params := a2aclient.ServiceParams{"traceparent": {c.traceparent}}
	if len(c.extensions) > 0 {
		params[strings.ToLower(a2a.SvcParamExtensions)] = c.extensions
	}
	return a2aclient.AttachServiceParams(ctx, params)
}

func (c *call) keyID() string { return c.principal.KeyID }

// extensionsOf are the extensions a client asks for: A2A-Extensions in 1.0,
// X-A2A-Extensions in 0.3.
func extensionsOf(values func(header string) []string) []string {
	return append(values("A2A-Extensions"), values("X-A2A-Extensions")...)
}

// timeout bounds a non-streaming upstream call. A replayed exchange that
// already ran out of time gets none left, so it ends exactly as it did.
func (c *call) timeout() time.Duration {
	if c.replay != nil && c.replay.timedOut {
		return 0
	}
	return c.agent.cfg.timeout()
}

func (c *call) taskRef(id a2a.TaskID) ownedID {
	return ownedID{agent: c.agent.name, kind: ownedTask, id: string(id)}
}

func (c *call) contextRef(id string) ownedID {
	return ownedID{agent: c.agent.name, kind: ownedContext, id: id}
}

// checkTask answers "task not found" for a task this key did not create,
// exactly as the upstream answers for one that does not exist. Tasks the
// gateway never saw (another replica's, or from before a restart) are
// refused too: ownership cannot be proven for them.
func (c *call) checkTask(id a2a.TaskID) error {
	c.noteTask(string(id), "")
	if id == "" || !c.owners.owns(c.taskRef(id), c.keyID()) {
		return c.record(a2a.ErrTaskNotFound)
	}
	return nil
}

// checkSend checks a message and the push notification config it may carry
// in its configuration.
func (c *call) checkSend(r *a2a.SendMessageRequest) error {
	if r.Config != nil && r.Config.PushConfig != nil && !c.agent.cfg.PushNotifications {
		return c.record(errPushNotEnabled)
	}
	return c.checkMessage(r.Message)
}

// checkPushTask refuses push notification configs for an agent the gateway
// does not allow them for, before it looks at the task: the answer is the
// same whether the task exists and whoever owns it.
func (c *call) checkPushTask(id a2a.TaskID) error {
	if !c.agent.cfg.PushNotifications {
		c.noteTask(string(id), "")
		return c.record(errPushNotEnabled)
	}
	return c.checkTask(id)
}

// checkMessage lets a message continue, or refer to, only this key's tasks
// and contexts.
// A context id the gateway has not seen is allowed (clients may mint their
// own) and becomes this key's.
func (c *call) checkMessage(m *a2a.Message) error {
	if m == nil {
		return nil
	}
	if m.TaskID != "" {
		if err := c.checkTask(m.TaskID); err != nil {
			return err
		}
	}
	for _, ref := range m.ReferenceTasks {
		// The agent may read a referenced task to the caller as context.
		if !c.owners.owns(c.taskRef(ref), c.keyID()) {
			return c.record(a2a.ErrTaskNotFound)
		}
	}
	if m.ContextID != "" && !c.owners.claim(c.contextRef(m.ContextID), c.keyID()) {
		return c.record(errContextInUse)
	}
	return nil
}

// observe records a result or stream event for the span and claims the
// task and context it names for this key. A task another key already owns
// is hidden from this one.
func (c *call) observe(ev a2a.Event) error {
	var state a2a.TaskState
	switch e := ev.(type) {
	case *a2a.Task:
		if e == nil {
			return c.record(errInvalidAgentResponse)
		}
		state = e.Status.State
	case *a2a.TaskStatusUpdateEvent:
		if e == nil {
			return c.record(errInvalidAgentResponse)
		}
		state = e.Status.State
	case *a2a.Message:
		if e == nil {
			return c.record(errInvalidAgentResponse)
		}
	case *a2a.TaskArtifactUpdateEvent:
		if e == nil {
			return c.record(errInvalidAgentResponse)
		}
	default:
		return c.record(errInvalidAgentResponse)
	}
	info := ev.TaskInfo()
	if info.TaskID != "" && !c.owners.claim(c.taskRef(info.TaskID), c.keyID()) {
		return c.record(a2a.ErrTaskNotFound)
	}
	if info.ContextID != "" {
		c.owners.claim(c.contextRef(info.ContextID), c.keyID())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ttft == 0 {
		c.ttft = time.Since(c.start)
	}
	c.billable = true
	if c.taskID == "" {
		c.taskID = string(info.TaskID)
	}
	if c.contextID == "" {
		c.contextID = info.ContextID
	}
	if state != "" && (len(c.states) == 0 || c.states[len(c.states)-1] != string(state)) {
		c.states = append(c.states, string(state))
	}
	return nil
}

func (c *call) serve(card *a2a.AgentCard) *a2a.AgentCard {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.card = card
	return card
}

func (c *call) servedCard() *a2a.AgentCard {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.card
}

func (c *call) noteTask(taskID, contextID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taskID == "" {
		c.taskID = taskID
	}
	if c.contextID == "" {
		c.contextID = contextID
	}
}

// upstreamError turns a failure of the upstream call into what the client
// sees: an answer over the size limit says so; the agent's own A2A errors
// pass through (answerTransport redacted them); a transport failure
// becomes a generic "upstream agent unavailable" (its text may name
// internal addresses).
func (c *call) upstreamError(ctx context.Context, err error) error {
	var a2aErr *a2a.Error
	switch {
	// bufio.ErrTooLong: a2a-go's SSE reader refuses a line over 10 MiB
	// before a larger limit of ours is reached.
	case errors.Is(err, errAnswerTooLarge) || errors.Is(err, bufio.ErrTooLong):
		c.agent.log.Warn("a2a: upstream answer too large", "method", c.method, "max_response_bytes", c.agent.limit,
			"request_id", c.requestID)
		err = errUpstreamTooLarge
	case errors.As(err, &a2aErr):
	case errors.Is(err, a2a.ErrUnsupportedOperation), errors.Is(err, a2a.ErrExtendedCardNotConfigured),
		errors.Is(err, a2a.ErrPushNotificationNotSupported):
		// a2a-go's client refuses these itself, from the agent's card (a
		// method its version lacks, a capability it does not declare): the
		// caller learns what the agent would have said.
	case ctx.Err() != nil:
		// Ours ends with errStreamDuration or a shutdown's error (see
		// endedBy); a plain cancel is the client going away.
		if err = context.Cause(ctx); errors.Is(err, context.Canceled) {
			err = errClientClosed
		}
	default:
		c.agent.log.Warn("a2a: upstream call failed", "method", c.method, "err", c.agent.secrets.String(err.Error()),
			"request_id", c.requestID)
		err = errUpstreamUnavailable
	}
	return c.record(err)
}

func (c *call) record(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
	return err
}

// cost is what the call is charged: the agent's price once the upstream
// accepted a message (answered or streamed at least one event).
func (c *call) cost() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.billable && isSendMethod(c.method) {
		return c.agent.cost
	}
	return 0
}

func isStreamMethod(m string) bool {
	switch m {
	case "SendStreamingMessage", "SubscribeToTask", "message/stream", "tasks/resubscribe":
		return true
	}
	return false
}

func isSendMethod(m string) bool {
	switch m {
	case "SendMessage", "SendStreamingMessage", "message/send", "message/stream":
		return true
	}
	return false
}

// callHandler gives a line logged under a call's context (a2a-go logs with it) the call's request_id; the call
// is looked up only when a line is written.
type callHandler struct{ slog.Handler }

func (h callHandler) Handle(ctx context.Context, r slog.Record) error {
	if c, ok := ctx.Value(callKey{}).(*call); ok {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", c.requestID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h callHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return callHandler{h.Handler.WithAttrs(attrs)}
}

func (h callHandler) WithGroup(name string) slog.Handler {
	return callHandler{h.Handler.WithGroup(name)}
}
