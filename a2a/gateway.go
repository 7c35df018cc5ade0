// Package a2a is the gateway's A2A front door: a registry of upstream
// agents, their cards rewritten to point at the gateway, and a JSON-RPC
// proxy (A2A 1.0 and 0.3) that checks keys, ACLs, limits and task
// ownership and leaves one span per call.
package a2a

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/a2aproject/a2a-go/v2/a2a"
	a2alog "github.com/a2aproject/a2a-go/v2/log"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
)

// Governor is the part of governance the A2A gateway uses.
type Governor interface {
	Authenticate(rawKey string) (*governance.Principal, error)
	Authorize(p *governance.Principal, kind governance.Kind, name string) governance.Decision
	Reserve(p *governance.Principal, r governance.Request) (*governance.Reservation, error)
	// Denied audits a refusal; it must not block.
	Denied(d governance.Denial)
}

// Tracer starts the span of each call.
type Tracer interface {
	Start(parent trace.SpanContext, layer trace.Layer, name string) *trace.Span
}

// Deps are the gateway's collaborators; Metrics may be nil.
type Deps struct {
	Governor Governor
	Tracer   Tracer
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
	// Owners, when set, shares task ownership between replicas.
	Owners OwnerStore
}

// Gateway serves /a2a.
type Gateway struct {
	gov    Governor
	tracer Tracer
	log    *slog.Logger
	// callLog is log for a2a-go, which logs with a call's context: its lines name the call's request.
	callLog *slog.Logger
	metrics *metrics
	owners  taskOwners
	agents  *registry
	cfg     atomic.Pointer[Config]

	// handlers holds *rpcHandlers, a2a-go's JSON-RPC handlers for one call at a time.
	handlers sync.Pool
	rpc      fiber.Handler
}

// New validates cfg, builds the registry and fetches every card once
// (concurrently; an agent whose card cannot be fetched is retried later and
// answers "upstream agent unavailable" meanwhile).
func New(cfg Config, deps Deps) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Governor == nil || deps.Tracer == nil || deps.Logger == nil {
		return nil, errors.New("a2a: Deps.Governor, Deps.Tracer and Deps.Logger are required")
	}
	g := &Gateway{
		gov:    deps.Governor,
		tracer: deps.Tracer,
		log:    deps.Logger,
	}
	g.callLog = slog.New(callHandler{deps.Logger.Handler()})
	g.owners = newOwnership(cfg.TaskTTL, cfg.MaxTasks)
	if deps.Owners != nil {
		g.owners = sharedOwners{deps.Owners}
	}
	m, err := newMetrics(deps.Metrics, func() float64 { return float64(g.owners.len()) })
	if err != nil {
		return nil, err
	}
	g.metrics = m
	g.agents = newRegistry(g.log, func(agent string) { g.metrics.cardErrors.WithLabelValues(agent).Inc() })
	g.cfg.Store(&cfg)
	keepAlive := cfg.streamKeepAlive()
	g.handlers.New = func() any { return newRPCHandlers(proxy{}, keepAlive, g.log) }
	g.rpc = adaptor.HTTPHandler(http.HandlerFunc(g.serveRPC))
	ctx, cancel := context.WithTimeout(context.Background(), cardFetchTimeout)
	defer cancel()
	g.agents.apply(ctx, cfg.Agents, cfg.maxResponseBytes())
	return g, nil
}

// Register mounts the A2A routes on r.
func (g *Gateway) Register(r fiber.Router) {
	r.Get("/a2a", g.catalogue)
	r.Get("/a2a/:agent/.well-known/agent-card.json", g.card)
	r.Get("/a2a/:agent/.well-known/agent.json", g.card) // the 0.3 name
	r.Post("/a2a/:agent", g.handleRPC)
}

// Reload swaps the agent list: new agents are added (cards fetched before
// Reload returns), removed ones stop answering, unchanged ones keep their
// card and client. A new max_response_bytes renews every agent's clients
// (and refetches its card). Task ownership survives; task_ttl, max_tasks
// and stream_keepalive apply from the next start.
func (g *Gateway) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	g.cfg.Store(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), cardFetchTimeout)
	defer cancel()
	g.agents.apply(ctx, cfg.Agents, cfg.maxResponseBytes())
	return nil
}

