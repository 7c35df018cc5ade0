package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/switchboard-gw/switchboard/governance"
)

// edge handles the messages the gateway must answer itself before mcp-go
// sees them; everything else goes on to mcp-go.
//
//   - resources/read of a URI the caller cannot reach (hidden by its ACL or
//     served by no upstream) gets the protocol's resource-not-found error,
//     the same in both cases. mcp-go turns any error a resource handler
//     returns into -32603, so the catch-all handler cannot give it.
//   - notifications/cancelled cancels the caller's own request with that ID,
//     which then goes unanswered (see cancelledBy).
//     mcp-go keys requests by session ID and request ID only, and a
//     2026-07-28 request has no session: any key could cancel another key's
//     call by guessing its ID. Here the key is part of the match.
//   - a request that needs a 2025-11-25 session and names none the gateway
//     serves (see sessionProblem). mcp-go answers a POST without an ID as
//     one with an unknown ID, and serves a GET or DELETE with any ID.
//
// It also detaches the request from fasthttp (see detached) and hands the
// body it already read straight to mcp-go's transport-agnostic Handle, so
// the body is read and the request rebuilt once, not once per layer.
func (v *view) edge(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		if (r.Method == http.MethodGet || r.Method == http.MethodDelete) && sessionVersion(r.Header.Get(mcp.HeaderProtocolVersion)) {
			p, _ := r.Context().Value(principalKey{}).(*governance.Principal)
			if status, why := v.g.sessionProblem(r.Header, p); status != 0 {
				sessionError(w, status, nil, why)
				return
			}
			if r.Method == http.MethodGet {
				defer v.g.listeners.add(v.srv, r.Header.Get(server.HeaderKeySessionID))()
			}
		}
		_, ctx, cancel := detached(r.Context())
		defer cancel()
		if ends, ok := r.Context().Value(streamKey{}).(context.Context); ok {
			// A listening stream never ends by itself: it ends when the client leaves, at
			// server.max_stream_duration, or when the gateway shuts down. mcp-go ends it cleanly when its
			// context does.
			defer context.AfterFunc(ends, cancel)()
		}
		v.stream.Handle(responseWriter{w}, &server.HTTPRequest{Method: r.Method, URL: r.URL, Header: r.Header, Context: ctx})
		return
	}
	v.g.workers.do(func() { v.post(w, r) })
}

