package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
)

// edge handles the messages the gateway must answer itself before mcp-go
// sees them; everything else goes on to h.
//
//   - resources/read of a URI the caller cannot reach (hidden by its ACL or
//     served by no upstream) gets the protocol's resource-not-found error,
//     the same in both cases. mcp-go turns any error a resource handler
//     returns into -32603, so the catch-all handler cannot give it.
//   - notifications/cancelled cancels the work of the caller's own request
//     with that ID (see cancellable).
//     mcp-go keys requests by session ID and request ID only, and a
//     2026-07-28 request has no session: any key could cancel another key's
//     call by guessing its ID. Here the key is part of the match.
func (v *view) edge(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			h.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "cannot read request body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				URI       string          `json:"uri"`
				RequestID json.RawMessage `json:"requestId"`
			} `json:"params"`
		}
		if json.Unmarshal(body, &msg) != nil || msg.Method == "" {
			h.ServeHTTP(w, r)
			return
		}
		switch {
		case msg.Method == string(mcp.MethodNotificationCancelled) && len(msg.ID) == 0:
			v.requests.cancel(requestKey(r, msg.Params.RequestID))
			w.WriteHeader(http.StatusAccepted)
		case len(msg.ID) == 0:
			h.ServeHTTP(w, r)
		case msg.Method == string(mcp.MethodResourcesRead) && v.route(r.Context(), msg.Params.URI) == nil:
			resourceNotFound(w, r, msg.ID, msg.Params.URI)
		default:
			// Only the work is cancelled, not the request: mcp-go still
			// answers it, as it does for its own cancellations.
			cancelled, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := v.requests.add(requestKey(r, msg.ID), &cancel)
			defer done()
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientCancelKey{}, cancelled)))
		}
	})
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
func requestKey(r *http.Request, id json.RawMessage) string {
	var compact bytes.Buffer
	if json.Compact(&compact, id) != nil {
		compact.Reset()
		compact.Write(id)
	}
	keyID := ""
	if p := principalFrom(r.Context()); p != nil {
		keyID = p.KeyID
	}
	return keyID + "\x00" + r.Header.Get("Mcp-Session-Id") + "\x00" + compact.String()
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

// clientCancelKey carries a context that ends when the client cancels the
// request (notifications/cancelled).
type clientCancelKey struct{}

// cancellable returns ctx, also cancelled when the client cancels the
// request it serves. Upstream calls use it, so a cancellation reaches the
// upstream (an HTTP upstream sees its request end; the stdio client sends
// notifications/cancelled).
func cancellable(ctx context.Context) (context.Context, context.CancelFunc) {
	cancelled, ok := ctx.Value(clientCancelKey{}).(context.Context)
	if !ok {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(cancelled, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}
