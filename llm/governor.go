package llm

import (
	"errors"
	"net/http"

	"github.com/switchboard-gw/switchboard/governance"
)

// governanceAPIError maps a governance denial to the client's error: 401,
// 403 or 429 with governance's own type ("budget_exceeded" and so on). An
// ACL denial never reaches a client as 403: reject answers it as an unknown
// model.
func governanceAPIError(err error) (*apiError, bool) {
	var ge *governance.Error
	if !errors.As(err, &ge) {
		return nil, false
	}
	ae := &apiError{status: ge.HTTPStatus(), typ: ge.Type(), message: ge.Message, retryAfter: ge.RetryAfter}
	switch ge.Kind {
	case governance.Unauthenticated:
		ae.typ, ae.code = "invalid_request_error", "invalid_api_key"
	case governance.RateLimited:
		ae.code = "rate_limit_exceeded"
	case governance.BudgetExceeded:
		ae.code = "budget_exceeded"
	}
	if ae.status == 0 {
		ae.status = http.StatusInternalServerError
	}
	return ae, true
}
