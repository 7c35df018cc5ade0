package governance

import (
	"net/http"
	"strconv"
	"time"
)

// ErrorKind classifies a governance denial so each protocol can map it to its
// own error shape in one place.
type ErrorKind uint8

const (
	// Unauthenticated: the key is missing, unknown, expired or disabled.
	Unauthenticated ErrorKind = iota + 1
	// Forbidden: the key is valid but an ACL rule denies the target.
	Forbidden
	// RateLimited: a requests, tokens, concurrency, tool or agent limit is hit.
	RateLimited
	// BudgetExceeded: a key, team or org budget cannot hold the request's estimate.
	BudgetExceeded
	// Unavailable: the shared counter store (Redis) could not be asked and
	// governance.redis.fail_mode is closed, so nothing can be admitted.
	Unavailable
)

// String returns the error type used in OpenAI-style error bodies.
func (k ErrorKind) String() string {
	switch k {
	case Unauthenticated:
		return "authentication_error"
	case Forbidden:
		return "permission_error"
	case RateLimited:
		return "rate_limit_exceeded"
	case BudgetExceeded:
		return "budget_exceeded"
	case Unavailable:
		return "service_unavailable"
	default:
		return "governance_error"
	}
}

// Error is a governance denial. Message never contains a raw key and, for
// ACL denials, never reveals whether the target exists.
type Error struct {
	Kind    ErrorKind
	Message string
	// Rule names what refused, for the audit log: "unknown_key", "acl:<rule>",
	// "rate_limit.key.rpm", "budget.team"...
	Rule       string
	RetryAfter time.Duration
	rate       rateHeaders
}

func (e *Error) Error() string { return e.Message }

// Type is the error type string for protocol error bodies (e.g. "budget_exceeded").
func (e *Error) Type() string { return e.Kind.String() }

// HTTPStatus is 401, 403, 429 or 503. Budget denials answer 429 (type
// "budget_exceeded") because that is what LiteLLM-style clients handle.
func (e *Error) HTTPStatus() int {
	switch e.Kind {
	case Unauthenticated:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case RateLimited, BudgetExceeded:
		return http.StatusTooManyRequests
	case Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// RateLimitHeaders writes Retry-After (whole seconds, rounded up) and the
// x-ratelimit-* headers of the limit that denied the request, with names in
// canonical form.
func (e *Error) RateLimitHeaders(set func(name, value string)) {
	if e.RetryAfter > 0 {
		set("Retry-After", strconv.FormatInt(ceilSeconds(e.RetryAfter), 10))
	}
	e.rate.write(set)
}

func ceilSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// errUnavailable keeps clients from hammering a gateway whose counter store is down.
func errUnavailable() *Error {
	return &Error{Kind: Unavailable, RetryAfter: time.Second, Rule: "counters_unavailable",
		Message: "governance counters unavailable; try again shortly"}
}

func unauthenticated(rule, msg string) *Error {
	return &Error{Kind: Unauthenticated, Rule: rule, Message: msg}
}
