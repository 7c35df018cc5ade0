package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/switchboard-gw/switchboard/governance"
)

// The view's mcp-go server introduces itself with these in every 2026-07-28
// result; directCall stamps the same.
const (
	implName    = "switchboard"
	implVersion = "1"
)

// directCall answers a tools/call on fasthttp's own goroutine, the hot path
// of the MCP gateway. Through the net/http adaptor and mcp-go's transport
// and dispatcher such a call crossed three goroutines, was decoded up to
// five times and got a notification goroutine and channels of its own:
// about a third of the gateway's CPU per call.
//
// It takes only requests that mcp-go would hand unchanged to the tool's
// handler and answers them as mcp-go would, in both protocol versions.
// Anything mcp-go rejects or treats apart (a missing or mismatched header,
// session ID or _meta field, an ID that is not a string or number, a tool
// that is hidden, unknown or takes parameters from headers) is left alone:
// it returns false without writing, and mcp-go answers. So is a call with a
// progress token, whose notifications must stream while it runs, and one
// from a session whose client the upstream may ask something meanwhile.
func (v *view) directCall(c *fiber.Ctx, p *governance.Principal) bool {
	rh := &c.Request().Header
	if !rh.IsPost() || len(rh.Peek(mcp.HeaderLastEventID)) != 0 {
		return false
	}
	get := func(name string) string { return string(rh.Peek(name)) }
	version := get(mcp.HeaderProtocolVersion)
	modern := mcp.IsModernProtocol(version)
	// Only a tools/call is worth decoding here.
	if !v.g.transportChecksPass(get, p) || modern && get(mcp.HeaderMethod) != string(mcp.MethodToolsCall) {
		return false
	}
	var msg struct {
		JSONRPC string             `json:"jsonrpc"`
		ID      json.RawMessage    `json:"id"`
		Method  mcp.MCPMethod      `json:"method"`
		Params  mcp.CallToolParams `json:"params"`
	}
	if json.Unmarshal(c.BodyRaw(), &msg) != nil || msg.JSONRPC != mcp.JSONRPC_VERSION ||
		msg.Method != mcp.MethodToolsCall || msg.Params.Name == "" {
		return false
	}
	var id any
	if json.Unmarshal(msg.ID, &id) != nil {
		return false
	}
	switch id.(type) {
	case string, float64:
	default:
		return false
	}
	meta := msg.Params.Meta
	if meta != nil && meta.ProgressToken != nil {
		return false
	}
	if modern {
		if string(rh.Peek(mcp.HeaderName)) != msg.Params.Name || meta == nil ||
			meta.ProtocolVersion() != mcp.ProtocolVersion20260728 || meta.ClientCapabilities() == nil {
			return false
		}
	} else if mcp.IsModernProtocol(meta.ProtocolVersion()) {
		// mcp-go takes the body's word for the era.
		return false
	} else if _, ok := v.askable.Load(get(server.HeaderKeySessionID)); ok && v.g.relaysClientRequests() {
		return false
	}
	tool := v.srv.GetTool(msg.Params.Name)
	if tool == nil || tool.Tool.Execution != nil || hasParamHeaders(&tool.Tool) || !v.permits(p, tool.Tool.Name) {
		return false
	}
	header := make(http.Header, rh.Len())
	for k, val := range rh.All() {
		header.Add(string(k), string(val))
	}
	req := mcp.CallToolRequest{Request: mcp.Request{Method: string(msg.Method)}, Header: header, Params: msg.Params}

	ctx, done := v.cancelledBy(principalContext(p, governance.RequestDenial(c, p, "", "", nil)), p, header, msg.ID, c.UserContext())
	defer done()
	out := &callResponse{}
	res, err := runTool(context.WithValue(ctx, notifierKey{}, notifier(out.notify)), tool.Handler, req)
	if errors.Is(context.Cause(ctx), errCancelled) {
		// The client cancelled the call: it gets no response (see cancelledBy).
		out.finish(c, nil)
		return true
	}
	if err != nil {
		out.finish(c, rpcErrorMessage(id, err))
		return true
	}
	if modern {
		// 2026-07-28 requires both in every result.
		if res.GetResultType() == "" {
			res.SetResultType(mcp.ResultTypeComplete)
		}
		if m := res.EnsureResultMeta(); m.ServerInfo() == nil {
			m.SetServerInfo(mcp.Implementation{Name: implName, Version: implVersion})
		}
	}
	answer, err := resultMessage(id, res)
	if err != nil {
		answer = rpcErrorMessage(id, fmt.Errorf("cannot encode the result: %w", err))
	}
	out.finish(c, answer)
	return true
}