// post handles one POSTed message, on a worker (see workers).
func (v *view) post(w http.ResponseWriter, r *http.Request) {
	p, ctx, cancel := detached(r.Context())
	defer cancel()
	hw := responseWriter{w}
	hr := &server.HTTPRequest{Method: r.Method, URL: r.URL, Header: r.Header, Context: ctx}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "cannot read request body", http.StatusBadRequest)
		return
	}
	hr.Body = body
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			URI       string          `json:"uri"`
			Name      string          `json:"name"`
			RequestID json.RawMessage `json:"requestId"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Method == "" {
		v.stream.Handle(hw, hr)
		return
	}
	// Only once the checks mcp-go's transport makes first have passed, so
	// that the client gets the same refusal as from mcp-go.
	if msg.Method != string(mcp.MethodInitialize) && jsonBody(r.Header.Get) && sessionVersion(r.Header.Get(mcp.HeaderProtocolVersion)) {
		if status, why := v.g.sessionProblem(r.Header, p); status != 0 && !mcp.IsModernProtocol(bodyVersion(body)) {
			sessionError(w, status, msg.ID, why)
			return
		}
	}
	if !v.g.transportChecksPass(r.Header.Get, p) {
		v.stream.Handle(hw, hr)
		return
	}
	switch mcp.MCPMethod(msg.Method) {
	case mcp.MethodToolsCall:
		if msg.Params.Name != "" && v.srv.GetTool(msg.Params.Name) != nil {
			v.auditHidden(ctx, p, msg.Params.Name)
		}
	case mcp.MethodPromptsGet:
		if prompts := v.prompts.Load(); prompts != nil && (*prompts)[msg.Params.Name] != nil {
			v.auditHidden(ctx, p, msg.Params.Name)
		}
	}
	ends, _ := r.Context().Value(streamKey{}).(context.Context)
	switch {
	case msg.Method == string(mcp.MethodNotificationCancelled) && len(msg.ID) == 0:
		v.requests.cancel(requestKey(p, r.Header, msg.Params.RequestID))
		w.WriteHeader(http.StatusAccepted)
	case len(msg.ID) == 0:
		v.stream.Handle(hw, hr)
	case msg.Method == string(mcp.MethodResourcesRead) && v.route(ctx, msg.Params.URI) == nil:
		if hidden := v.routeFor(msg.Params.URI, func(string) bool { return true }); hidden != nil {
			v.auditHidden(ctx, p, v.listedName(hidden.u, hidden.name))
		}
		resourceNotFound(w, r, msg.ID, msg.Params.URI)
	default:
		var done func()
		hr.Context, done = v.cancelledBy(ctx, p, r.Header, msg.ID, ends)
		defer done()
		if msg.Method == string(mcp.MethodSubscriptionsListen) && ends != nil {
			// A 2026-07-28 listening stream never ends by itself, as a 2025-11-25 GET one: it ends when the
			// client leaves, at server.max_stream_duration, or when the gateway shuts down. mcp-go closes it
			// cleanly when its request's context ends, which is how the transport says a server ended it.
			defer context.AfterFunc(ends, cancel)()
		}
		if !v.prefetch(w, hr, p, msg.Method, msg.ID) {
			v.stream.Handle(hw, hr)
		}
		// mcp-go writes nothing for a request whose context ended; a POST still answers with a stream, which
		// ends without the response.
		if errors.Is(context.Cause(hr.Context), errCancelled) && w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Cache-Control", "no-cache")
			w.WriteHeader(http.StatusOK)
		}
	}
}

// sessionProblem is the status and message a 2025-11-25 request that
// needs a session gets when it names none this gateway serves, 0 when it
// does: 400 without an Mcp-Session-Id, as the transport asks of a server
// that requires sessions; 404 for an ID this gateway's key did not mint or
// a DELETE ended, which tells the client to start a new session.
func (g *Gateway) sessionProblem(h http.Header, p *governance.Principal) (status int, why string) {
	id := h.Get(server.HeaderKeySessionID)
	if id == "" {
		return http.StatusBadRequest, "Mcp-Session-Id header is required"
	}
	ended, err := g.sessions.check(id, keyIDOf(p))
	switch {
	case err != nil:
		return http.StatusNotFound, "Invalid session ID"
	case ended:
		return http.StatusNotFound, "Session terminated"
	}
	return 0, ""
}

// sessionError answers a sessionProblem with a JSON-RPC error, as the
// gateway's other refusals at the edge; the messages are mcp-go's.
func sessionError(w http.ResponseWriter, status int, id json.RawMessage, why string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0",
		"id":      id,
		"error":   map[string]any{"code": codeInvalidRequest, "message": why},
	})
}

// bodyVersion is the protocol version a message's _meta names: mcp-go
// takes a 2026-07-28 one for a stateless request, whatever the header.
func bodyVersion(body []byte) string {
	var msg struct {
		Params struct {
			Meta *mcp.Meta `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil {
		return ""
	}
	return msg.Params.Meta.ProtocolVersion()
}

// auditHidden records a request for an item this view lists as name (a
// tool, prompt, resource or template) when the key's ACL hides it. The
// request is answered as one for an item that does not exist (so a hidden
// item cannot be told from a missing one) and never reaches the gateway's
// handler, where refusals are otherwise audited.
func (v *view) auditHidden(ctx context.Context, p *governance.Principal, name string) {
	if p == nil {
		return
	}
	d := v.g.gov.Authorize(p, governance.KindTool, v.fullName(name))
	if d.Allowed {
		return
	}
	denial, _ := ctx.Value(originKey{}).(governance.Denial)
	denial.Kind, denial.Name, denial.Err = governance.KindTool, v.fullName(name), d.Err()
	v.g.gov.Denied(denial)
}

