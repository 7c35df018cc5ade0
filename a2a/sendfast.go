package a2a

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/gofiber/fiber/v2"
	"github.com/shopspring/decimal"
	"github.com/valyala/fasthttp"
	"golang.org/x/mod/semver"

	"github.com/switchboard-gw/switchboard/governance"
)

// The send fast path. A 1.0 SendMessage to an agent whose client would send
// it to a 1.0 JSON-RPC interface needs no translation, so the gateway
// forwards the client's bytes and returns the upstream's (with the agent's
// secrets redacted, should it quote them: governance.Redactor), instead of going
// through fiber's net/http adaptor, a2a-go's server handler (decode,
// re-encode) and a2a-go's client (encode, decode) — about half of the
// gateway's CPU per call. It decodes what it decides on with the same
// decoder as the slow path and refuses to forward a body whose deciding
// fields (method, params, message, taskId, contextId, referenceTaskIds,
// configuration, taskPushNotificationConfig; and in the answer result,
// task, message, id, contextId) are written twice or in another case, since
// the upstream might read another copy than the gateway did.
//
// Every other outcome keeps the slow path's behaviour exactly: a request
// the fast path does not take goes to the slow path untouched, and an
// answer it does not pass through (an error, an unexpected status, a
// transport failure, a result that fails a check) is handed to the slow
// path as a replay: a2a-go's handler and client process the same call
// again, but the client's HTTP request is answered with the exchange that
// already happened instead of being sent a second time.

// fastSendURL returns the URL a2a-go's client picks for the card's 1.0
// calls (the first 1.x interface of a binding it speaks, in card order),
// when that is JSON-RPC without a tenant and reached without an HTTP proxy
// (which the net/http transport would use); "" otherwise.
func fastSendURL(card *a2a.AgentCard) string {
	for _, iface := range card.SupportedInterfaces {
		if iface == nil || (iface.ProtocolBinding != a2a.TransportProtocolJSONRPC &&
			iface.ProtocolBinding != a2a.TransportProtocolHTTPJSON) {
			continue
		}
		v := string(iface.ProtocolVersion)
		if !strings.HasPrefix(v, "v") {
			v = "v" + v
		}
		if semver.Major(v) != "v1" {
			continue
		}
		if iface.ProtocolBinding != a2a.TransportProtocolJSONRPC || iface.Tenant != "" {
			return ""
		}
		r, err := http.NewRequest(http.MethodPost, iface.URL, nil)
		if err != nil || r.URL.User != nil {
			return ""
		}
		if p, err := http.ProxyFromEnvironment(r); err != nil || p != nil {
			return ""
		}
		return iface.URL
	}
	return ""
}

// fastRequest is a SendMessage the fast path takes.
type fastRequest struct {
	agent   *agent
	body    []byte
	id      []byte // raw JSON-RPC id
	message *a2a.Message
	url     string
}

// fastSend reports whether the call is a 1.0 SendMessage the fast path
// can forward; anything else, valid or not, is the slow path's.
func (g *Gateway) fastSend(c *fiber.Ctx, name string) (fastRequest, bool) {
	if v := c.Get(a2a.SvcParamVersion); v != "" && !isV1(v) {
		return fastRequest{}, false
	}
	ag := g.agents.get(name)
	if ag == nil {
		return fastRequest{}, false
	}
	up := ag.current.Load()
	if up == nil || up.sendURL == "" {
		return fastRequest{}, false
	}
	// The raw body, as the slow path reads it: fiber's c.Body() would also
	// undo a Content-Encoding the slow path refuses.
	body := c.Request().Body()
	top, ok := pick(body, "jsonrpc", "id", "method", "params")
	id, params := top.get("id"), top.get("params")
	if !ok || string(top.get("jsonrpc")) != `"2.0"` || string(top.get("method")) != `"SendMessage"` ||
		id == nil || !plainID(id) || params == nil {
		return fastRequest{}, false
	}
	p, ok := pick(params, "message", "configuration")
	if !ok {
		return fastRequest{}, false
	}
	if m := p.get("message"); m != nil && string(m) != "null" {
		if _, ok := pick(m, "taskId", "contextId", "referenceTaskIds"); !ok {
			return fastRequest{}, false
		}
	}
	if cfg := p.get("configuration"); cfg != nil && string(cfg) != "null" {
		if _, ok := pick(cfg, "taskPushNotificationConfig"); !ok {
			return fastRequest{}, false
		}
	}
	var req a2a.SendMessageRequest
	// A push notification config is the slow path's to check (checkSend).
	if json.Unmarshal(params, &req) != nil || (req.Config != nil && req.Config.PushConfig != nil) {
		return fastRequest{}, false
	}
	return fastRequest{agent: ag, body: body, id: id, message: req.Message, url: up.sendURL}, true
}

