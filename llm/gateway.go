package llm

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
)

// Governor is the part of governance the LLM gateway calls on every request.
type Governor interface {
	Authenticate(rawKey string) (*governance.Principal, error)
	Authorize(p *governance.Principal, kind governance.Kind, name string) governance.Decision
	Reserve(p *governance.Principal, r governance.Request) (*governance.Reservation, error)
	// Denied audits a refusal; it must not block.
	Denied(d governance.Denial)
}

// Tracer starts the call and attempt spans.
type Tracer interface {
	Start(parent trace.SpanContext, layer trace.Layer, name string) *trace.Span
}

// Deps are the gateway's collaborators. Governor and Tracer are required;
// Logger and Metrics may be nil.
type Deps struct {
	Governor Governor
	Tracer   Tracer
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
}

// Gateway serves the OpenAI-compatible (chat, embeddings, Responses) and Anthropic-compatible API.
type Gateway struct {
	gov     Governor
	tracer  Tracer
	log     *slog.Logger
	metrics *metrics
	client  atomic.Pointer[upstreamClient]

	table atomic.Pointer[table]
	// mu serialises Reload; states maps stateKey -> state of the live table.
	mu     sync.Mutex
	states map[string]*deploymentState
	// pins maps stored Responses API responses to their deployment; it outlives reloads.
	pins *responsePins
}

// New validates cfg and builds the gateway.
func New(cfg Config, deps Deps) (*Gateway, error) {
	if deps.Governor == nil || deps.Tracer == nil {
		return nil, errors.New("llm: Deps.Governor and Deps.Tracer are required")
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	t, states, err := buildTable(cfg, nil)
	if err != nil {
		return nil, err
	}
	t.bindMetrics(m)
	g := &Gateway{gov: deps.Governor, tracer: deps.Tracer, log: log, metrics: m, states: states,
		pins: newResponsePins(responsePinTTL, responsePinMax)}
	g.client.Store(newUpstreamClient(t.router.MaxResponseBytes))
	g.table.Store(t)
	t.warnUnpriced(log)
	return g, nil
}

// Reload swaps the routing table atomically. Deployments that keep their
// group, provider, endpoint and model keep their cooldown, latency and
// in-flight state; requests already running finish on the old table.
func (g *Gateway) Reload(cfg Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, states, err := buildTable(cfg, g.states)
	if err != nil {
		return err
	}
	t.bindMetrics(g.metrics)
	g.states = states
	if old := g.client.Load(); old.maxResponse != t.router.MaxResponseBytes {
		// Calls running on the old client finish there; its idle
		// connections are closed now rather than at their idle timeout.
		g.client.Store(newUpstreamClient(t.router.MaxResponseBytes))
		old.hc.CloseIdleConnections()
	}
	g.table.Store(t)
	t.warnUnpriced(g.log)
	return nil
}

// Register mounts the API routes on r.
func (g *Gateway) Register(r fiber.Router) {
	r.Post("/v1/chat/completions", func(c *fiber.Ctx) error { return g.serve(c, kindChat) })
	r.Post("/v1/embeddings", func(c *fiber.Ctx) error { return g.serve(c, kindEmbeddings) })
	r.Post("/v1/messages", func(c *fiber.Ctx) error { return g.serve(c, kindMessages) })
	r.Post("/v1/messages/count_tokens", func(c *fiber.Ctx) error { return g.serve(c, kindCountTokens) })
	r.Post("/v1/responses", func(c *fiber.Ctx) error { return g.serve(c, kindResponses) })
	r.Get("/v1/responses", refuseResponsesWebSocket)
	r.Get("/v1/models", g.models)
	// "+" rather than ":model": a model name may hold a slash (openai/gpt-4o).
	r.Get("/v1/models/+", g.model)
}

type metrics struct {
	requests  *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	cooldowns *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	ttft      *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_llm_requests_total", Help: "Client calls to the LLM API by model and HTTP status.",
		}, []string{"model", "status"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_llm_upstream_attempts_total", Help: "Upstream attempts by deployment and outcome.",
		}, []string{"deployment", "outcome"}),
		cooldowns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_llm_cooldowns_total", Help: "Times a deployment was put in cooldown.",
		}, []string{"deployment"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_llm_request_duration_seconds", Help: "Client call duration by model.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"model"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_llm_time_to_first_token_seconds", Help: "Time to the first streamed event by model.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"model"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.attempts, m.cooldowns, m.latency, m.ttft} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