// prefetched is the answer of a resources/read or prompts/get the edge
// already asked the upstream for; the view's handler returns it when
// mcp-go calls it for the same request.
type prefetched struct {
	method   mcp.MCPMethod
	name     string // the URI, or the prompt's listed name
	contents []mcp.ResourceContents
	prompt   *mcp.GetPromptResult
	err      error
}

type prefetchKey struct{}

// prefetchedFor is the answer prefetch got for this request, if it asked
// for method on name.
func prefetchedFor(ctx context.Context, method mcp.MCPMethod, name string) *prefetched {
	if pre, ok := ctx.Value(prefetchKey{}).(*prefetched); ok && pre.method == method && pre.name == name {
		return pre
	}
	return nil
}

// prefetch asks the upstream for a resources/read or prompts/get before
// mcp-go dispatches it. mcp-go answers any handler error with -32603, so an
// upstream's JSON-RPC error (a resource it does not have: -32002) is
// written here, with its own code; any other outcome goes on to mcp-go in
// hr's context, which also decorates results as the protocol version
// wants. It reports whether it answered.
func (v *view) prefetch(w http.ResponseWriter, hr *server.HTTPRequest, p *governance.Principal, method string, id json.RawMessage) bool {
	var params struct {
		URI       string            `json:"uri"`
		Name      string            `json:"name"`
		Arguments map[string]string `json:"arguments"`
		Meta      *mcp.Meta         `json:"_meta"` // the caller's traceparent
	}
	var envelope struct {
		Params *json.RawMessage `json:"params"`
	}
	if json.Unmarshal(hr.Body, &envelope) != nil || envelope.Params == nil || json.Unmarshal(*envelope.Params, &params) != nil {
		return false
	}
	var pre *prefetched
	switch mcp.MCPMethod(method) {
	case mcp.MethodResourcesRead:
		req := mcp.ReadResourceRequest{Header: hr.Header}
		req.Params.URI, req.Params.Meta = params.URI, params.Meta
		contents, err := v.readResource(hr.Context, req)
		pre = &prefetched{method: mcp.MethodResourcesRead, name: params.URI, contents: contents, err: err}
	case mcp.MethodPromptsGet:
		var handler server.PromptHandlerFunc
		if prompts := v.prompts.Load(); prompts != nil {
			handler = (*prompts)[params.Name]
		}
		if handler == nil || !v.permits(p, params.Name) {
			return false // mcp-go answers: not found
		}
		req := mcp.GetPromptRequest{Header: hr.Header}
		req.Params.Name, req.Params.Arguments, req.Params.Meta = params.Name, params.Arguments, params.Meta
		prompt, err := handler(hr.Context, req)
		pre = &prefetched{method: mcp.MethodPromptsGet, name: params.Name, prompt: prompt, err: err}
	default:
		return false
	}
	var rpc *upstreamRPCError
	if errors.As(pre.err, &rpc) {
		var reqID any
		_ = json.Unmarshal(id, &reqID)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(rpcErrorMessage(reqID, pre.err))
		return true
	}
	hr.Context = context.WithValue(hr.Context, prefetchKey{}, pre)
	return false
}

// cancelledBy registers the request with this ID for notifications/cancelled, which ends the returned context
// with errCancelled as its cause: the upstream request ends with it, and the client gets no response (receivers
// SHOULD NOT answer a cancelled request, in both protocol versions; mcp-go writes none for a request whose
// context ended). ends, the context the server's stream limiter ends for a shutdown, ends only the work (see
// cancellable): the request is still answered, with the shutdown's error. done unregisters the request.
func (v *view) cancelledBy(ctx context.Context, p *governance.Principal, h http.Header, id json.RawMessage, ends context.Context) (_ context.Context, done func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	var byClient context.CancelFunc = func() { cancel(errCancelled) }
	unregister := v.requests.add(requestKey(p, h, id), &byClient)
	if ends != nil && ends.Done() != nil {
		ctx = context.WithValue(ctx, endsKey{}, ends)
	}
	return ctx, func() {
		unregister()
		cancel(nil)
	}
}

// streamKey carries the context a request runs under, which the server's stream limiter ends for a shutdown
// (with the shutdown as its cause) or at server.max_stream_duration, into net/http land.
type streamKey struct{}

