package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
)

// toolHandler serves tools/call for one upstream tool.
func (g *Gateway) toolHandler(u *upstream, tool string) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return g.callTool(ctx, u, tool, req)
	}
}

// callTool is the governed pipeline of one tools/call. The caller was
// authenticated at the HTTP edge (principalFrom) and authorised by the view's
// tool filter before mcp-go dispatched here, so a hidden tool fails exactly
// like an unknown one.
func (g *Gateway) callTool(ctx context.Context, u *upstream, tool string, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	p := principalFrom(ctx)
	name := u.name + nameSeparator + tool
	cost := u.prices.Load().of(tool)
	hold, err := g.gov.Reserve(p, governance.Request{Kind: governance.KindTool, Name: name, EstimatedCostNanoUSD: cost})
	if err != nil {
		g.metrics.call(u.name, "denied")
		d, _ := ctx.Value(originKey{}).(governance.Denial)
		d.Kind, d.Name, d.Err = governance.KindTool, name, err
		g.gov.Denied(d)
		return deniedResult(err), nil
	}
	span := g.tracer.Start(callerContext(req.Params.Meta, req.Header), trace.LayerTool, "tools/call "+name)
	ask := g.askerFor(ctx, req)
	result, callErr := u.callTool(ctx, tool, req, span.Context(), g.logLevelFor(ctx, req), ask)
	// What the upstream asked the caller meanwhile is part of the call: no
	// span or spend of its own.
	span.Attrs = append(span.Attrs, ask.attrs()...)
	// Upstream text reaches the client, the span and the logs from here.
	callErr = u.secrets.Error(callErr)
	var ended *endedError
	if callErr != nil && !errors.As(callErr, &ended) {
		cost = 0 // nothing was served
	}
	hold.Settle(cost, 0)
	g.metrics.call(u.name, g.endSpan(span, p, u.name, tool, result, callErr, cost))
	if callErr != nil {
		return failureResult(u.name, callErr)
	}
	return withTraceparent(result, span.Context()), nil
}

// endSpan ends the span of a request forwarded upstream and returns its
// outcome; res is a tools/call's result, nil for the other methods.
func (g *Gateway) endSpan(span *trace.Span, p *governance.Principal, server, item string, res *mcp.CallToolResult, err error, cost int64) string {
	span.KeyID, span.KeyName, span.Team, span.Org = p.KeyID, p.KeyName, p.Team, p.Org
	span.ToolServer, span.Tool = server, item
	span.CostNanoUSD = cost
	span.Status = trace.StatusOK
	status := "ok"
	var ended *endedError
	switch {
	case errors.Is(err, errCancelled):
		span.Status, span.Error, status = trace.StatusError, errCancelled.Error(), "cancelled"
	case errors.As(err, &ended):
		span.Status, span.Error, status = trace.StatusError, ended.Error(), "ended"
	case err != nil:
		span.Status, span.Error, status = trace.StatusError, upstreamError(server, err).Error(), "upstream_error"
	case res != nil && res.IsError:
		span.Status, span.Error, status = trace.StatusError, "tool returned an error result", "tool_error"
	}
	span.End()
	return status
}

// callerContext is the trace parent: params._meta.traceparent, else the
// HTTP traceparent header.
func callerContext(meta *mcp.Meta, h http.Header) trace.SpanContext {
	if meta != nil {
		if sc := trace.FromMeta(meta.AdditionalFields); sc.IsValid() {
			return sc
		}
	}
	return trace.FromHeaders(h.Get)
}

// forward sends a prompts/get or resources/read upstream under a span of its
// own, as callTool does a tools/call; item is the upstream's name of the
// prompt, or of the resource or template the URI matched. Governance only
// authorises these (see permits and route): they hold no budget, and their
// spans cost nothing, cost_per_call_usd being the price of a tool call.
// hide keeps what the request carries for the upstream alone out of the
// span, which more people read than the caller.
func (g *Gateway) forward(ctx context.Context, u *upstream, method mcp.MCPMethod, item string, meta *mcp.Meta, h http.Header,
	hide *governance.Redactor, send func(context.Context, *client.Client, *mcp.Meta) error) error {
	span := g.tracer.Start(callerContext(meta, h), trace.LayerTool, string(method)+" "+u.name+nameSeparator+item)
	err := u.secrets.Error(u.request(ctx, h, span.Context(), send))
	g.metrics.request(u.name, method, g.endSpan(span, principalFrom(ctx), u.name, item, nil, hide.Error(err), 0))
	if err != nil {
		return upstreamError(u.name, err)
	}
	return nil
}

