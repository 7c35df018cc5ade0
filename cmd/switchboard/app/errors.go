package app

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
)

// handleError answers errors that no protocol package turned into its own shape (404s, bodies over the limit,
// recovered panics): as a JSON-RPC error on the MCP and A2A routes, whose clients parse nothing else, in
// Anthropic's shape on its routes, and as OpenAI-style JSON, which is what most other clients of this port parse,
// everywhere else.
func (a *App) handleError(c *fiber.Ctx, err error) error {
	status := fiber.StatusInternalServerError
	message := "internal error"
	var fe *fiber.Error
	if errors.As(err, &fe) {
		// Only the status text: fiber's messages echo the request, and for a request fasthttp cannot parse the
		// message holds the raw header bytes, Authorization included.
		status, message = fe.Code, utils.StatusMessage(fe.Code)
	}
	kind := "invalid_request_error"
	switch {
	case status == fiber.StatusNotFound:
		kind = "not_found_error"
	case status == fiber.StatusRequestEntityTooLarge:
		kind = "request_too_large"
	case status >= 500:
		kind = "internal_error"
	}
	if len(c.Response().Header.Peek(fiber.HeaderXRequestID)) == 0 {
		// Errors raised before the middleware ran (a body over the limit).
		setRequestID(c)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	if jsonRPCRoute(c.Path()) {
		// The request was not read, so its id is unknown: JSON-RPC answers such a request with a null id.
		code := -32600 // invalid request
		if status >= 500 {
			code = -32603 // internal error
		}
		return c.Status(status).JSON(fiber.Map{"jsonrpc": "2.0", "id": nil, "error": fiber.Map{"code": code, "message": message}})
	}
	if anthropicRoute(c.Path()) {
		if kind == "internal_error" {
			kind = "api_error" // Anthropic's name for it
		}
		return c.Status(status).JSON(fiber.Map{"type": "error", "error": fiber.Map{"type": kind, "message": message}})
	}
	return c.Status(status).JSON(fiber.Map{"error": fiber.Map{
		"message":    message,
		"type":       kind,
		"request_id": c.GetRespHeader(fiber.HeaderXRequestID),
	}})
}

// recoverPanic turns a panic in a handler into a 500 and a log line with the stack; the panic value may hold
// request data, so it is logged, never sent to the client.
func (a *App) recoverPanic(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("panic in handler", "method", c.Method(), "route", c.Route().Path,
				"request_id", c.GetRespHeader(fiber.HeaderXRequestID), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = errors.New("panic recovered")
		}
	}()
	return c.Next()
}

// jsonRPCRoute reports whether path is served by the MCP or A2A gateway, which answer in JSON-RPC.
func jsonRPCRoute(path string) bool {
	for _, prefix := range []string{"/mcp", "/a2a"} {
		if rest, ok := strings.CutPrefix(path, prefix); ok && (rest == "" || rest[0] == '/') {
			return true
		}
	}
	return false
}

// anthropicRoute reports whether path is one of Anthropic's API, whose SDKs read {"type":"error","error":{...}}.
func anthropicRoute(path string) bool {
	return path == "/v1/messages" || path == "/v1/messages/count_tokens"
}
