package governance

import (
	"log/slog"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// LogRequestID is the request_id attribute of a line logged while rc's request is handled: the id the app's
// middleware answers in X-Request-Id and in error bodies, so that an operator finds the lines of a call from
// what its client saw. The header is read only when a line is written; a call that logs nothing pays nothing
// for it. rc must still be answering the request then: a handler may log through it, but a stream writer, which
// may still run after fasthttp recycled rc for a client that left, logs a copy of the id taken before.
func LogRequestID(rc *fasthttp.RequestCtx) slog.Attr {
	return slog.Any("request_id", requestIDValue{rc})
}

type requestIDValue struct{ rc *fasthttp.RequestCtx }

func (v requestIDValue) LogValue() slog.Value {
	return slog.StringValue(string(v.rc.Response.Header.Peek(fiber.HeaderXRequestID)))
}