// request runs send with the live client, bounded like a tool call and
// carrying the span's trace context in _meta and, to an HTTP upstream, the
// traceparent header. Like a tool call, it waits for a connection lost
// moments ago to come back.
func (u *upstream) request(ctx context.Context, h http.Header, sc trace.SpanContext, send func(context.Context, *client.Client, *mcp.Meta) error) error {
	cli, _, err := u.awaitClient(ctx, nil)
	if err != nil {
		return err
	}
	ctx, release, tooLarge, trips := u.bounded(ctx)
	defer release()
	ctx, rpcError := catchRPCError(withHeaders(ctx, u.headers(h, &sc)))
	if err := rpcError(send(ctx, cli, spanMeta(sc))); err != nil {
		return u.outcome(ctx, err, tooLarge, trips)
	}
	return nil
}

// callTool forwards one call. The upstream request is built afresh: only the
// arguments, a gateway-issued progress token and the trace context go on,
// never the client's other _meta or headers. A Streamable HTTP upstream gets
// it through the relay, the others through the mcp-go client.
func (u *upstream) callTool(ctx context.Context, tool string, in mcp.CallToolRequest, sc trace.SpanContext, logLevel mcp.LoggingLevel, ask *asker) (*mcp.CallToolResult, error) {
	cli, rel, err := u.awaitClient(ctx, nil)
	if err != nil {
		return nil, err
	}
	var clientToken mcp.ProgressToken
	if in.Params.Meta != nil {
		clientToken = in.Params.Meta.ProgressToken
	}
	c := u.calls.add(clientToken, principalFrom(ctx).KeyID, logLevel, notifierFor(ctx))
	defer u.calls.remove(c)

	ctx, release, tooLarge, trips := u.bounded(ctx)
	defer release()
	send := func(cli *client.Client, rel *relay) (*mcp.CallToolResult, error) {
		if rel != nil {
			rc := u.relayCall(tool, in, sc, c, clientToken != nil)
			if u.cfg.Load().ClientRequests {
				rc.ask = ask
			}
			return rel.callTool(ctx, rc, func(n mcp.JSONRPCNotification) {
				// A 2026-07-28 server has no session: a log message on a call's
				// answer stream is about that call, and goes to its caller only.
				// mcp-go's 2025-11-25 sessions put a message on whichever of the
				// session's streams is open, so there it is not tied to a call.
				if rel.modern && n.Method == string(mcp.MethodNotificationMessage) {
					c.logMessage(n.Params.AdditionalFields)
					return
				}
				u.onNotification(n)
			})
		}
		modern := mcp.IsModernProtocol(cli.ProtocolVersion())
		ctx, rpcError := catchRPCError(withHeaders(ctx, u.headers(in.Header, &sc)))
		res, err := cli.CallTool(ctx, mcpRequest(tool, in, sc, c, clientToken != nil, modern))
		return res, rpcError(err)
	}
	res, err := send(cli, rel)
	if errors.Is(err, transport.ErrSessionTerminated) && ctx.Err() == nil {
		// The server no longer knows the session (it restarted): the call
		// never ran, so it goes once more on the session that replaces it.
		signal(u.broken)
		if next, nextRel, aerr := u.awaitClient(ctx, cli); aerr == nil {
			res, err = send(next, nextRel)
		}
	}
	if err != nil {
		return nil, u.outcome(ctx, err, tooLarge, trips)
	}
	return res, nil
}

// bounded is ctx for one request to the upstream: ended when the caller's
// is, or at the upstream's timeout, and marked when its answer is too large
// (tooLarge). trips is streamTrips before the request, for outcome; release
// frees the context.
func (u *upstream) bounded(ctx context.Context) (_ context.Context, release func(), tooLarge *atomic.Bool, trips uint64) {
	trips = u.streamTrips.Load()
	ctx, stop := cancellable(ctx)
	ctx, cancel := u.timeout(ctx)
	ctx, tooLarge = withAnswerMark(ctx)
	return ctx, func() { cancel(); stop() }, tooLarge, trips
}

