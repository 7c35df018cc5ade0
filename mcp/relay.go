package mcp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
)

// relay sends tools/call to a Streamable HTTP upstream as JSON-RPC bytes it
// builds itself, on the gateway's pooled HTTP client. mcp-go's client
// re-marshals the params several times per call (request meta, standard
// headers, the transport's envelope) and parses the result twice; on the hot
// path that cost more than the rest of the gateway. The client still does
// the handshake, listing, resources, prompts and the other transports; the
// relay borrows the protocol version and session it negotiated.
type relay struct {
	url     string
	http    *http.Client
	version string               // negotiated protocol version
	modern  bool                 // 2026-07-28: no session, protocol metadata in every request
	session string               // Mcp-Session-Id of a 2025-11-25 upstream ("" when it has none)
	static  map[string]string    // the server's configured headers
	secrets *governance.Redactor // hides static's values in answers
	ids     string               // prefix of this relay's request IDs
	seq     atomic.Uint64
}

func newRelay(url string, hc *http.Client, static map[string]string, secrets *governance.Redactor, version, session string) *relay {
	return &relay{url: url, http: hc, static: static, secrets: secrets, version: version,
		modern: mcp.IsModernProtocol(version), session: session, ids: relayIDPrefix + rand.Text()[:12] + "-"}
}

// relayIDPrefix keeps the relay's request IDs apart from those of the
// mcp-go client sharing the upstream session (it counts integers), and a
// random part per relay from those of other gateways: a 2026-07-28 upstream
// has no sessions and matches notifications/cancelled on the ID alone.
const relayIDPrefix = "sb-relay-"

// cancelNotifyTimeout bounds the best-effort notifications/cancelled.
const cancelNotifyTimeout = 5 * time.Second

// relayCall is one tools/call as the relay sends it.
type relayCall struct {
	tool          string
	args          json.RawMessage  // the client's arguments, passed through as sent
	progressToken string           // "" when the client asked for no progress
	logLevel      mcp.LoggingLevel // the client's, passed on; "" when it asked for no log messages
	sc            trace.SpanContext
	headers       map[string]string // per-request headers (trace context, forwarded Authorization)
	paramHeaders  map[string]string // Mcp-Param-* headers of x-mcp-header annotated arguments
	ask           *asker            // passes the upstream's requests to the caller; nil refuses them
}

