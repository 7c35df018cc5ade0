package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
	"github.com/valyala/fasthttp"
)

// callKind is the client-facing endpoint of a call.
type callKind int

const (
	kindChat        callKind = iota // POST /v1/chat/completions
	kindEmbeddings                  // POST /v1/embeddings
	kindMessages                    // POST /v1/messages (Anthropic ingress)
	kindResponses                   // POST /v1/responses (OpenAI Responses API)
	kindCountTokens                 // POST /v1/messages/count_tokens (Anthropic token counting)
)

// anthropicIngress is a call that came in on the Anthropic API: it is answered in Anthropic's shape, and an
// Anthropic upstream gets the client's anthropic-version and anthropic-beta.
func (k callKind) anthropicIngress() bool { return k == kindMessages || k == kindCountTokens }

func (k callKind) spanName(model string) string {
	switch k {
	case kindEmbeddings:
		return "embeddings " + model
	case kindResponses:
		return "responses " + model
	case kindCountTokens:
		return "count_tokens " + model
	}
	return "chat " + model
}

// spanName is the call span's name for a call of kind k to g.
func (g *group) spanName(k callKind) string {
	switch k {
	case kindEmbeddings:
		return g.embeddingsSpan
	case kindResponses:
		return g.responsesSpan
	case kindCountTokens:
		return g.countTokensSpan
	}
	return g.chatSpan
}

// call is one client request on its way through the router.
type call struct {
	kind    callKind
	req     *request
	group   *group
	tbl     *table
	span    *trace.Span // the call's span; attempts are its children
	start   time.Time
	headers [][2]string // client headers forwarded as-is (Anthropic version/beta)
	mayUse  func(model string) bool

	retries, fallbacks int32
	attempts           int // upstream attempts made so far
	ttft               time.Duration
	// ends is the context a stream runs under (nil: no limit): the server's stream limiter puts
	// server.max_stream_duration on it as its deadline and ends it early, with a cause of its own, to shut down.
	ends context.Context
	// rc answers the call, and names it in the lines logged while the handler runs (governance.LogRequestID).
	// A stream writer must not use it: fasthttp recycles it when the client leaves, while the writer still runs.
	rc *fasthttp.RequestCtx
}

// outcome classifies one attempt for the retry/fallback loop.
type outcome int

const (
	outcomeOK            outcome = iota
	outcomeRetry                 // connection error, timeout, 408, 429, 5xx, upstream auth
	outcomeClientError           // the request itself is wrong: relay, no fallback
	outcomeContextWindow         // prompt too long: context-window fallbacks only
	// outcomeElsewhere: the deployment's account does not hold the response a follow-up names, which another
	// replica (or an earlier process) relayed; another deployment's may. Not the deployment's failure.
	outcomeElsewhere
)

// result is a successful upstream answer, already in the client's dialect.
type result struct {
	d       *deployment
	body    []byte // non-streamed reply
	usage   Usage
	stream  *upstreamStream
	first   []byte // stream output read before the reply was committed
	attempt *trace.Span
}

// route tries the requested group, then its fallbacks in order; a prompt
// that is too long switches to the context-window fallbacks instead.
func (g *Gateway) route(c *call) (*result, error) {
	chain := append([]string{c.group.name}, c.group.fallbacks...)
	switched := false
	var last *apiError
	var lastClass outcome
	for i := 0; i < len(chain); i++ {
		// Only the deployments that serve the call's kind; a fallback group with none is skipped. serve refused
		// a requested group with none before anything was reserved.
		grp := c.tbl.groups[chain[i]].serving(c.kind, c.req)
		if len(grp.deployments) == 0 {
			continue
		}
		if i > 0 {
			if !c.mayUse(chain[i]) {
				continue
			}
			c.fallbacks++
		}
		res, err, class := g.tryGroup(c, grp)
		if err == nil {
			return res, nil
		}
		last, lastClass = err, class
		switch class {
		case outcomeClientError:
			return nil, err
		case outcomeContextWindow:
			if switched || len(c.group.ctxFallbacks) == 0 {
				return nil, err
			}
			switched = true
			chain = append(chain[:i+1:i+1], c.group.ctxFallbacks...)
		}
	}
	if lastClass == outcomeElsewhere {
		// No account tried holds the response: the provider's own answer says so best.
		return nil, last
	}
	return nil, exhausted(c.group.name, last)
}

