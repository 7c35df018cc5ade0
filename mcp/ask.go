package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/switchboard-gw/switchboard/trace"
)

// relayedCapabilities are what the gateway declares in its initialize to a
// 2025-11-25 Streamable HTTP upstream whose client_requests is set: the
// requests the relay can pass to the client of the tool call they arrive
// with. Off by default: a server told the client can answer may stop doing
// without, and then fail for every client that cannot. Which client that is, and
// what it supports, is known only per call, so each request is checked
// then (asker.ask). Roots are not declared: an upstream asks for them
// whenever it likes, not within a call, and one upstream session serves
// every client. A 2026-07-28 upstream is declared nothing (mcp-go's client
// would declare initialize's capabilities in its every request, and the
// gateway answers no input_required result), so they are added to the
// handshake's message only, by the transport.
var relayedCapabilities = mcp.ClientCapabilities{
	Elicitation: &mcp.ElicitationCapability{Form: &struct{}{}},
	Sampling:    &mcp.SamplingCapability{},
}

// asker passes the requests an upstream sends on a tool call's stream to
// the client that made the call, through the view's mcp-go server: an
// elicitation goes on the call's own SSE stream, a sampling request on the
// session's GET stream (mcp-go sends those nowhere else). mcp-go gives the
// client a request ID of its own and routes the answer back by session,
// which is bound to the caller's key; the upstream gets the answer under
// the ID it chose.
type asker struct {
	g       *Gateway
	srv     *server.MCPServer
	session server.ClientSession
	modern  bool // the caller speaks 2026-07-28, which has no server-to-client requests

	mu       sync.Mutex
	outcomes []trace.Attr
}

// askerFor is the asker of the tool call in ctx, made by req.
func (g *Gateway) askerFor(ctx context.Context, req mcp.CallToolRequest) *asker {
	return &asker{g: g, srv: server.ServerFromContext(ctx), session: server.ClientSessionFromContext(ctx),
		modern: mcp.IsModernProtocol(req.Header.Get(mcp.HeaderProtocolVersion)) ||
			req.Params.Meta != nil && mcp.IsModernProtocol(req.Params.Meta.ProtocolVersion())}
}

// listening reports whether the calling client has a GET stream open.
func (a *asker) listening() bool {
	return a.session != nil && a.g.listeners.has(a.srv, a.session.SessionID())
}

// clientCapabilities are what the calling client declared when it opened
// its session on this replica; none when the session is unknown here.
func (a *asker) clientCapabilities() mcp.ClientCapabilities {
	if s, ok := a.session.(server.SessionWithClientInfo); ok && a.srv != nil {
		return s.GetClientCapabilities()
	}
	return mcp.ClientCapabilities{}
}

// ask passes one request to the client and returns its result, or the
// JSON-RPC error for the upstream.
func (a *asker) ask(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, *mcp.JSONRPCErrorDetails) {
	res, err, outcome := a.relay(ctx, method, params)
	a.mu.Lock()
	a.outcomes = append(a.outcomes, trace.Attr{Key: "mcp.client_request", Value: method + " " + outcome})
	a.mu.Unlock()
	return res, err
}

