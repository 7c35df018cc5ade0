package llm

import (
	"bufio"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
)

// serve is the whole pipeline of one call: authenticate -> parse ->
// authorize -> reserve -> span -> route/proxy -> reply -> settle -> end span.
func (g *Gateway) serve(c *fiber.Ctx, kind callKind) (err error) {
	writeErr := writeOpenAIError
	if kind.anthropicIngress() {
		writeErr = writeAnthropicError
	}
	var res *governance.Reservation
	var span *trace.Span
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("llm handler panic", "panic", r, governance.LogRequestID(c.Context()))
			g.abandon(res, span)
			writeErr(c, errInternal("internal error"))
			err = nil
		}
	}()
	t := g.table.Load()
	start := time.Now()

	p, err := g.gov.Authenticate(governance.KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key")))
	if err != nil {
		return g.reject(c, writeErr, p, "", err)
	}
	req, grp, err := parseCall(c.BodyRaw(), kind, t)
	if err != nil {
		return g.reject(c, writeErr, p, "", err)
	}
	if err := g.gov.Authorize(p, governance.KindModel, req.model).Err(); err != nil {
		return g.reject(c, writeErr, p, req.model, err)
	}
	// A fallback is a model like any other: a key that may not call it directly must not reach it through
	// another model's failure.
	mayUse := func(model string) bool { return g.gov.Authorize(p, governance.KindModel, model).Allowed }
	if err := unsupported(grp, kind, req); err != nil {
		return g.reject(c, writeErr, p, req.model, err)
	}
	var pinned *deployment
	var carried int64
	if kind == kindResponses {
		if pinned, carried, err = g.responsesTarget(grp, req, pinOwner(p.Team, p.KeyID)); err != nil {
			return g.reject(c, writeErr, p, req.model, err)
		}
	}
	var estimate Usage
	var hold int64
	if kind != kindCountTokens {
		// A pinned deployment is one of grp's, so its price is among these.
		price := reachablePrice(t, grp, kind, req, mayUse)
		estimate = estimateUsage(req, kind)
		// The budget hold must not fall short of the real cost, or concurrent calls overspend by more than one
		// call's estimate: it prices the prompt at one token per byte, which no tokenizer exceeds, plus the
		// conversation a Responses follow-up continues. Rate limits reserve the typical count (four bytes a
		// token) and are settled to the real one.
		worst := estimate
		worst.Input = saturatingAdd(int64(len(req.body)), carried)
		hold = price.dearestPrompt().Cost(worst)
	}
	// Counting tokens is free and uses none, but it is a request: it counts against rpm and needs a budget left.
	res, err = g.gov.Reserve(p, governance.Request{Kind: governance.KindModel, Name: req.model,
		EstimatedCostNanoUSD: hold, EstimatedTokens: estimate.Total()})
	if err != nil {
		return g.reject(c, writeErr, p, req.model, err)
	}
	span = g.tracer.Start(trace.FromHeaders(func(k string) string { return c.Get(k) }), trace.LayerLLM, grp.spanName(kind))
	span.KeyID, span.KeyName, span.Team, span.Org, span.Model = p.KeyID, p.KeyName, p.Team, p.Org, req.model
	var tp [trace.TraceparentLen]byte
	c.Response().Header.SetCanonical(headerTraceparent, span.Context().AppendTraceparent(tp[:0]))
	res.RateLimitHeaders(func(k, v string) { c.Response().Header.SetCanonical([]byte(k), []byte(v)) })

	cl := &call{kind: kind, req: req, group: grp, tbl: t, span: span, start: start, headers: clientHeaders(c, kind), mayUse: mayUse,
		rc: c.Context()}
	if req.stream {
		// Asked only of streams: UserContext stores a context on every request it is called for.
		cl.ends = c.UserContext()
	}
	var out *result
	if pinned != nil {
		out, err = g.routePinned(cl, pinned)
	} else {
		out, err = g.route(cl)
	}
	// From here on finish owns the reservation and the span.
	held := res
	res, span = nil, nil
	if err != nil {
		ae := asAPIError(err)
		g.finish(cl, held, nil, ae.status, ae.message)
		writeErr(c, ae)
		return nil
	}
	if out.stream == nil {
		var usd [maxUSDLen]byte
		c.Response().Header.SetCanonical(headerCostUSD, appendUSD(usd[:0], out.d.price.Cost(out.usage)))
		c.Response().Header.SetContentType(fiber.MIMEApplicationJSON)
		c.Response().SetBodyRaw(out.body)
		if kind == kindResponses {
			g.pins.remember(responseID(out.body), out.d, pinOwner(cl.span.Team, cl.span.KeyID), out.usage.carried())
		}
		g.finish(cl, held, out, http.StatusOK, "")
		return nil
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	c.Response().ImmediateHeaderFlush = true
	// The writer runs after this handler returned, on its own goroutine: it
	// must not touch c. The stream's cost is known only at its end, so it
	// goes on the span, not in a header. The writer keeps its own copy of the request id: fasthttp recycles the
	// request's buffers when the client leaves, while the writer still runs and may log.
	requestID := string(c.Response().Header.Peek(fiber.HeaderXRequestID))
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) { g.stream(w, cl, held, out, requestID) })
	return nil
}

