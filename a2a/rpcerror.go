package a2a

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/a2aproject/a2a-go/v2/a2a"

	"github.com/switchboard-gw/switchboard/governance"
)

var errAgentNotFound = a2a.NewError(a2a.ErrServerError, "agent not found")

// JSON-RPC codes of the A2A errors the gateway itself produces; the codes
// are A2A's (a2a-go keeps its table internal).
var rpcCodes = []struct {
	err  error
	code int
}{
	{a2a.ErrParseError, -32700},
	{a2a.ErrInvalidRequest, -32600},
	{a2a.ErrMethodNotFound, -32601},
	{a2a.ErrInvalidParams, -32602},
	{a2a.ErrTaskNotFound, -32001},
	{a2a.ErrVersionNotSupported, -32009},
	{a2a.ErrUnauthenticated, -31401},
	{a2a.ErrUnauthorized, -31403},
	{a2a.ErrServerError, -32000},
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type rpcErrorResponse struct {
	JSONRPC string   `json:"jsonrpc"`
	ID      any      `json:"id"`
	Error   rpcError `json:"error"`
}

// errorResponse maps an error to its HTTP status and JSON-RPC body, in one
// place for every route. Governance denials keep their HTTP status (401,
// 429 with Retry-After; an ACL denial is a 404 like an unknown agent) so HTTP-level clients and proxies see them;
// protocol errors are HTTP 200 as a2a-go's own handlers answer them. No
// "data" member: a2a-go clients decode it as typed details and would fail
// on anything else.
func errorResponse(id any, err error, setHeader func(name, value string)) (int, []byte) {
	status, code, msg := http.StatusOK, -32603, "internal error"
	var ge *governance.Error
	var ae *a2a.Error
	switch {
	case errors.As(err, &ge) && ge.Kind == governance.Forbidden:
		// An agent the key may not call is answered as one that does not
		// exist, so a key cannot find out which agents the gateway serves;
		// the audit log records the refusal and its rule.
		return errorResponse(id, errAgentNotFound, setHeader)
	case errors.As(err, &ge):
		status, msg = ge.HTTPStatus(), ge.Message
		code = -32000
		if ge.Kind == governance.Unauthenticated {
			code = -31401
		}
		ge.RateLimitHeaders(setHeader)
	case errors.As(err, &ae):
		msg = ae.Error()
		for _, c := range rpcCodes {
			if errors.Is(err, c.err) {
				code = c.code
				break
			}
		}
		switch err {
		case errAgentNotFound:
			status = http.StatusNotFound
		case errUpstreamUnavailable:
			status = http.StatusBadGateway
		}
	}
	body, _ := json.Marshal(rpcErrorResponse{JSONRPC: "2.0", ID: id, Error: rpcError{Code: code, Message: msg}})
	setHeader("Content-Type", "application/json")
	return status, body
}