// Close stops the card refreshers.
func (g *Gateway) Close() error {
	g.agents.close()
	return nil
}

type agentNameKey struct{}
type endpointKey struct{}

// endsKey carries the context the server's stream limiter gave a stream
// request (see call.ends) into net/http land.
type endsKey struct{}

// handleRPC serves a 1.0 SendMessage on the fast path when it can (see
// sendfast.go) and hands every other call to net/http land (a2a-go's
// handlers), passing the agent name and its gateway URL as request values.
func (g *Gateway) handleRPC(c *fiber.Ctx) error {
	name := strings.Clone(c.Params("agent"))
	if req, ok := g.fastSend(c, name); ok {
		return g.sendFast(c, name, req)
	}
	g.setRPCValues(c, name)
	return g.rpc(c)
}

func (g *Gateway) setRPCValues(c *fiber.Ctx, name string) {
	c.Context().SetUserValue(agentNameKey{}, name)
	c.Context().SetUserValue(endpointKey{}, agentEndpoint(g.baseURL(c), name))
	c.Context().SetUserValue(originKey{}, governance.RequestDenial(c, nil, governance.KindAgent, name, nil))
	if ends := c.UserContext(); ends.Done() != nil {
		c.Context().SetUserValue(endsKey{}, ends)
	}
}

// admission is a call governance let through: its span, caller, agent and
// reservation.
type admission struct {
	span      *trace.Span
	principal *governance.Principal
	agent     *agent
	res       *governance.Reservation
	requestID string // the X-Request-Id of the call, for its log lines
}

// responder writes a refusal in net/http or fiber land.
type responder struct {
	set   func(name, value string)
	write func(status int, body []byte)
}

func httpResponder(w http.ResponseWriter) responder {
	return responder{set: w.Header().Set, write: func(status int, body []byte) {
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}}
}

// admit is the front of every call's pipeline, the same on both paths:
// envelope → span → authenticate → authorize → agent → reserve. When it
// refuses it has answered and ended the span.
func (g *Gateway) admit(name string, env envelope, envErr error, header func(string) string,
	origin governance.Denial, out responder) (admission, bool) {
	// A call refused here leaves no span, as on the model and tool layers:
	// anyone can send one without a key, and the spans of such calls would
	// count as requests in spend and could be planted in any team's trace.
	// The refusals are audited and counted in metrics instead.
	if envErr != nil {
		g.fail(out, name, env, envErr)
		return admission{}, false
	}
	p, err := g.gov.Authenticate(governance.KeyFromHeaders(header("Authorization"), header("x-api-key")))
	if err != nil {
		g.denied(origin, nil, err)
		g.fail(out, name, env, err)
		return admission{}, false
	}
	if d := g.gov.Authorize(p, governance.KindAgent, name); !d.Allowed {
		g.denied(origin, p, d.Err())
		g.fail(out, name, env, d.Err())
		return admission{}, false
	}
	ag := g.agents.get(name)
	if ag == nil {
		g.fail(out, name, env, errAgentNotFound)
		return admission{}, false
	}
	res, err := g.gov.Reserve(p, governance.Request{Kind: governance.KindAgent, Name: name, EstimatedCostNanoUSD: estimate(ag, env.Method)})
	if err != nil {
		g.denied(origin, p, err)
		g.fail(out, name, env, err)
		return admission{}, false
	}
	span := g.tracer.Start(trace.FromHeaders(header), trace.LayerAgent, "invoke_agent "+name)
	span.Agent = name
	span.Attrs = append(span.Attrs, trace.Attr{Key: "a2a.method", Value: metricMethod(env.Method)})
	span.KeyID, span.KeyName, span.Team, span.Org = p.KeyID, p.KeyName, p.Team, p.Org
	out.set("traceparent", span.Context().Traceparent())
	res.RateLimitHeaders(out.set)
	return admission{span: span, principal: p, agent: ag, res: res, requestID: origin.RequestID}, true
}

// admittedKey carries a fast-path call that must be answered by the slow
// path after all (see replay) into net/http land.
type admittedKey struct{}

type admitted struct {
	admission
	replay *replay
}