// Header names set on every call, in the canonical form fasthttp writes, so
// setting them skips normalizing.
var (
	headerTraceparent = []byte("Traceparent")
	headerCostUSD     = []byte("X-Switchboard-Cost-Usd")
)

// stream relays a committed stream and then settles and ends the call.
func (g *Gateway) stream(w *bufio.Writer, cl *call, res *governance.Reservation, out *result, requestID string) {
	status, msg := http.StatusInternalServerError, "stream writer panicked"
	defer func() {
		if r := recover(); r != nil {
			g.log.Error("llm stream panic", "panic", r, "request_id", requestID)
		}
		out.stream.close(errClientGone)
		var estimated bool
		if out.usage, estimated = streamUsage(out.stream.tr, cl.req.estimateInput()); estimated {
			cl.span.Attrs = append(cl.span.Attrs, trace.Attr{Key: "usage", Value: "estimated"})
		}
		out.d.st.inFlight.Add(-1)
		g.finish(cl, res, out, status, msg)
	}()
	switch err := relay(w, out.stream, out.first); {
	case err == nil:
		status, msg = http.StatusOK, ""
	case errors.Is(err, errClientGone):
		status, msg = 499, "client closed the stream"
	case errors.Is(err, errStreamDuration):
		// The gateway's limit ended it: the deployment did nothing wrong, so its breaker is left alone.
		status, msg = http.StatusGatewayTimeout, err.Error()
	case errors.As(err, new(*endedError)):
		status, msg = http.StatusServiceUnavailable, err.Error()
	default:
		status, msg = http.StatusBadGateway, "upstream stream failed: "+err.Error()
		out.d.st.breaker.failure(time.Now(), cl.tbl.router.AllowedFails, cl.tbl.router.Cooldown)
	}
}

// abandon releases what a panicking call holds; Settle and End are idempotent.
func (g *Gateway) abandon(res *governance.Reservation, span *trace.Span) {
	if res != nil {
		res.Settle(0, 0)
	}
	if span != nil {
		span.Status, span.HTTPStatus, span.Error = trace.StatusError, http.StatusInternalServerError, "internal error"
		span.End()
	}
}

// reject answers a call refused before any upstream was contacted. A model the key may not use is answered as
// one that does not exist, as OpenAI does, so a key cannot find out which models the gateway serves; the audit
// log still records the refusal with its rule.
func (g *Gateway) reject(c *fiber.Ctx, writeErr func(*fiber.Ctx, error), p *governance.Principal, model string, err error) error {
	ae := asAPIError(err)
	var ge *governance.Error
	if errors.As(err, &ge) {
		ge.RateLimitHeaders(func(k, v string) { c.Set(k, v) })
		g.gov.Denied(governance.RequestDenial(c, p, governance.KindModel, model, err))
		if ge.Kind == governance.Forbidden {
			ae = errModelNotFound(model)
		}
	}
	g.metrics.requests.WithLabelValues(model, strconv.Itoa(ae.status)).Inc()
	writeErr(c, ae)
	return nil
}

