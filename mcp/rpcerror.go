package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
)

// upstreamRPCError is a JSON-RPC error an upstream answered. Where the
// gateway writes the answer itself (the direct tools/call, resources/read
// and prompts/get paths) the client gets its code, message and data as the
// upstream sent them, secrets hidden: a resource the upstream does not
// have is -32002 for the client too, not mcp-go's -32603 for any handler
// error.
type upstreamRPCError struct {
	details mcp.JSONRPCErrorDetails
}

func (e *upstreamRPCError) Error() string { return e.details.Message }

// Unwrap gives mcp-go's error for the code, so errors.Is(err,
// mcp.ErrInvalidParams) still holds.
func (e *upstreamRPCError) Unwrap() error { return e.details.AsError() }

// rpcErrorSlot catches the JSON-RPC error a transport saw, which mcp-go's
// client turns into an error that keeps neither data nor unknown codes.
type rpcErrorSlot struct {
	mu      sync.Mutex
	details *mcp.JSONRPCErrorDetails
}

type rpcErrorKey struct{}

// catchRPCError returns ctx for one mcp-go client request and a function
// that turns the request's error into an upstreamRPCError when the
// upstream answered with one.
func catchRPCError(ctx context.Context) (context.Context, func(error) error) {
	slot := &rpcErrorSlot{}
	return context.WithValue(ctx, rpcErrorKey{}, slot), func(err error) error {
		slot.mu.Lock()
		defer slot.mu.Unlock()
		if err == nil || slot.details == nil {
			return err
		}
		return &upstreamRPCError{details: *slot.details}
	}
}

// captureRPCError keeps an answer's error for catchRPCError's caller.
func captureRPCError(ctx context.Context, details *mcp.JSONRPCErrorDetails) {
	if slot, ok := ctx.Value(rpcErrorKey{}).(*rpcErrorSlot); ok && details != nil {
		slot.mu.Lock()
		copied := *details
		slot.details = &copied
		slot.mu.Unlock()
	}
}

// rpcErrorMessage is the JSON-RPC error answer for err: the upstream's own
// for an upstreamRPCError, mcp-go's -32603 for anything else.
func rpcErrorMessage(id any, err error) []byte {
	details := mcp.NewJSONRPCErrorDetails(mcp.INTERNAL_ERROR, err.Error(), nil)
	if rpc := (*upstreamRPCError)(nil); errors.As(err, &rpc) {
		details = rpc.details
	}
	answer, _ := json.Marshal(mcp.JSONRPCError{JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(id), Error: details})
	return answer
}