// serveRPC is the pipeline of one JSON-RPC call:
// envelope → span → authenticate → authorize → agent → reserve → proxy → settle → end span.
func (g *Gateway) serveRPC(w http.ResponseWriter, r *http.Request) {
	env, err := readEnvelope(r)
	if pre, ok := r.Context().Value(admittedKey{}).(*admitted); ok {
		// admit already put traceparent and the rate-limit headers on the
		// fiber response, which the adaptor adds w's headers to.
		g.proxy(w, r, env, pre.admission, pre.replay)
		return
	}
	name, _ := r.Context().Value(agentNameKey{}).(string)
	origin, _ := r.Context().Value(originKey{}).(governance.Denial)
	adm, ok := g.admit(name, env, err, r.Header.Get, origin, httpResponder(w))
	if !ok {
		return
	}
	g.proxy(w, r, env, adm, nil)
}

// proxy runs the admitted call through a2a-go's handler and the agent's
// client, then settles and ends the span.
func (g *Gateway) proxy(w http.ResponseWriter, r *http.Request, env envelope, adm admission, rp *replay) {
	endpoint, _ := r.Context().Value(endpointKey{}).(string)
	c := &call{
		agent: adm.agent, owners: g.owners, principal: adm.principal, method: env.Method, endpoint: endpoint,
		traceparent: adm.span.Context().Traceparent(), extensions: extensionsOf(r.Header.Values),
		start: adm.span.Start, replay: rp, requestID: adm.requestID,
	}
	if isStreamMethod(env.Method) {
		c.ends, _ = r.Context().Value(endsKey{}).(context.Context)
	}
	// Not derived from r.Context(): that is fasthttp's RequestCtx, which the
	// server recycles once a streamed response is handed over, while this
	// context lives until the stream ends.
	ctx, cancel := context.WithCancel(withCall(a2alog.AttachLogger(context.Background(), g.callLog), c))
	defer cancel()
	hs := g.handlers.Get().(*rpcHandlers)
	hs.serve(costHeader(redactWriter{w, adm.agent.secrets}, c), r.WithContext(ctx), env.v1, c, cancel)
	g.handlers.Put(hs)
	if isStreamMethod(env.Method) {
		c.mu.Lock()
		gone := c.reached && !c.relayed
		c.mu.Unlock()
		if gone {
			// The handler gave up writing while the agent's stream still ran.
			c.record(errClientClosed)
		}
	}
	cost := c.cost()
	adm.res.Settle(cost, 0)
	g.end(adm.span, c, cost)
}

func estimate(ag *agent, method string) int64 {
	if isSendMethod(method) {
		return ag.cost
	}
	return 0
}

// end completes the span of a call that reached the proxy.
func (g *Gateway) end(span *trace.Span, c *call, cost int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	span.CostNanoUSD = cost
	span.HTTPStatus = http.StatusOK
	span.TTFT = c.ttft
	span.Status = trace.StatusOK
	switch {
	case errors.Is(c.err, errClientClosed):
		span.Status, span.Error, span.HTTPStatus = trace.StatusError, c.err.Error(), statusClientClosed
	case c.err != nil:
		span.Status, span.Error = trace.StatusError, c.agent.secrets.String(c.err.Error())
	case !c.reached:
		span.Status, span.Error = trace.StatusError, "invalid params"
	case len(c.states) > 0 && taskFailed(a2a.TaskState(c.states[len(c.states)-1])):
		// The call worked but the work did not: dashboards count it in the
		// agent's error rate. The status message is the agent's text, kept
		// out of the span like any content.
		span.Status, span.Error = trace.StatusError, "task "+taskStateWord(c.states[len(c.states)-1])
	}
	if c.taskID != "" {
		span.Attrs = append(span.Attrs, trace.Attr{Key: "task_id", Value: c.taskID})
	}
	if c.contextID != "" {
		span.Attrs = append(span.Attrs, trace.Attr{Key: "context_id", Value: c.contextID})
	}
	if len(c.states) > 0 {
		span.Attrs = append(span.Attrs, trace.Attr{Key: "states", Value: strings.Join(c.states, ",")})
	}
	span.End()
	g.metrics.calls.WithLabelValues(c.agent.name, metricMethod(c.method), string(span.Status)).Inc()
}

// taskFailed: the agent ended the task without doing it. Canceled is the
// caller's choice and the interrupted states wait for the caller.
func taskFailed(s a2a.TaskState) bool {
	return s == a2a.TaskStateFailed || s == a2a.TaskStateRejected
}