// finish settles the reservation with the real cost and ends the spans.
// The call's cost is booked on the call span only; attempt spans carry 0.
func (g *Gateway) finish(cl *call, res *governance.Reservation, out *result, status int, msg string) {
	span := cl.span
	span.Retries, span.Fallbacks, span.TTFT, span.HTTPStatus = cl.retries, cl.fallbacks, cl.ttft, status
	var cost int64
	if out != nil {
		cost = out.d.price.Cost(out.usage)
		span.Provider, span.Deployment = string(out.d.provider), out.d.id
		if out.d.group != span.Model {
			// Spend per model books what served the call, as its cost is that
			// model's; the trace still says what the client asked for.
			span.Attrs = append(span.Attrs, trace.Attr{Key: "requested_model", Value: span.Model})
			span.Model = out.d.group
		}
		span.InputTokens, span.OutputTokens, span.CachedTokens = out.usage.Input, out.usage.Output, out.usage.Cached
		span.CostNanoUSD = cost
		if out.attempt != nil {
			out.attempt.TTFT, out.attempt.Status = cl.ttft, trace.StatusOK
			if msg != "" {
				out.attempt.Status, out.attempt.Error = trace.StatusError, msg
			}
			out.attempt.End()
		}
		res.Settle(cost, out.usage.Total())
	} else {
		res.Settle(0, 0)
	}
	if msg != "" {
		span.Status, span.Error = trace.StatusError, msg
	} else {
		span.Status = trace.StatusOK
	}
	span.End()
	if status == http.StatusOK {
		cl.group.okCalls.Inc()
	} else {
		g.metrics.requests.WithLabelValues(cl.group.name, strconv.Itoa(status)).Inc()
	}
	cl.group.latency.Observe(time.Since(cl.start).Seconds())
	if cl.req.stream && cl.ttft > 0 {
		cl.group.ttft.Observe(cl.ttft.Seconds())
	}
}

// parseCall reads the body and finds the model group it asks for.
func parseCall(body []byte, kind callKind, t *table) (*request, *group, error) {
	if len(body) > t.router.MaxBodyBytes {
		return nil, nil, errTooLarge(t.router.MaxBodyBytes)
	}
	keys := chatKeys
	if kind == kindResponses {
		keys = responsesKeys
	}
	req, err := parseBody(body, keys)
	if err != nil {
		return nil, nil, err
	}
	if req.model == "" {
		return nil, nil, errBadRequest("missing_required_parameter", "you must provide a model parameter")
	}
	if kind == kindEmbeddings && req.stream {
		return nil, nil, errBadRequest("invalid_request", "embeddings cannot be streamed")
	}
	if kind == kindMessages && req.maxTokens == 0 {
		return nil, nil, errBadRequest("invalid_request", "max_tokens: field required")
	}
	if kind == kindCountTokens && req.stream {
		return nil, nil, errBadRequest("invalid_request", "stream: counting tokens cannot be streamed")
	}
	grp := t.groups[req.model]
	if grp == nil {
		return nil, nil, errModelNotFound(req.model)
	}
	return req, grp, nil
}

// defaultMaxOutput is assumed when a chat call sets no max_tokens, so the
// budget hold covers a long answer.
const defaultMaxOutput = 4096

func estimateUsage(req *request, kind callKind) Usage {
	u := Usage{Input: req.estimateInput()}
	if kind != kindEmbeddings {
		perChoice := req.maxTokens
		if perChoice == 0 {
			perChoice = defaultMaxOutput
		}
		// Every one of n choices may use max_tokens; saturate rather than wrap.
		u.Output = math.MaxInt64
		if perChoice <= math.MaxInt64/req.choices {
			u.Output = perChoice * req.choices
		}
	}
	return u
}

// maxPrice is the dearest deployment's price: the hold must cover any of them.
func maxPrice(g *group) Price {
	var p Price
	for _, d := range g.deployments {
		p = p.max(d.price)
	}
	return p
}

// reachablePrice is the dearest price among the deployments of the group and of the fallbacks the key may use that
// can serve a call of kind, so a reservation covers whichever of them ends up answering, and no more.
func reachablePrice(t *table, grp *group, kind callKind, req *request, mayUse func(string) bool) Price {
	p := maxPrice(grp.serving(kind, req))
	for _, names := range [][]string{grp.fallbacks, grp.ctxFallbacks} {
		for _, name := range names {
			if fb := t.groups[name]; fb != nil && mayUse(name) {
				p = p.max(maxPrice(fb.serving(kind, req)))
			}
		}
	}
	return p
}