func (g *Gateway) tryGroup(c *call, grp *group) (*result, *apiError, outcome) {
	var tried []*deployment
	var last *apiError
	lastClass := outcomeRetry
	for n := 0; n <= c.tbl.router.Retries; n++ {
		d := pick(grp, tried, time.Now())
		if d == nil {
			if last == nil {
				last = unavailable(grp, time.Now())
			}
			return nil, last, lastClass
		}
		if n > 0 {
			// Counted and waited for only when there is a deployment to retry on: a 429 may have paused the
			// only one.
			c.retries++
			time.Sleep(backoff(c.tbl.router.RetryBackoff, n))
		}
		tried = append(tried, d)
		res, err, class := g.attempt(c, d)
		if class == outcomeOK {
			return res, nil, class
		}
		last = err
		if class != outcomeRetry && class != outcomeElsewhere {
			return nil, err, class
		}
		if class == outcomeElsewhere {
			lastClass = outcomeElsewhere
		} else {
			lastClass = outcomeRetry
		}
	}
	return nil, last, lastClass
}

// backoff is exponential from base with full jitter in [d/2, d), capped.
func backoff(base time.Duration, n int) time.Duration {
	d := min(base<<(n-1), 5*time.Second)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// exhausted is the error once every group failed with a retryable error.
func exhausted(model string, last *apiError) *apiError {
	if last == nil || last.code == "no_healthy_deployment" || last.code == "upstream_rate_limited" {
		return last
	}
	e := &apiError{status: http.StatusBadGateway, typ: "server_error", code: "upstream_unavailable",
		message: fmt.Sprintf("all deployments of model %q failed; last: %s", model, last.message), retryAfter: last.retryAfter}
	switch last.status {
	case http.StatusTooManyRequests:
		e.status, e.typ, e.code = http.StatusTooManyRequests, "rate_limit_error", "upstream_rate_limited"
	case http.StatusGatewayTimeout:
		e.status, e.code = http.StatusGatewayTimeout, "upstream_timeout"
	}
	return e
}

// attempt makes one upstream call on d, whose in-flight slot pick took. On
// success with a stream, the slot and the attempt span stay held until the
// stream is finished.
func (g *Gateway) attempt(c *call, d *deployment) (*result, *apiError, outcome) {
	buf := upstreamBodies.Get().(*[]byte)
	target, body, aerr := upstreamFor(c, d, (*buf)[:0])
	if aerr != nil {
		upstreamBodies.Put(buf)
		d.st.inFlight.Add(-1)
		d.st.breaker.release()
		return nil, aerr, outcomeClientError
	}
	// A call's first attempt, when it succeeds, is the whole call: the call span already names the deployment, so
	// a child span would only double the rows every call writes to storage. The first attempt therefore sends the
	// call span upstream as its parent and gets a span of its own only if it fails; every later attempt has one.
	c.attempts++
	start := time.Now()
	var span *trace.Span
	upstreamParent := c.span.Context()
	if c.attempts > 1 {
		span = g.attemptSpan(c, d, start)
		upstreamParent = span.Context()
	}
	fail := func(ae *apiError, class outcome, httpStatus int) (*result, *apiError, outcome) {
		d.st.inFlight.Add(-1)
		switch {
		case class == outcomeRetry && httpStatus == http.StatusTooManyRequests && ae.retryAfter > 0:
			// Paused for what the 429 asked, at most a cooldown: an upstream's word must not take a
			// deployment out for an hour.
			d.st.breaker.rateLimited(time.Now(), min(ae.retryAfter, c.tbl.router.Cooldown))
		case class == outcomeRetry:
			if d.st.breaker.failure(time.Now(), c.tbl.router.AllowedFails, c.tbl.router.Cooldown) {
				g.metrics.cooldowns.WithLabelValues(d.id).Inc()
				g.log.Warn("deployment cooling down", "deployment", d.id, "cooldown", c.tbl.router.Cooldown,
					governance.LogRequestID(c.rc))
			}
		default:
			d.st.breaker.success()
		}
		g.metrics.attempts.WithLabelValues(d.id, outcomeLabel(class)).Inc()
		if span == nil {
			span = g.attemptSpan(c, d, start)
		}
		span.Status, span.HTTPStatus, span.Error = trace.StatusError, httpStatus, ae.message
		span.End()
		return nil, ae, class
	}
	client := g.client.Load()
	deadline := start.Add(d.timeout)
	// A stream's own limit (server.max_stream_duration) runs from its request, so the wait for the upstream's
	// headers counts against it too.
	var streamEnd time.Time
	if c.ends != nil {
		if end, ok := c.ends.Deadline(); ok && end.Before(deadline) {
			deadline, streamEnd = end, end
		}
	}
	resp, err := client.send(upstreamRequest{
		url: target, body: body, headers: upstreamHeaders(c, d), stream: c.req.stream,
		deadline: deadline, trace: upstreamParent, ends: c.ends,
	})
	if err != nil {
		// Declared here, as errors.As moves it to the heap: a call that succeeded pays nothing for it.
		if ee := (*endedError)(nil); errors.As(err, &ee) {
			// The abandoned call still sends body, so its buffer is left to the GC. Ended by the gateway, not
			// failed by the deployment: no retry, no cooldown.
			return fail(ee.apiError(), outcomeClientError, 0)
		}
	}
	// send keeps no reference to the body once it returns, whichever code
	// built it.
	if cap(body) <= maxPooledBody {
		*buf = body[:0]
	}
	upstreamBodies.Put(buf)
	if err != nil {
		if isTimeout(err) && !streamEnd.IsZero() {
			// Our limit, not the deployment's failure: no retry, no cooldown.
			return fail(errDurationExceeded(), outcomeClientError, 0)
		}
		// The client reads the deployment's label; the line names its upstream and what the connection said.
		g.log.Warn("deployment attempt failed", "deployment", d.id, "err", err, governance.LogRequestID(c.rc))
		ae := &apiError{status: http.StatusBadGateway, typ: "server_error", code: "upstream_error",
			message: fmt.Sprintf("deployment %s: connection failed", d.label)}
		switch {
		case isTimeout(err):
			ae.status, ae.message = http.StatusGatewayTimeout, fmt.Sprintf("deployment %s: timed out after %s", d.label, d.timeout)
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			ae.message = fmt.Sprintf("deployment %s: reply larger than router.max_response_bytes (%d bytes)", d.label, client.maxResponse)
		}
		return fail(ae, outcomeRetry, 0)
	}
	status := resp.StatusCode()
	if status < 200 || status > 299 {
		// Read Retry-After before readErrorBody returns resp to the pool, which resets its headers.
		retryAfter := bytes.Clone(resp.Header.Peek("Retry-After"))
		raw := readErrorBody(resp, c.req.stream)
		ae, class := classifyStatus(d, status, raw, retryAfter)
		if class == outcomeClientError && c.req.previousID != "" && ae.code == "previous_response_not_found" {
			class = outcomeElsewhere
		}
		return fail(ae, class, status)
	}
	res := &result{d: d, attempt: span}
	if c.req.stream {
		st := openStream(resp, d, c.tbl.router, c.ends, streamTranslatorFor(c, d, g.pins))
		var perr error
		for len(res.first) == 0 && perr == nil {
			res.first, perr = st.pump(res.first)
		}
		if perr != nil && !errors.Is(perr, io.EOF) {
			st.close(perr)
			if errors.Is(perr, errStreamDuration) {
				// Our limit, not the deployment's failure: no retry, no cooldown.
				return fail(errDurationExceeded(), outcomeClientError, status)
			}
			if ee := (*endedError)(nil); errors.As(perr, &ee) {
				return fail(ee.apiError(), outcomeClientError, status)
			}
			g.log.Warn("deployment stream failed before its first event", "deployment", d.id, "err", perr,
				governance.LogRequestID(c.rc))
			ae := &apiError{status: http.StatusBadGateway, typ: "server_error", code: "upstream_error",
				message: fmt.Sprintf("deployment %s: stream failed before its first event: %s", d.label, streamFailure(perr))}
			return fail(ae, outcomeRetry, status)
		}
		res.stream = st
		c.ttft = time.Since(c.start)
		d.st.observeLatency(time.Since(start))
	} else {
		out, u, terr := responseFor(c, d, resp.Body())
		releaseResponse(resp)
		if terr != nil {
			ae := &apiError{status: http.StatusBadGateway, typ: "server_error", code: "upstream_error",
				message: fmt.Sprintf("deployment %s: unreadable reply: %v", d.label, terr)}
			return fail(ae, outcomeRetry, status)
		}
		res.body, res.usage = out, u
		d.st.inFlight.Add(-1)
		d.st.observeLatency(time.Since(start))
	}
	d.st.breaker.success()
	d.okAttempts.Inc()
	if span != nil {
		span.HTTPStatus = status
	}
	return res, nil, outcomeOK
}

// attemptSpan starts the span of one upstream attempt, a child of the call's span.
func (g *Gateway) attemptSpan(c *call, d *deployment, start time.Time) *trace.Span {
	span := g.tracer.Start(c.span.Context(), trace.LayerLLM, d.attemptName)
	span.Start = start
	span.Model, span.Provider, span.Deployment = d.group, string(d.provider), d.id
	span.KeyID, span.KeyName, span.Team, span.Org = c.span.KeyID, c.span.KeyName, c.span.Team, c.span.Org
	return span
}

// upstreamBodies recycles the buffers upstream bodies are built in: a copy
// of every prompt per attempt was, with big prompts, the largest allocation
// of a call. Buffers grown past maxPooledBody are left to the GC so one huge
// prompt does not stay pinned.
var upstreamBodies = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBody = 1 << 20

func outcomeLabel(o outcome) string {
	return [...]string{"ok", "retryable_error", "client_error", "context_window", "not_here"}[o]
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// upstreamErrorBody covers both OpenAI's and Anthropic's error shapes.
type upstreamErrorBody struct {
	Error struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	} `json:"error"`
}

// classifyStatus turns an upstream error reply into what the loop does next
// and what the client would see. Retryable errors never carry the upstream's
// text: a provider's 401 message can quote part of our key.
func classifyStatus(d *deployment, status int, raw []byte, retryAfter []byte) (*apiError, outcome) {
	// Some providers quote the credential they were sent in a 4xx that is relayed below.
	raw = d.secrets.Bytes(raw)
	var eb upstreamErrorBody
	_ = json.Unmarshal(raw, &eb)
	if d.secrets.Escaped(raw) {
		// Quoted with JSON escapes, a credential survives the scan above: the reply is not relayed, and the
		// client and the span get its fields decoded and redacted instead.
		raw = nil
		eb.Error.Message, eb.Error.Type = d.secrets.String(eb.Error.Message), d.secrets.String(eb.Error.Type)
		eb.Error.Code = nil
	}
	code := strings.Trim(string(eb.Error.Code), `"`)
	if (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge) && isContextWindow(code, eb.Error.Message) {
		return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", code: "context_length_exceeded",
			message: eb.Error.Message, upstreamBody: raw, upstreamAnthropic: d.provider == ProviderAnthropic}, outcomeContextWindow
	}
	if status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500 ||
		status == http.StatusUnauthorized || status == http.StatusForbidden {
		ae := &apiError{status: status, typ: "server_error", code: "upstream_error",
			message: fmt.Sprintf("deployment %s answered HTTP %d", d.label, status)}
		if secs, err := time.ParseDuration(string(retryAfter) + "s"); err == nil && secs > 0 && secs <= time.Hour {
			ae.retryAfter = secs
		}
		return ae, outcomeRetry
	}
	if eb.Error.Message == "" {
		return &apiError{status: status, typ: "invalid_request_error", code: "upstream_rejected",
			message: fmt.Sprintf("deployment %s rejected the request with HTTP %d", d.label, status)}, outcomeClientError
	}
	return &apiError{status: status, typ: eb.Error.Type, code: code, message: eb.Error.Message,
		upstreamBody: raw, upstreamAnthropic: d.provider == ProviderAnthropic}, outcomeClientError
}

func isContextWindow(code, msg string) bool {
	if code == "context_length_exceeded" {
		return true
	}
	m := strings.ToLower(msg)
	for _, s := range []string{"context length", "context window", "maximum context", "prompt is too long", "too many tokens", "input is too long"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// readErrorBody copies at most 64 KiB of an error reply and releases it.
func readErrorBody(resp *fasthttp.Response, streamed bool) []byte {
	var raw []byte
	if streamed {
		raw, _ = io.ReadAll(io.LimitReader(resp.BodyStream(), 64<<10))
	} else {
		raw = bytes.Clone(resp.Body())
	}
	releaseResponse(resp)
	return raw
}

// releaseResponse returns a fully handled reply to the pool; a streamed body
// must be closed first or the client sees an empty reply.
func releaseResponse(resp *fasthttp.Response) {
	if resp.StreamBody {
		_ = resp.CloseBodyStream()
	}
	fasthttp.ReleaseResponse(resp)
}