// outcome is the error of a failed request to the upstream, made in ctx
// with the answer mark tooLarge while streamTrips was trips.
func (u *upstream) outcome(ctx context.Context, err error, tooLarge *atomic.Bool, trips uint64) error {
	var big *responseTooLargeError
	if !errors.As(err, &big) && (tooLarge.Load() || u.streamTrips.Load() != trips) {
		// mcp-go may have lost the read error on the way.
		err = &responseTooLargeError{limit: u.maxResponse.Load()}
	}
	if ctx.Err() == nil {
		// A request its context ended says nothing of the connection, whatever error the transport made of
		// the context's cause.
		u.failed(err)
	}
	switch {
	case errors.As(err, &big):
		return err
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return errTimeout
	case errors.Is(ctx.Err(), context.Canceled):
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errCancelled), errors.Is(cause, context.Canceled):
			return errCancelled
		case errors.Is(cause, context.DeadlineExceeded):
			return errTimeout
		default:
			return &endedError{cause}
		}
	}
	return err
}

// endedError is a request the gateway ended before its answer came, for the reason in cause (it shuts down).
// The upstream did the work up to then, so a tool call is billed; its client is told the cause.
type endedError struct{ cause error }

func (e *endedError) Error() string { return e.cause.Error() }
func (e *endedError) Unwrap() error { return e.cause }

// mcpRequest is the upstream request for the mcp-go client. A 2026-07-28
// upstream gets the caller's log level; a session's level is the
// gateway's own (see connect).
func mcpRequest(tool string, in mcp.CallToolRequest, sc trace.SpanContext, c *call, progress, modern bool) mcp.CallToolRequest {
	out := mcp.CallToolRequest{}
	out.Params.Name = tool
	out.Params.Arguments = in.Params.Arguments
	out.Params.RawArguments = in.Params.RawArguments
	out.Params.Meta = spanMeta(sc)
	if modern && c.logLevel != "" {
		out.Params.Meta.SetLogLevel(c.logLevel)
	}
	if progress {
		out.Params.Meta.ProgressToken = c.token
	}
	return out
}

// spanMeta is an upstream request's _meta: the span's trace context, and
// none of what the client's _meta held.
func spanMeta(sc trace.SpanContext) *mcp.Meta {
	meta := map[string]any{}
	trace.InjectMeta(meta, sc)
	return &mcp.Meta{AdditionalFields: meta}
}

// relayCall is the upstream request for the relay.
func (u *upstream) relayCall(tool string, in mcp.CallToolRequest, sc trace.SpanContext, c *call, progress bool) relayCall {
	rc := relayCall{tool: tool, args: in.Params.RawArguments, sc: sc, headers: u.headers(in.Header, &sc), logLevel: c.logLevel}
	if len(rc.args) == 0 && in.Params.Arguments != nil {
		rc.args, _ = json.Marshal(in.Params.Arguments)
	}
	if progress {
		rc.progressToken = c.token
	}
	if def := u.cat.Load().tool(tool); def != nil && hasParamHeaders(def) {
		params, err := json.Marshal(map[string]json.RawMessage{"arguments": rc.args})
		if err == nil {
			rc.paramHeaders = mcp.GenerateParamHeaders(def, params)
		}
	}
	return rc
}

// hasParamHeaders is a cheap first look for x-mcp-header annotations, so
// that tools without any skip mcp-go's schema walk.
func hasParamHeaders(t *mcp.Tool) bool {
	if len(t.RawInputSchema) > 0 {
		return bytes.Contains(t.RawInputSchema, []byte("x-mcp-header"))
	}
	return true
}

var (
	errTimeout = errors.New("upstream timed out")
	// errCancelled: the client cancelled the call (notifications/cancelled,
	// or it closed the call's stream), which cancelled the upstream request
	// too.
	errCancelled = errors.New("cancelled by the client")
)

