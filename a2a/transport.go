package a2a

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// rpcHandlers are a2a-go's JSON-RPC handlers (1.0, and 0.3 through a2av0) serving one call at a time. a2a-go
// gives its panic handler the panic value and no context, so handlers shared by every call could not say whose
// call panicked; a set serving one call names it (its request_id), and a pool of sets keeps that free.
type rpcHandlers struct {
	v1, v0 http.Handler
	// call is the call being served, and end cancels the context it is served under. a2a-go runs the panic
	// handler on the goroutine that serves the call, and a stream's producer that panics after the call returned
	// is dropped unhandled, so no lock is needed.
	call *call
	end  context.CancelFunc
}

// newRPCHandlers builds a set over h. fasthttp does not report a closed client connection: a stream notices one
// only when it writes, so idle streams write keep-alives every keepAlive.
func newRPCHandlers(h a2asrv.RequestHandler, keepAlive time.Duration, log *slog.Logger) *rpcHandlers {
	hs := &rpcHandlers{}
	opts := []a2asrv.TransportOption{
		a2asrv.WithTransportKeepAlive(keepAlive),
		a2asrv.WithTransportPanicHandler(func(r any) error {
			log.Error("a2a: panic while proxying", "panic", r, "request_id", hs.call.requestID)
			// After a stream's producer panicked, a2a-go writes this error as an event and then keeps the stream
			// open until its context ends: ended now, the stream closes after the event instead of hanging.
			hs.end()
			return a2a.ErrInternalError
		}),
	}
	hs.v1 = a2asrv.NewJSONRPCHandler(h, opts...)
	hs.v0 = a2av0.NewJSONRPCHandler(h, opts...)
	return hs
}

// serve answers c's request in A2A 1.0 (v1) or 0.3; end cancels r's context.
func (hs *rpcHandlers) serve(w http.ResponseWriter, r *http.Request, v1 bool, c *call, end context.CancelFunc) {
	hs.call, hs.end = c, end
	defer func() { hs.call, hs.end = nil, nil }()
	if v1 {
		hs.v1.ServeHTTP(w, r)
	} else {
		hs.v0.ServeHTTP(w, r)
	}
}