// callTool posts one tools/call and waits for its answer, handing the
// notifications that arrive first to notify. Errors are shaped as mcp-go's
// client shapes them: transport failures are *transport.Error, a JSON-RPC
// error answer is the error it maps to.
func (r *relay) callTool(ctx context.Context, c relayCall, notify func(mcp.JSONRPCNotification)) (*mcp.CallToolResult, error) {
	id := r.ids + strconv.FormatUint(r.seq.Add(1), 10)
	body := r.toolCallBody(id, c)
	resp, err := r.post(ctx, body, c, mcp.MethodToolsCall)
	if err != nil {
		if ctx.Err() != nil {
			r.cancel(id, c, ctx.Err())
		}
		return nil, transport.NewError(err)
	}
	defer resp.Body.Close()
	answer, err := r.answer(ctx, resp, notify, c)
	if err != nil {
		var big *responseTooLargeError
		switch {
		case ctx.Err() != nil:
			r.cancel(id, c, ctx.Err())
		case errors.As(err, &big):
			// Dropping the connection does not stop a 2025-11-25 upstream.
			r.cancel(id, c, big)
		}
		return nil, err
	}
	if answer.Error != nil {
		return nil, &upstreamRPCError{details: *answer.Error}
	}
	res, err := toolResult(answer.Result)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// toolResult reads a tools/call result for relaying. The content items and
// structured content stay the upstream's bytes (encoding/json only compacts
// them on the way out): decoding them into mcp-go's types only for its
// server to encode them again cost about a tenth of the gateway's CPU. Items
// are checked as mcp-go's client checks them (an object with a known type),
// with the same errors.
func toolResult(raw json.RawMessage) (*mcp.CallToolResult, error) {
	var r struct {
		Meta              *mcp.Meta       `json:"_meta,omitempty"`
		ResultType        mcp.ResultType  `json:"resultType,omitempty"`
		Content           json.RawMessage `json:"content"`
		StructuredContent json.RawMessage `json:"structuredContent,omitempty"`
		IsError           bool            `json:"isError,omitempty"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("failed to unmarshal response: %w", err)
	}
	if r.ResultType == mcp.ResultTypeInputRequired {
		// The gateway's upstream client answers no input requests (it has
		// no sampling, elicitation or roots of its own to offer).
		return nil, errors.New("the tool asked for input the gateway cannot give")
	}
	if r.Content == nil {
		return nil, errors.New("content is missing")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(r.Content, &items); err != nil {
		return nil, fmt.Errorf("failed to unmarshal response: %w", err)
	}
	res := &mcp.CallToolResult{Result: mcp.Result{Meta: r.Meta}, IsError: r.IsError}
	if len(items) > 0 {
		res.Content = make([]mcp.Content, len(items))
		for i, item := range items {
			if err := checkContent(item); err != nil {
				return nil, fmt.Errorf("failed to unmarshal response: %w", err)
			}
			res.Content[i] = rawContent{raw: item}
		}
	}
	if len(r.StructuredContent) > 0 && string(r.StructuredContent) != "null" {
		res.RawStructuredContent = r.StructuredContent
	}
	return res, nil
}

// checkContent accepts a content item of a type mcp-go knows.
func checkContent(item json.RawMessage) error {
	var c struct {
		Type any `json:"type"`
	}
	if err := json.Unmarshal(item, &c); err != nil {
		return err
	}
	t, ok := c.Type.(string)
	if !ok {
		return errors.New("missing or invalid type field")
	}
	switch t {
	case mcp.ContentTypeText, mcp.ContentTypeImage, mcp.ContentTypeAudio, mcp.ContentTypeLink,
		mcp.ContentTypeResource, mcp.ContentTypeToolUse, mcp.ContentTypeToolResult:
		return nil
	}
	return fmt.Errorf("unknown content type: %s", t)
}

// rawContent is one content item of a relayed result, encoded as the
// upstream sent it. The embedded TextContent only makes it an mcp.Content;
// its fields are never set or read.
type rawContent struct {
	mcp.TextContent
	raw json.RawMessage
}

func (c rawContent) MarshalJSON() ([]byte, error) { return c.raw, nil }

// toolCallBody renders the request: the upstream's tool name, the arguments
// as the client sent them and a _meta of the gateway's own.
func (r *relay) toolCallBody(id string, c relayCall) []byte {
	b := make([]byte, 0, 256+len(c.args))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"method":"tools/call","params":{"name":`...)
	b = appendJSONString(b, c.tool)
	if len(c.args) > 0 {
		b = append(b, `,"arguments":`...)
		b = append(b, c.args...)
	}
	b = append(b, `,"_meta":{`...)
	b = r.appendMeta(b, c)
	if c.progressToken != "" {
		b = append(b, `,"progressToken":`...)
		b = appendJSONString(b, c.progressToken)
	}
	return append(b, "}}}"...)
}

// appendMeta writes the _meta members every request carries: the trace
// context and, on 2026-07-28, the protocol metadata that replaced the
// handshake. It always writes at least one member.
func (r *relay) appendMeta(b []byte, c relayCall) []byte {
	first := true
	member := func(key string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, key)
		b = append(b, ':')
	}
	if r.modern {
		member(mcp.MetaKeyProtocolVersion)
		b = appendJSONString(b, r.version)
		member(mcp.MetaKeyClientCapabilities)
		b = append(b, "{}"...)
		member(mcp.MetaKeyClientInfo)
		b = append(b, `{"name":"switchboard","version":"1"}`...)
		if c.logLevel != "" {
			member(mcp.MetaKeyLogLevel)
			b = appendJSONString(b, string(c.logLevel))
		}
	}
	if c.sc.IsValid() {
		member(trace.HeaderTraceparent)
		b = appendJSONString(b, c.sc.Traceparent())
		if c.sc.TraceState != "" {
			member(trace.HeaderTracestate)
			b = appendJSONString(b, c.sc.TraceState)
		}
	}
	if first {
		// Keeps the caller's progressToken member well-formed.
		b = append(b, `"switchboard":true`...)
	}
	return b
}

// appendJSONString appends s as a JSON string, escaped as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil {
		return append(b, `""`...)
	}
	return append(b, q...)
}

// post sends one JSON-RPC message with the headers mcp-go's transport would
// send, in its order: standard, session and version, configured, per-request.
func (r *relay) post(ctx context.Context, body []byte, c relayCall, method mcp.MCPMethod) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	h := req.Header
	if r.modern && method != "" {
		h.Set(mcp.HeaderMethod, string(method))
		if method == mcp.MethodToolsCall {
			if name, ok := mcp.EncodeHeaderValue(c.tool); ok {
				h.Set(mcp.HeaderName, name)
			}
			for k, v := range c.paramHeaders {
				h.Set(k, v)
			}
		}
	}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	r.setSessionHeaders(h, c)
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to send request: %w", err)
	}
	if resp.StatusCode == http.StatusNotFound {
		_ = resp.Body.Close()
		return nil, transport.ErrSessionTerminated
	}
	return resp, nil
}

