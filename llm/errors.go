package llm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

// apiError is every failure a client can see. It is mapped to the OpenAI or
// Anthropic error shape in exactly one place each (writeOpenAIError,
// writeAnthropicError).
type apiError struct {
	status     int
	typ        string // OpenAI error.type
	code       string // OpenAI error.code
	message    string
	retryAfter time.Duration
	// upstreamBody, when set, is an upstream's own client-error reply, which
	// is relayed unchanged with status so the client sees the provider's
	// explanation (e.g. an invalid tool schema).
	upstreamBody      []byte
	upstreamAnthropic bool // upstreamBody is in Anthropic's error shape
}

func (e *apiError) Error() string { return e.message }

func errBadRequest(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", code: code, message: fmt.Sprintf(format, args...)}
}

func errModelNotFound(model string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "model_not_found",
		message: fmt.Sprintf("The model %q does not exist or you do not have access to it.", model)}
}

func errTooLarge(limit int) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error", code: "request_too_large",
		message: fmt.Sprintf("request body exceeds %d bytes", limit)}
}

func errInternal(msg string) *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: "server_error", code: "internal_error", message: msg}
}

// asAPIError maps any error from the pipeline to what the client sees.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	if ge, ok := governanceAPIError(err); ok {
		return ge
	}
	return errInternal("internal error")
}

type openAIErrorBody struct {
	Error openAIErrorDetail `json:"error"`
}

type openAIErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) openAIJSON() []byte {
	d := openAIErrorDetail{Message: e.message, Type: e.typ}
	if e.code != "" {
		code := e.code
		d.Code = &code
	}
	b, _ := json.Marshal(openAIErrorBody{Error: d})
	return b
}

func writeOpenAIError(c *fiber.Ctx, err error) {
	ae := asAPIError(err)
	setRetryAfter(c, ae)
	c.Status(ae.status)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	if ae.upstreamBody != nil && !ae.upstreamAnthropic {
		c.Response().SetBodyRaw(ae.upstreamBody)
		return
	}
	c.Response().SetBodyRaw(ae.openAIJSON())
}

func setRetryAfter(c *fiber.Ctx, ae *apiError) {
	if ae.retryAfter > 0 {
		secs := int64((ae.retryAfter + time.Second - 1) / time.Second)
		c.Set(fiber.HeaderRetryAfter, strconv.FormatInt(secs, 10))
	}
}

// anthropicErrorType maps a status to Anthropic's error.type vocabulary.
func anthropicErrorType(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529:
		return "overloaded_error"
	}
	return "api_error"
}

func (e *apiError) anthropicJSON() []byte {
	b, _ := json.Marshal(map[string]any{
		"type":  "error",
		"error": map[string]string{"type": anthropicErrorType(e.status), "message": e.message},
	})
	return b
}

func writeAnthropicError(c *fiber.Ctx, err error) {
	ae := asAPIError(err)
	setRetryAfter(c, ae)
	c.Status(ae.status)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	if ae.upstreamBody != nil && ae.upstreamAnthropic {
		c.Response().SetBodyRaw(ae.upstreamBody)
		return
	}
	c.Response().SetBodyRaw(ae.anthropicJSON())
}