// taskStateWord is the state's short name: "failed" for TASK_STATE_FAILED.
func taskStateWord(s string) string {
	return strings.ToLower(strings.TrimPrefix(s, "TASK_STATE_"))
}

// statusClientClosed is the span's HTTP status for a stream the client
// left, as the LLM gateway records it (nginx's 499).
const statusClientClosed = 499

// originKey carries the governance.Denial handleRPC started (caller's
// address, request id, route, agent) into net/http land.
type originKey struct{}

// denied audits a governance refusal of an RPC call; origin is the
// denial handleRPC started (caller's address, request id, route, agent).
func (g *Gateway) denied(origin governance.Denial, p *governance.Principal, err error) {
	origin.Principal, origin.Err = p, err
	g.gov.Denied(origin)
}

// fail answers a call refused before the proxy, in JSON-RPC shape.
func (g *Gateway) fail(out responder, agent string, env envelope, err error) {
	status, body := errorResponse(env.ID, err, out.set)
	out.write(status, body)
	outcome := "error"
	var ge *governance.Error
	if errors.As(err, &ge) {
		outcome = "denied"
	}
	if g.agents.get(agent) == nil {
		agent = "unknown"
	}
	g.metrics.calls.WithLabelValues(agent, metricMethod(env.Method), outcome).Inc()
}

func (g *Gateway) config() *Config { return g.cfg.Load() }

// costHeader stamps x-switchboard-cost-usd on a non-streaming answer when
// it starts, i.e. after the upstream answered. A stream's headers leave
// before its cost is known; its cost is on the span only.
func costHeader(w http.ResponseWriter, c *call) http.ResponseWriter {
	if isStreamMethod(c.method) {
		return w
	}
	return &costWriter{ResponseWriter: w, c: c}
}

// redactWriter hides the agent's credentials in what a2a-go's handler writes
// to the client. answerTransport redacts the agent's bytes, but a credential
// it quoted with JSON escapes (\u0042earer ...) only appears once a2a-go has
// decoded the answer, and the handler writes it out plain. Each Write is a
// whole JSON answer or SSE line (json.Encoder.Encode, one Fprintf per line),
// so no credential is split between two.
type redactWriter struct {
	http.ResponseWriter
	secrets *governance.Redactor
}

func (w redactWriter) Write(b []byte) (int, error) {
	if _, err := w.ResponseWriter.Write(w.secrets.Bytes(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Flush keeps the writer a Flusher, which a2a-go's stream writer requires.
func (w redactWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w redactWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type costWriter struct {
	http.ResponseWriter
	c       *call
	stamped bool
}

func (w *costWriter) stamp() {
	if !w.stamped {
		w.stamped = true
		w.Header().Set("x-switchboard-cost-usd", decimal.New(w.c.cost(), -9).String())
	}
}

func (w *costWriter) WriteHeader(code int) {
	w.stamp()
	w.ResponseWriter.WriteHeader(code)
}

func (w *costWriter) Write(b []byte) (int, error) {
	w.stamp()
	var out []byte
	switch {
	case isVoidMethod(w.c.method):
		out = withResult(b)
	case w.c.method == legacyExtendedCardMethod:
		out = withLegacyCard(b, w.c.servedCard())
	default:
		return w.ResponseWriter.Write(b)
	}
	if _, err := w.ResponseWriter.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

// isVoidMethod reports the methods whose result is empty, which a2a-go's
// server leaves out of its answer altogether.
func isVoidMethod(m string) bool {
	return m == "DeleteTaskPushNotificationConfig" || m == "tasks/pushNotificationConfig/delete"
}

// withResult adds "result":null to a JSON-RPC answer that has neither a
// result nor an error: JSON-RPC 2.0 requires one of them, and clients tell
// success by the result member.
func withResult(answer []byte) []byte {
	fields, ok := pick(answer, "result", "error")
	end := bytes.LastIndexByte(answer, '}')
	if !ok || end < 0 || fields.get("result") != nil || fields.get("error") != nil {
		return answer
	}
	out := make([]byte, 0, len(answer)+len(`,"result":null`))
	out = append(out, answer[:end]...)
	out = append(out, `,"result":null`...)
	return append(out, answer[end:]...)
}