// headers are the per-request HTTP headers for an HTTP upstream.
func (u *upstream) headers(in http.Header, sc *trace.SpanContext) map[string]string {
	h := map[string]string{}
	if sc != nil {
		trace.InjectHeaders(*sc, func(k, v string) { h[k] = v })
	}
	if u.cfg.Load().ForwardClientHeader && in != nil {
		if v := in.Get("x-mcp-" + u.name + "-authorization"); v != "" {
			h["Authorization"] = v
		}
	}
	return h
}

// upstreamError describes a failed upstream request without internals.
func upstreamError(server string, err error) error {
	var te *transport.Error
	var big *responseTooLargeError
	var ended *endedError
	switch {
	case errors.As(err, &ended):
		return ended
	case errors.As(err, &big):
		return fmt.Errorf("MCP server %s answered more than %d bytes", server, big.limit)
	case errors.Is(err, errTimeout):
		return fmt.Errorf("MCP server %s timed out", server)
	case errors.Is(err, errCancelled):
		return fmt.Errorf("MCP server %s: call %w", server, errCancelled)
	case errors.Is(err, errUnavailable) || errors.As(err, &te):
		return fmt.Errorf("MCP server %s is unavailable", server)
	}
	return fmt.Errorf("MCP server %s: %w", server, err)
}

// failureResult answers a failed tools/call: the server being down, slow or
// answering too much is a tool execution error the model can read (isError
// result); a JSON-RPC error from the upstream stays a JSON-RPC error, and so
// does the gateway ending the call (the client's retry goes to another
// replica, and the tool's outcome is unknown).
func failureResult(server string, err error) (*mcp.CallToolResult, error) {
	var te *transport.Error
	var big *responseTooLargeError
	if errors.Is(err, errTimeout) || errors.Is(err, errCancelled) || errors.Is(err, errUnavailable) ||
		errors.As(err, &te) || errors.As(err, &big) {
		return mcp.NewToolResultError(upstreamError(server, err).Error()), nil
	}
	return nil, upstreamError(server, err)
}

// deniedResult reports a rate-limit or budget denial as a tool error the
// model can read, with the machine-readable reason in _meta.
func deniedResult(err error) *mcp.CallToolResult {
	msg, kind := "request denied", "denied"
	fields := map[string]any{}
	var ge *governance.Error
	if errors.As(err, &ge) {
		msg, kind = ge.Message, ge.Type()
		if ge.RetryAfter > 0 {
			fields["retryAfterMs"] = ge.RetryAfter.Milliseconds()
			msg += fmt.Sprintf(" (retry after %s)", ge.RetryAfter.Round(1e6))
		}
	}
	fields["error"] = kind
	res := mcp.NewToolResultError(msg)
	res.Meta = mcp.NewMetaFromMap(map[string]any{"switchboard": fields})
	return res
}

// withTraceparent tells the client which span the gateway made, so an agent
// can parent its next call on it.
func withTraceparent(res *mcp.CallToolResult, sc trace.SpanContext) *mcp.CallToolResult {
	if res.Meta == nil {
		res.Meta = &mcp.Meta{}
	}
	if res.Meta.AdditionalFields == nil {
		res.Meta.AdditionalFields = map[string]any{}
	}
	trace.InjectMeta(res.Meta.AdditionalFields, sc)
	return res
}

// promptHandler serves prompts/get for one upstream prompt.
func (g *Gateway) promptHandler(u *upstream, prompt string) server.PromptHandlerFunc {
	return func(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		if pre := prefetchedFor(ctx, mcp.MethodPromptsGet, req.Params.Name); pre != nil {
			return pre.prompt, pre.err
		}
		var res *mcp.GetPromptResult
		err := g.forward(ctx, u, mcp.MethodPromptsGet, prompt, req.Params.Meta, req.Header, nil,
			func(ctx context.Context, cli *client.Client, meta *mcp.Meta) (err error) {
				out := mcp.GetPromptRequest{}
				out.Params.Name, out.Params.Arguments, out.Params.Meta = prompt, req.Params.Arguments, meta
				res, err = cli.GetPrompt(ctx, out)
				return err
			})
		return res, err
	}
}