// sendFast is serveRPC's pipeline for a fast-path call:
// span → authenticate → authorize → agent → reserve → forward → settle → end span.
func (g *Gateway) sendFast(c *fiber.Ctx, name string, req fastRequest) error {
	env := envelope{ID: fastID(req.id), Method: "SendMessage", v1: true}
	origin := governance.RequestDenial(c, nil, governance.KindAgent, name, nil)
	out := responder{set: func(k, v string) { c.Set(k, v) }, write: func(status int, body []byte) {
		_ = c.Status(status).Send(body)
	}}
	adm, ok := g.admit(name, env, nil, func(k string) string { return c.Get(k) }, origin, out)
	if !ok {
		return nil
	}
	cl := &call{
		agent: adm.agent, owners: g.owners, principal: adm.principal, method: env.Method,
		traceparent: adm.span.Context().Traceparent(), extensions: extensionsOf(func(name string) []string { return headerValues(c, name) }),
		start: adm.span.Start, reached: true, requestID: adm.requestID,
	}
	// A reload may have replaced the agent since fastSend looked: then the
	// slow path calls the new one.
	if adm.agent != req.agent || cl.checkMessage(req.message) != nil {
		return g.answerSlowly(c, name, adm, nil)
	}
	rp, answer, resend := g.exchange(cl, req)
	if answer == nil {
		if resend {
			rp = nil
		}
		return g.answerSlowly(c, name, adm, rp)
	}
	if cl.observe(answer.Event) != nil {
		return g.answerSlowly(c, name, adm, rp)
	}
	cost := cl.cost()
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set("x-switchboard-cost-usd", decimal.New(cost, -9).String())
	_ = c.Status(http.StatusOK).Send(rp.body)
	adm.res.Settle(cost, 0)
	g.end(adm.span, cl, cost)
	return nil
}

// answerSlowly hands an admitted call to the slow path; rp, when set, is
// the upstream exchange it replays instead of calling the upstream again.
func (g *Gateway) answerSlowly(c *fiber.Ctx, name string, adm admission, rp *replay) error {
	g.setRPCValues(c, name)
	c.Context().SetUserValue(admittedKey{}, &admitted{admission: adm, replay: rp})
	return g.rpc(c)
}

// newSendClient is the fast path's upstream client. fasthttp costs a
// fraction of net/http's CPU per call; it is used only where the two behave
// alike (see fastSendURL and exchange).
func newSendClient(limit int64) *fasthttp.Client {
	return &fasthttp.Client{
		// Past it, fasthttp fails with ErrBodyTooLarge and closes the connection.
		MaxResponseBodySize: int(min(limit, math.MaxInt)),
		MaxConnsPerHost:     4096,
		MaxConnWaitTimeout:  5 * time.Second,
		MaxIdleConnDuration: 30 * time.Second,
		ReadBufferSize:      16 << 10,
		DialTimeout:         fasthttp.DialDualStackTimeout, // net/http dials IPv6 too
		// net/http finds a pooled connection the upstream closed while idle
		// before reusing it; fasthttp finds out on the first read, before any
		// byte of an answer: resend once in that case only, as the LLM proxy does.
		RetryIfErr: func(_ *fasthttp.Request, attempts int, err error) (bool, bool) {
			return false, attempts < 2 && (errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed))
		},
	}
}