// setSessionHeaders sets the session, the protocol version, the configured
// headers and the call's own, in that order (later ones win).
func (r *relay) setSessionHeaders(h http.Header, c relayCall) {
	if r.session != "" && !r.modern {
		h.Set(transport.HeaderKeySessionID, r.session)
	}
	if r.version != "" {
		h.Set(transport.HeaderKeyProtocolVersion, r.version)
	}
	for k, v := range r.static {
		h.Set(k, v)
	}
	for k, v := range c.headers {
		h.Set(k, v)
	}
}

// rpcAnswer is a JSON-RPC response, or any message on an SSE stream.
type rpcAnswer struct {
	ID     json.RawMessage          `json:"id"`
	Method string                   `json:"method"`
	Params json.RawMessage          `json:"params"`
	Result json.RawMessage          `json:"result"`
	Error  *mcp.JSONRPCErrorDetails `json:"error"`
}

// answer reads the response to request id: a JSON body, or an SSE stream
// whose notifications come first.
func (r *relay) answer(ctx context.Context, resp *http.Response, notify func(mcp.JSONRPCNotification), c relayCall) (*rpcAnswer, error) {
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, transport.NewError(fmt.Errorf("request failed with status %d: %w", resp.StatusCode, err))
		}
		if resp.StatusCode == http.StatusUnauthorized {
			return nil, transport.NewError(&transport.AuthorizationRequiredError{})
		}
		var a rpcAnswer
		if json.Unmarshal(r.secrets.JSON(body), &a) == nil {
			return &a, nil
		}
		return nil, transport.NewError(fmt.Errorf("request failed with status %d", resp.StatusCode))
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch mediaType {
	case "application/json":
		// Read whole, so that the bytes can be checked for secrets before
		// they are decoded.
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, transport.NewError(fmt.Errorf("failed to read response: %w", err))
		}
		var a rpcAnswer
		// A decoder, like mcp-go's client, ignores what follows the message.
		if err := json.NewDecoder(bytes.NewReader(r.secrets.JSON(body))).Decode(&a); err != nil {
			return nil, transport.NewError(fmt.Errorf("failed to decode response: %w", err))
		}
		if isNullID(a.ID) {
			return nil, transport.NewError(errors.New("response should contain RPC id"))
		}
		return &a, nil
	case "text/event-stream":
		a, err := r.readStream(ctx, resp.Body, notify, c)
		if err != nil {
			return nil, transport.NewError(err)
		}
		return a, nil
	default:
		return nil, transport.NewError(fmt.Errorf("unexpected content type: %s", resp.Header.Get("Content-Type")))
	}
}

// readStream reads SSE events until the response arrives. Notifications go
// to notify; a request from the upstream is refused as the mcp-go client
// refuses what it has no handler for. A 2025-11-25 upstream may end the
// stream early once it sent an event ID, and expects the client to resume
// it with a GET (SEP-1699); 2026-07-28 streams are not resumable.
func (r *relay) readStream(ctx context.Context, body io.Reader, notify func(mcp.JSONRPCNotification), c relayCall) (*rpcAnswer, error) {
	var cur sseCursor
	for {
		a, err := r.readEvents(ctx, body, notify, c, &cur)
		switch {
		case a != nil:
			return a, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			return nil, fmt.Errorf("event stream broke off before the response: %w", err)
		case r.modern || cur.lastID == "":
			return nil, errors.New("event stream ended before the response")
		}
		resumed, err := r.resume(ctx, &cur, c)
		if err != nil {
			return nil, fmt.Errorf("failed to resume the SSE stream for the response: %w", err)
		}
		// Each stream was read to its end; closing them all when the call
		// ends is early enough.
		defer resumed.Close()
		body = resumed
	}
}

// sseCursor is what resuming a stream needs: the ID of the last event
// dispatched and the reconnection time the upstream asked for.
type sseCursor struct {
	lastID   string
	retry    time.Duration
	hasRetry bool
}

// SSE reconnection delays: the default, and the least taken from an
// upstream's retry field (so that "retry: 0" is no busy loop).
const (
	sseReconnectDelay    = time.Second
	sseMinReconnectDelay = 10 * time.Millisecond
)