// detached returns a context of its own that carries only the principal and
// its origin. The adaptor's request context is the pooled fasthttp
// RequestCtx: a context derived from it (mcp-go derives one per message) is
// still read by Go's cancel propagation after the request ended, while
// fasthttp resets the ctx for the next request — a data race and a source of
// wrong values.
func detached(adaptorCtx context.Context) (*governance.Principal, context.Context, context.CancelFunc) {
	p, _ := adaptorCtx.Value(principalKey{}).(*governance.Principal)
	o, _ := adaptorCtx.Value(originKey{}).(governance.Denial)
	ctx, cancel := context.WithCancel(principalContext(p, o))
	return p, ctx, cancel
}

// principalContext is a fresh context carrying the principal and the origin
// of its request.
func principalContext(p *governance.Principal, origin governance.Denial) context.Context {
	return context.WithValue(context.WithValue(context.Background(), principalKey{}, p), originKey{}, origin)
}

// responseWriter is what mcp-go's ServeHTTP wraps an http.ResponseWriter in,
// for Handle: streaming when the writer flushes, write deadlines through
// http.ResponseController.
type responseWriter struct{ http.ResponseWriter }

func (w responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w responseWriter) CanStream() bool {
	_, ok := w.ResponseWriter.(http.Flusher)
	return ok
}

func (w responseWriter) SetWriteDeadline(t time.Time) error {
	return http.NewResponseController(w.ResponseWriter).SetWriteDeadline(t)
}

func resourceNotFound(w http.ResponseWriter, r *http.Request, id json.RawMessage, uri string) {
	code := mcp.RESOURCE_NOT_FOUND
	if mcp.IsModernProtocol(r.Header.Get(mcp.HeaderProtocolVersion)) {
		// 2026-07-28 reports an unknown resource as invalid params.
		code = mcp.INVALID_PARAMS
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0",
		"id":      id,
		"error": map[string]any{
			"code":    code,
			"message": "Resource not found",
			"data":    map[string]any{"uri": uri},
		},
	})
}

// requestKey identifies a request for cancellation: the caller's key, its
// session (none on 2026-07-28) and the JSON-RPC ID as sent.
func requestKey(p *governance.Principal, h http.Header, id json.RawMessage) string {
	var compact bytes.Buffer
	if json.Compact(&compact, id) != nil {
		compact.Reset()
		compact.Write(id)
	}
	keyID := ""
	if p != nil {
		keyID = p.KeyID
	}
	return keyID + "\x00" + h.Get("Mcp-Session-Id") + "\x00" + compact.String()
}

// requests are the in-flight requests of one view. A client may reuse an
// ID on parallel requests; a cancellation then ends all of them.
type requests struct {
	mu    sync.Mutex
	byKey map[string][]*context.CancelFunc
}

func (q *requests) add(key string, cancel *context.CancelFunc) (done func()) {
	q.mu.Lock()
	if q.byKey == nil {
		q.byKey = map[string][]*context.CancelFunc{}
	}
	q.byKey[key] = append(q.byKey[key], cancel)
	q.mu.Unlock()
	return func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		rest := slices.DeleteFunc(q.byKey[key], func(c *context.CancelFunc) bool { return c == cancel })
		if len(rest) == 0 {
			delete(q.byKey, key)
		} else {
			q.byKey[key] = rest
		}
	}
}

func (q *requests) cancel(key string) {
	q.mu.Lock()
	cancels := slices.Clone(q.byKey[key])
	q.mu.Unlock()
	for _, c := range cancels {
		(*c)()
	}
}

// endsKey carries the context that ends a request's work but not the request (see cancelledBy).
type endsKey struct{}

// cancellable returns ctx, also ended, with the same cause, when the context in endsKey ends. Upstream calls
// use it, so a shutdown reaches the upstream (an HTTP upstream sees its request end; the stdio client sends
// notifications/cancelled) and the call is answered with its cause (see outcome).
func cancellable(ctx context.Context) (context.Context, context.CancelFunc) {
	ends, ok := ctx.Value(endsKey{}).(context.Context)
	if !ok {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(ends, func() { cancel(context.Cause(ends)) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}