// explicit is p with each zero cache price spelled out as the input price it stands for.
func (p Price) explicit() Price {
	for _, f := range []*int64{&p.CachedInput, &p.CacheWrite, &p.CacheWrite1h} {
		if *f == 0 {
			*f = p.Input
		}
	}
	return p
}

// dearestPrompt is p with every prompt token at the dearest rate a part of a prompt may bill at: a token per byte
// bounds the tokens, not which of them the upstream reads from or writes to its cache, and an Anthropic cache write
// costs up to twice plain input.
func (p Price) dearestPrompt() Price {
	e := p.explicit()
	d := Price{Input: max(e.Input, e.CachedInput, e.CacheWrite, e.CacheWrite1h), Output: p.Output, LongAbove: p.LongAbove}
	if p.Long != nil {
		long := p.Long.dearestPrompt()
		d.Long = &long
	}
	return d
}

// max is a price no lower than p or o for any usage: each field's maximum, and where either has a long-prompt
// tier, a tier from the lower threshold on at the maximum of both prices above it.
func (p Price) max(o Price) Price {
	// A zero cache price means the input price, so it is compared as that.
	p, o = p.explicit(), o.explicit()
	m := Price{Input: max(p.Input, o.Input), Output: max(p.Output, o.Output), CachedInput: max(p.CachedInput, o.CachedInput),
		CacheWrite: max(p.CacheWrite, o.CacheWrite), CacheWrite1h: max(p.CacheWrite1h, o.CacheWrite1h)}
	if p.Long == nil && o.Long == nil {
		return m
	}
	above := func(x Price) (Price, int64) {
		if x.Long == nil {
			return x, math.MaxInt64
		}
		return *x.Long, x.LongAbove
	}
	pl, pa := above(p)
	ol, oa := above(o)
	long := pl.max(ol)
	m.Long, m.LongAbove = &long, min(pa, oa)
	return m
}

// clientHeaders are the few client headers an upstream of the same dialect
// needs; everything else (the gateway key above all) stays here.
func clientHeaders(c *fiber.Ctx, kind callKind) [][2]string {
	if !kind.anthropicIngress() {
		return nil
	}
	var h [][2]string
	for _, name := range []string{"anthropic-version", "anthropic-beta"} {
		if v := c.Get(name); v != "" {
			h = append(h, [2]string{name, v})
		}
	}
	return h
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// models lists the model groups the caller's key may use.
func (g *Gateway) models(c *fiber.Ctx) error {
	p, err := g.gov.Authenticate(governance.KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key")))
	if err != nil {
		return g.reject(c, writeOpenAIError, nil, "", err)
	}
	t := g.table.Load()
	list := modelList{Object: "list", Data: []modelObject{}}
	for _, name := range t.order {
		if g.gov.Authorize(p, governance.KindModel, name).Allowed {
			list.Data = append(list.Data, t.modelObject(name))
		}
	}
	b, _ := json.Marshal(list)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBodyRaw(b)
	return nil
}

// model answers GET /v1/models/{model} for a model the key may use; any
// other name is not found, so a key learns nothing of models it may not use.
func (g *Gateway) model(c *fiber.Ctx) error {
	p, err := g.gov.Authenticate(governance.KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key")))
	if err != nil {
		return g.reject(c, writeOpenAIError, nil, "", err)
	}
	name, err := url.PathUnescape(c.Params("+"))
	t := g.table.Load()
	if err != nil || t.groups[name] == nil {
		writeOpenAIError(c, errModelNotFound(name))
		return nil
	}
	if err := g.gov.Authorize(p, governance.KindModel, name).Err(); err != nil {
		return g.reject(c, writeOpenAIError, p, name, err)
	}
	b, _ := json.Marshal(t.modelObject(name))
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBodyRaw(b)
	return nil
}

func (t *table) modelObject(name string) modelObject {
	return modelObject{ID: name, Object: "model", Created: t.created, OwnedBy: "switchboard"}
}