// exchange forwards the request and returns what came back, with the
// decoded result when the answer can go to the client as it is: HTTP 200, a
// JSON-RPC 2.0 result (no error) for the request's own id, naming exactly
// one Task or Message whose ids are written once. resend is true when the
// upstream redirected: it has not taken the message, and the slow path's
// net/http client follows redirects.
func (g *Gateway) exchange(c *call, req fastRequest) (rp *replay, answer *a2a.StreamResponse, resend bool) {
	hreq, hresp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(hreq)
	defer fasthttp.ReleaseResponse(hresp)
	hreq.SetRequestURI(req.url)
	hreq.Header.SetMethod(fasthttp.MethodPost)
	hreq.Header.SetContentType("application/json")
	hreq.Header.Set(a2a.SvcParamVersion, string(a2a.Version))
	hreq.Header.Set("traceparent", c.traceparent)
	for _, e := range c.extensions {
		hreq.Header.Add(a2a.SvcParamExtensions, e)
	}
	for k, v := range c.agent.cfg.Headers {
		hreq.Header.Set(k, v)
	}
	hreq.SetBodyRaw(req.body)
	err := c.agent.send.DoDeadline(hreq, hresp, time.Now().Add(c.agent.cfg.timeout()))
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		// The agent has taken the message: the replay fails the call with
		// the size error instead of asking again.
		return &replay{err: errAnswerTooLarge}, nil, false
	}
	if err != nil {
		return &replay{err: err, timedOut: errors.Is(err, fasthttp.ErrTimeout)}, nil, false
	}
	status := hresp.StatusCode()
	if status >= 300 && status < 400 {
		return nil, nil, true
	}
	// net/http asks for gzip and undoes it unasked; an upstream that
	// compresses anyway must read the same on both paths.
	var body []byte
	if bytes.EqualFold(hresp.Header.ContentEncoding(), []byte("gzip")) {
		body, err = hresp.BodyGunzipWithLimit(int(min(c.agent.limit, math.MaxInt)))
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			return &replay{err: errAnswerTooLarge}, nil, false
		case err != nil:
			return &replay{err: err}, nil, false
		}
	} else {
		body = append([]byte(nil), hresp.Body()...)
	}
	// Redacted before anything reads it, as answerTransport does on the
	// slow path; without a secret in it, body is forwarded as it came.
	body = c.agent.secrets.Bytes(body)
	rp = &replay{status: status, contentType: string(hresp.Header.ContentType()), body: body, id: req.id}
	if status != http.StatusOK {
		return rp, nil, false
	}
	top, ok := pick(body, "jsonrpc", "id", "result", "error")
	result := top.get("result")
	if !ok || string(top.get("jsonrpc")) != `"2.0"` || top.get("error") != nil || result == nil ||
		!bytes.Equal(top.get("id"), req.id) {
		return rp, nil, false
	}
	kinds, ok := pick(result, "task", "message", "statusUpdate", "artifactUpdate")
	if !ok {
		return rp, nil, false
	}
	switch {
	case kinds.get("task") != nil:
		_, ok = pick(kinds.get("task"), "id", "contextId")
	case kinds.get("message") != nil:
		_, ok = pick(kinds.get("message"), "taskId", "contextId")
	}
	var sr a2a.StreamResponse
	if !ok || json.Unmarshal(result, &sr) != nil {
		return rp, nil, false
	}
	switch e := sr.Event.(type) {
	case *a2a.Task:
		ok = e != nil
	case *a2a.Message:
		ok = e != nil
	default:
		ok = false
	}
	if !ok {
		return rp, nil, false
	}
	return rp, &sr, false
}

// fastID is the envelope id of a plain raw id (see plainID), as the slow
// path's decoder would have it.
func fastID(raw []byte) any {
	if raw[0] == '"' {
		return string(raw[1 : len(raw)-1])
	}
	f, _ := strconv.ParseFloat(string(raw), 64)
	return f
}

func headerValues(c *fiber.Ctx, name string) []string {
	var vals []string
	for _, v := range c.Request().Header.PeekAll(name) {
		vals = append(vals, string(v))
	}
	return vals
}

// replay is one upstream exchange of the fast path: the answer (status and
// body, and the raw id the request carried) or the transport error.
type replay struct {
	err         error
	status      int
	contentType string
	body        []byte
	id          []byte
	timedOut    bool
}

// answerTo returns the recorded answer as the answer to req, the replayed
// call's request from a2a-go's client. The fast path sent the upstream the
// client's id, which the answer echoes; a2a-go's client sent its own, a
// string, and decodes the answer's id as a string only, so an echoed
// number (the official JS SDK's ids) would fail the whole answer and lose
// the agent's result or error. Where the answer echoes the fast path's id,
// it gets the client's request id instead, as the upstream would have
// echoed it to the slow path; any other id is left for a2a-go to judge.
func (rp *replay) answerTo(req []byte) []byte {
	sent, ok := pick(req, "id")
	if !ok || sent.get("id") == nil {
		return rp.body
	}
	answer, ok := pick(rp.body, "id")
	if !ok || !bytes.Equal(answer.get("id"), rp.id) {
		return rp.body
	}
	return answer.with(rp.body, "id", sent.get("id"))
}

// replayTransport answers the upstream request of a replayed call with its
// recorded exchange; every other request goes to base.
type replayTransport struct{ base http.RoundTripper }

func (t replayTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c, ok := r.Context().Value(callKey{}).(*call)
	if !ok || c.replay == nil {
		return t.base.RoundTrip(r)
	}
	var sent []byte
	if r.Body != nil {
		sent, _ = io.ReadAll(r.Body)
		_ = r.Body.Close()
	}
	rp := c.replay
	if rp.err != nil {
		return nil, rp.err
	}
	return &http.Response{
		Status:     strconv.Itoa(rp.status) + " " + http.StatusText(rp.status),
		StatusCode: rp.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {rp.contentType}},
		Body:    io.NopCloser(bytes.NewReader(rp.answerTo(sent))),
		Request: r,
	}, nil
}