// relay does ask's work. outcome, for the span, is in the gateway's words:
// the client's own error text may quote what the user was asked.
func (a *asker) relay(ctx context.Context, method string, params json.RawMessage) (_ json.RawMessage, _ *mcp.JSONRPCErrorDetails, outcome string) {
	refuse := func(why string) (json.RawMessage, *mcp.JSONRPCErrorDetails, string) {
		return nil, &mcp.JSONRPCErrorDetails{Code: mcp.METHOD_NOT_FOUND, Message: method + " not relayed: " + why}, "refused: " + why
	}
	invalid := func() (json.RawMessage, *mcp.JSONRPCErrorDetails, string) {
		return nil, &mcp.JSONRPCErrorDetails{Code: mcp.INVALID_PARAMS, Message: "invalid " + method + " params"}, "refused: invalid params"
	}
	if a.modern {
		return refuse("the calling client speaks protocol version " + mcp.ProtocolVersion20260728 + ", which has no server-to-client requests")
	}
	caps := a.clientCapabilities()
	var res any
	var err error
	switch mcp.MCPMethod(method) {
	case mcp.MethodElicitationCreate:
		var p mcp.ElicitationParams
		if json.Unmarshal(params, &p) != nil {
			return invalid()
		}
		// URL mode is not declared upstream: its completion notice comes
		// outside the call.
		if caps.Elicitation == nil || p.Mode == mcp.ElicitationModeURL {
			return refuse("the calling client did not declare the elicitation capability")
		}
		p.Meta = nil
		res, err = a.srv.RequestElicitation(ctx, mcp.ElicitationRequest{Request: mcp.Request{Method: method}, Params: p})
	case mcp.MethodSamplingCreateMessage:
		var p mcp.CreateMessageParams
		if json.Unmarshal(params, &p) != nil {
			return invalid()
		}
		if caps.Sampling == nil {
			return refuse("the calling client did not declare the sampling capability")
		}
		if !a.listening() {
			// mcp-go sends it on the GET stream only; without one it would
			// wait for the call's timeout.
			return refuse("the calling client has no open GET stream to receive it")
		}
		//lint:ignore SA1019 the session-era request, which 2025-11-25 clients answer
		res, err = a.srv.RequestSampling(ctx, mcp.CreateMessageRequest{Request: mcp.Request{Method: method}, CreateMessageParams: p})
	default:
		return refuse("the gateway does not relay it")
	}
	switch {
	case ctx.Err() != nil:
		return nil, &mcp.JSONRPCErrorDetails{Code: mcp.REQUEST_INTERRUPTED, Message: "the tool call ended before the client answered"}, "interrupted"
	case err != nil:
		return nil, clientError(method, err), "failed"
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, &mcp.JSONRPCErrorDetails{Code: mcp.INTERNAL_ERROR, Message: fmt.Sprintf("cannot encode the client's answer: %v", err)}, "failed"
	}
	return out, nil, "answered"
}

// clientError is the error the upstream gets for a request the client
// failed: the client's own code and message where mcp-go's server kept them
// ("elicitation/create error -32603: no user"), else an internal error.
func clientError(method string, err error) *mcp.JSONRPCErrorDetails {
	if rest, ok := strings.CutPrefix(err.Error(), method+" error "); ok {
		if code, msg, ok := strings.Cut(rest, ": "); ok {
			if n, convErr := strconv.Atoi(code); convErr == nil {
				return &mcp.JSONRPCErrorDetails{Code: n, Message: msg}
			}
		}
	}
	return &mcp.JSONRPCErrorDetails{Code: mcp.INTERNAL_ERROR, Message: "the calling client failed: " + err.Error()}
}

// attrs are the span attributes of the requests relayed so far.
func (a *asker) attrs() []trace.Attr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]trace.Attr(nil), a.outcomes...)
}

// relayable reports whether the gateway passes an upstream's request of
// this method to the calling client.
func relayable(method string) bool {
	return method == string(mcp.MethodElicitationCreate) || method == string(mcp.MethodSamplingCreateMessage)
}

// listeners count the open GET streams of 2025-11-25 sessions, per view
// server: a sampling request reaches a client only on one.
type listeners struct {
	mu   sync.Mutex
	open map[listenerKey]int
}

type listenerKey struct {
	srv     *server.MCPServer
	session string
}

// add counts a GET stream from now until done is called.
func (l *listeners) add(srv *server.MCPServer, session string) (done func()) {
	k := listenerKey{srv, session}
	l.mu.Lock()
	if l.open == nil {
		l.open = map[listenerKey]int{}
	}
	l.open[k]++
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.open[k]--; l.open[k] <= 0 {
			delete(l.open, k)
		}
	}
}

func (l *listeners) has(srv *server.MCPServer, session string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[listenerKey{srv, session}] > 0
}

// withCapabilities is an initialize request's params declaring caps.
func withCapabilities(params any, caps mcp.ClientCapabilities) any {
	b, err := json.Marshal(params)
	if err != nil {
		return params
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(b, &fields) != nil || fields == nil {
		return params
	}
	if fields["capabilities"], err = json.Marshal(caps); err != nil {
		return params
	}
	return fields
}

// relaysClientRequests reports whether some server passes its requests to
// the calling client (client_requests): only then does a call from a client
// that could answer one need the streamed path.
func (g *Gateway) relaysClientRequests() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, u := range g.ups {
		if u.cfg.Load().ClientRequests {
			return true
		}
	}
	return false
}