// readEvents reads one stream. It returns the response, or nil with a nil
// error when the upstream ended the stream without it, or the read error.
func (r *relay) readEvents(ctx context.Context, body io.Reader, notify func(mcp.JSONRPCNotification), c relayCall, cur *sseCursor) (*rpcAnswer, error) {
	br := bufio.NewReader(body)
	var data []byte
	var id string
	hasID := false
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long data line: gather it whole (ReadSlice reuses its buffer).
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		line = bytes.TrimRight(line, "\r\n")
		if err == nil && len(line) == 0 {
			// An event ends: its ID counts even without data.
			if hasID {
				cur.lastID, hasID = id, false
			}
		}
		if v, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(v, []byte(" "))...)
		} else if v, ok := bytes.CutPrefix(line, []byte("id:")); ok {
			id, hasID = string(bytes.TrimPrefix(v, []byte(" "))), true
		} else if v, ok := bytes.CutPrefix(line, []byte("retry:")); ok {
			if ms, perr := strconv.Atoi(string(bytes.TrimSpace(v))); perr == nil && ms >= 0 {
				cur.retry, cur.hasRetry = time.Duration(ms)*time.Millisecond, true
			}
		}
		// A blank line ends an event, and so does the end of the stream.
		if (len(line) == 0 || errors.Is(err, io.EOF)) && len(data) > 0 {
			if a, done := r.dispatch(ctx, data, notify, c); done {
				return a, nil
			}
			data = data[:0]
		}
		switch {
		case errors.Is(err, io.EOF):
			return nil, nil
		case err != nil:
			return nil, err
		}
	}
}

// resume waits the reconnection time and reopens the stream with a GET
// carrying Last-Event-ID.
func (r *relay) resume(ctx context.Context, cur *sseCursor, c relayCall) (io.ReadCloser, error) {
	delay := sseReconnectDelay
	if cur.hasRetry {
		delay = max(cur.retry, sseMinReconnectDelay)
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", cur.lastID)
	r.setSessionHeaders(req.Header, c)
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || mediaType != "text/event-stream" {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("unexpected answer %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp.Body, nil
}

// dispatch handles one SSE event; done is true when it was the response.
// ctx is the call's: a request relayed to the caller ends with it.
func (r *relay) dispatch(ctx context.Context, data []byte, notify func(mcp.JSONRPCNotification), c relayCall) (*rpcAnswer, bool) {
	data = r.secrets.JSON(data)
	var a rpcAnswer
	if json.Unmarshal(data, &a) != nil {
		return nil, false
	}
	switch {
	case isNullID(a.ID):
		var n mcp.JSONRPCNotification
		if json.Unmarshal(data, &n) == nil {
			notify(n)
		}
		return nil, false
	case a.Method != "" && c.ask != nil && relayable(a.Method):
		// The stream goes on meanwhile: the upstream may send progress while
		// it waits.
		go r.relayRequest(ctx, a.ID, a.Method, a.Params, c)
		return nil, false
	case a.Method != "":
		r.refuse(a.ID, a.Method, c)
		return nil, false
	}
	return &a, true
}

func isNullID(id json.RawMessage) bool {
	return len(id) == 0 || string(id) == "null"
}

// refuse answers a request the upstream sent on the call's stream with
// method-not-found, so it does not wait for an answer that never comes.
func (r *relay) refuse(id json.RawMessage, method string, c relayCall) {
	go r.respond(id, nil, &mcp.JSONRPCErrorDetails{Code: mcp.METHOD_NOT_FOUND, Message: "no handler configured for method: " + method}, c)
}

// relayRequest asks the caller what the upstream asked on the call's
// stream, and answers the upstream under its own request ID.
func (r *relay) relayRequest(ctx context.Context, id json.RawMessage, method string, params json.RawMessage, c relayCall) {
	result, rpcErr := c.ask.ask(ctx, method, params)
	r.respond(id, result, rpcErr, c)
}

// respond posts the answer to the upstream's request id: result, or rpcErr.
func (r *relay) respond(id, result json.RawMessage, rpcErr *mcp.JSONRPCErrorDetails, c relayCall) {
	answer := map[string]any{"jsonrpc": "2.0", "id": id}
	if rpcErr != nil {
		answer["error"] = rpcErr
	} else {
		answer["result"] = result
	}
	msg, err := json.Marshal(answer)
	if err != nil {
		return
	}
	r.sendOneWay(msg, c, "")
}

// cancel tells the upstream to stop request id (the client cancelled, or
// the call timed out). Ending the HTTP request already stops a 2026-07-28
// upstream; the notification reaches the others. Best effort, off the
// caller's path.
func (r *relay) cancel(id string, c relayCall, why error) {
	b := make([]byte, 0, 256)
	b = append(b, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, why.Error())
	if r.modern {
		b = append(b, `,"_meta":{`...)
		b = appendJSONString(b, mcp.MetaKeyProtocolVersion)
		b = append(b, ':')
		b = appendJSONString(b, r.version)
		b = append(b, '}')
	}
	b = append(b, "}}"...)
	go r.sendOneWay(b, c, mcp.MethodNotificationCancelled)
}

// sendOneWay posts a notification (method set) or a response (method "").
func (r *relay) sendOneWay(msg []byte, c relayCall, method mcp.MCPMethod) {
	ctx, cancel := context.WithTimeout(context.Background(), cancelNotifyTimeout)
	defer cancel()
	resp, err := r.post(ctx, msg, c, method)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
}