// transportChecksPass reports whether a POST's headers pass the checks
// mcp-go's transport makes before it reads the message: a JSON body, a
// protocol version it speaks, and for a 2025-11-25 session an ID this
// gateway minted and no DELETE ended. A message the gateway answers itself
// must pass them too; otherwise mcp-go answers, with the status the
// transport prescribes.
func (g *Gateway) transportChecksPass(get func(string) string, p *governance.Principal) bool {
	if !jsonBody(get) {
		return false
	}
	version := get(mcp.HeaderProtocolVersion)
	if mcp.IsModernProtocol(version) {
		return version == mcp.ProtocolVersion20260728
	}
	if !sessionVersion(version) {
		return false
	}
	ended, err := g.sessions.check(get(server.HeaderKeySessionID), keyIDOf(p))
	return err == nil && !ended
}

func jsonBody(get func(string) string) bool {
	mediaType, _, err := mime.ParseMediaType(get("Content-Type"))
	return err == nil && mediaType == "application/json"
}

// sessionVersion reports whether a request's Mcp-Protocol-Version is one
// mcp-go serves with sessions. Clients of 2025-03-26 send none.
func sessionVersion(version string) bool {
	return version == "" || !mcp.IsModernProtocol(version) && mcp.IsValidProtocolVersion(version)
}

// resultMessage encodes the response as encoding/json encodes mcp-go's
// JSONRPCResponse, minus a second pass over the result: json.Marshal
// compacts what a MarshalJSON method returns, and the result's method
// returns json.Marshal's own output.
func resultMessage(id any, res *mcp.CallToolResult) ([]byte, error) {
	quotedID, err := json.Marshal(id)
	if err != nil {
		return nil, err
	}
	result, err := res.MarshalJSON()
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 0, len(result)+len(quotedID)+32)
	msg = append(msg, `{"jsonrpc":"2.0","id":`...)
	msg = append(msg, quotedID...)
	msg = append(msg, `,"result":`...)
	msg = append(msg, result...)
	return append(msg, '}'), nil
}

// runTool calls the handler as mcp-go's WithRecovery middleware would: a
// panic becomes the call's error.
func runTool(ctx context.Context, handler server.ToolHandlerFunc, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, fmt.Errorf("panic recovered in %s tool handler: %v", req.Params.Name, p)
		}
	}()
	res, err = handler(ctx, req)
	if err == nil && res == nil {
		err = fmt.Errorf("tool '%s' handler returned no result", req.Params.Name)
	}
	return res, err
}

// callResponse collects what a direct call sends its client. The
// notifications that reach a call without a progress token are the
// upstream's log messages; they go out with the response, as the events of
// an SSE stream that ends with it, like mcp-go's transport upgrades its
// answer.
type callResponse struct {
	mu     sync.Mutex
	events []byte
	done   bool
}

func (r *callResponse) notify(method string, params map[string]any) {
	msg, err := json.Marshal(mcp.JSONRPCNotification{
		JSONRPC:      mcp.JSONRPC_VERSION,
		Notification: mcp.Notification{Method: method, Params: mcp.NotificationParams{AdditionalFields: params}},
	})
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		r.events = appendEvent(r.events, msg)
	}
}

// finish sends the response message msg; nil, for a cancelled call, sends a
// stream that ends without one.
func (r *callResponse) finish(c *fiber.Ctx, msg []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	if len(r.events) > 0 || msg == nil {
		c.Set(fiber.HeaderContentType, "text/event-stream")
		c.Set(fiber.HeaderCacheControl, "no-cache")
		if msg != nil {
			r.events = appendEvent(r.events, msg)
		}
		c.Response().SetBodyRaw(r.events)
		return
	}
	c.Response().Header.SetContentType(fiber.MIMEApplicationJSON)
	c.Response().SetBodyRaw(append(msg, '\n'))
}

// appendEvent appends msg as one SSE event, as mcp-go writes them.
func appendEvent(buf, msg []byte) []byte {
	buf = append(buf, "event: message\ndata: "...)
	buf = append(buf, msg...)
	return append(buf, "\n\n"...)
}

// notifier sends a notification to the client of the call in ctx.
type notifier func(method string, params map[string]any)

type notifierKey struct{}

// notifierFor is how callTool reaches its client: directCall's response,
// else the mcp-go session the request came in.
func notifierFor(ctx context.Context) notifier {
	if n, ok := ctx.Value(notifierKey{}).(notifier); ok {
		return n
	}
	srv := server.ServerFromContext(ctx)
	return func(method string, params map[string]any) {
		if srv != nil {
			// Best effort: a client without a stream simply misses it.
			_ = srv.SendNotificationToClient(ctx, method, params)
		}
	}
}
