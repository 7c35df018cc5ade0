// Package dashboard serves the spend, budget and trace API (/admin/spend,
// /admin/budgets, /admin/traces) and the built-in web dashboard (/ui). The
// admin key sees every team; any other key sees only its own team's spans
// and budgets (or, for a key without a team, its own): the scope is forced
// from the key, never taken from the query.
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// Store is the part of storage.Store the dashboard reads.
type Store interface {
	Spend(ctx context.Context, q storage.SpendQuery) ([]storage.SpendRow, error)
	RecentTraces(ctx context.Context, f storage.TraceFilter) ([]storage.TraceSummary, error)
	Trace(ctx context.Context, id trace.TraceID) ([]storage.TraceNode, error)
	Audit(ctx context.Context, q storage.AuditQuery) ([]storage.AuditEvent, error)
}

// Governor maps a raw key to its principal, reports budget usage and
// audits refusals.
type Governor interface {
	Authenticate(rawKey string) (*governance.Principal, error)
	Budgets(team string) []governance.BudgetUsage
	Denied(d governance.Denial)
	KeyByName(name string) (id, team string, ok bool)
}

// Deps are what the dashboard is built from. Logger may be nil.
type Deps struct {
	Store    Store
	Governor Governor
	Logger   *slog.Logger
	// PublicURL is how browsers reach the gateway (server.public_url), which
	// a TLS-terminating proxy in front of it does not tell each request.
	PublicURL string
}

// Dashboard holds the API and UI handlers.
type Dashboard struct {
	store Store
	gov   Governor
	log   *slog.Logger
	now   func() time.Time
	// publicOrigin is PublicURL's scheme://host[:port], "" when unset.
	publicOrigin string
}

// queryTimeout bounds one store query, so a slow ClickHouse cannot pin a
// request forever.
const queryTimeout = 30 * time.Second

// New builds the dashboard.
func New(deps Deps) *Dashboard {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dashboard{store: deps.Store, gov: deps.Governor, log: log, now: time.Now, publicOrigin: originOf(deps.PublicURL)}
}

// Register mounts the API under /admin and the dashboard under /ui on r,
// which must be the app's root router. The API routes accept any valid key
// and scope non-admin keys to their team.
func (d *Dashboard) Register(r fiber.Router) {
	auth := d.authenticate
	timeRange := []string{"from", "to", "range"}
	r.Get("/admin/spend", auth, onlyParams(timeRange, "group_by", "bucket", "team", "key", "top"), d.spend)
	r.Get("/admin/traces", auth, onlyParams(timeRange, "team", "key", "layer", "status", "min_cost_usd",
		"min_cost_nano_usd", "min_duration", "limit"), d.traces)
	r.Get("/admin/traces/:id", auth, onlyParams(nil), d.traceTree)
	r.Get("/admin/budgets", auth, onlyParams(nil, "team", "key"), d.budgets)
	r.Get("/admin/audit", auth, onlyParams(timeRange, "actor", "team", "action", "limit"), d.audit)

	r.Get("/ui", d.page)
	r.Get("/ui/assets/:name", d.asset)
	r.Post("/ui/login", d.login)
	r.Post("/ui/logout", d.logout)
	r.Get("/ui/session", d.session)
}

// onlyParams refuses a query parameter the route does not know, or one
// given twice: a typo such as tema=alpha would otherwise answer every
// team's numbers as if they were one team's.
func onlyParams(common []string, names ...string) fiber.Handler {
	known := map[string]bool{}
	for _, n := range append(slices.Clone(common), names...) {
		known[n] = true
	}
	return func(c *fiber.Ctx) error {
		seen := map[string]bool{}
		var bad error
		for k := range c.Request().URI().QueryArgs().All() {
			name := string(k)
			switch {
			case bad != nil:
			case !known[name]:
				takes := strings.Join(slices.Sorted(maps.Keys(known)), ", ")
				if takes == "" {
					takes = "none"
				}
				bad = errBadRequest("%s: unknown parameter; this route takes %s", name, takes)
			case seen[name]:
				bad = errBadRequest("%s: given more than once", name)
			}
			seen[name] = true
		}
		if bad != nil {
			return sendError(c, bad)
		}
		return c.Next()
	}
}

// scope is what a principal may see.
type scope struct {
	admin bool
	team  string // forced team filter; "" with admin false means keyID applies
	keyID string // forced key filter for keys without a team
}

func scopeOf(p *governance.Principal) scope {
	switch {
	case p.Admin:
		return scope{admin: true}
	case p.Team != "":
		return scope{team: p.Team}
	default:
		return scope{keyID: p.KeyID}
	}
}

// owns reports whether a span is within the scope.
func (s scope) owns(sp *trace.Span) bool {
	switch {
	case s.admin:
		return true
	case s.team != "":
		return sp.Team == s.team
	default:
		return sp.KeyID == s.keyID
	}
}

// keyParam is the key a read asks for, by id or by name: a name would
// otherwise match no spend and answer zero. A key's name is looked up
// first, since a name may start with "key_" as ids do; anything else
// starting so is taken as an id, which finds the past spend of a key since
// deleted. A name outside the caller's scope is answered as one that does
// not exist.
func (d *Dashboard) keyParam(c *fiber.Ctx) (string, error) {
	key := c.Query("key")
	if key == "" {
		return "", nil
	}
	sc := scopeOf(principal(c))
	if id, team, ok := d.gov.KeyByName(key); ok && (sc.admin || sc.team != "" && team == sc.team || id == sc.keyID) {
		return id, nil
	}
	if strings.HasPrefix(key, "key_") {
		return key, nil
	}
	return "", errBadRequest("key: no key named %q; give a key's id or name", key)
}

// restrict forces the scope onto the team and key filters a client asked
// for. Asking for another team (or key, for a team-less key) is refused
// rather than silently answered with one's own data.
func (s scope) restrict(team, keyID string) (string, string, error) {
	switch {
	case s.admin:
		return team, keyID, nil
	case s.team != "":
		if team != "" && team != s.team {
			return "", "", errOutOfScope("scope.team", "this key may only see team "+s.team)
		}
		return s.team, keyID, nil
	default:
		if team != "" || (keyID != "" && keyID != s.keyID) {
			return "", "", errOutOfScope("scope.key", "this key has no team and may only see its own spans")
		}
		return "", s.keyID, nil
	}
}

const principalLocal = "dashboard.principal"

func (d *Dashboard) authenticate(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	raw := governance.KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key"))
	if raw == "" {
		raw = keyFromCookie(c)
	}
	p, err := d.gov.Authenticate(raw)
	if err != nil {
		d.denied(c, err)
		return sendError(c, &apiError{status: http.StatusUnauthorized, typ: "authentication_error", msg: err.Error()})
	}
	c.Locals(principalLocal, p)
	return c.Next()
}

// denied audits a refusal: a governance error, or a read outside the key's
// scope (which governance does not decide, so it is described as a
// Forbidden error here).
func (d *Dashboard) denied(c *fiber.Ctx, err error) {
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusForbidden {
		err = &governance.Error{Kind: governance.Forbidden, Message: ae.msg, Rule: ae.rule}
	}
	d.gov.Denied(governance.RequestDenial(c, principal(c), "", "", err))
}

func principal(c *fiber.Ctx) *governance.Principal {
	p, _ := c.Locals(principalLocal).(*governance.Principal)
	return p
}

// apiError is an error with its HTTP status and the type field of the JSON
// error body {"error":{"message","type"}} the admin API uses.
type apiError struct {
	status int
	typ    string
	msg    string
	rule   string // what refused, for the audit log (a read outside the key's scope)
}

func (e *apiError) Error() string { return e.msg }

func errBadRequest(format string, a ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", msg: fmt.Sprintf(format, a...)}
}

func errForbidden(msg string) *apiError {
	return &apiError{status: http.StatusForbidden, typ: "permission_error", msg: msg}
}

// errOutOfScope refuses a read of another team's (or key's) data; rule
// names which scope it left.
func errOutOfScope(rule, msg string) *apiError {
	return &apiError{status: http.StatusForbidden, typ: "permission_error", msg: msg, rule: rule}
}

var errTraceNotFound = &apiError{status: http.StatusNotFound, typ: "not_found", msg: "no such trace"}

func sendError(c *fiber.Ctx, err error) error {
	var e *apiError
	if !errors.As(err, &e) {
		e = &apiError{status: http.StatusInternalServerError, typ: "server_error", msg: "internal error"}
	}
	return c.Status(e.status).JSON(fiber.Map{"error": governance.ErrorBody(c, e.msg, e.typ)})
}

// storeFailed logs a store error and answers 500 without its details, which
// may name hosts or tables.
func (d *Dashboard) storeFailed(c *fiber.Ctx, op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		d.log.Warn("dashboard query timed out", "op", op, "timeout", queryTimeout, governance.LogRequestID(c.Context()))
		return sendError(c, &apiError{status: http.StatusGatewayTimeout, typ: "timeout", msg: "query timed out"})
	}
	d.log.Error("dashboard query failed", "op", op, "err", err, governance.LogRequestID(c.Context()))
	return sendError(c, err)
}

// originOf is u's origin as a browser sends it: lower-case scheme://host, the port only when it is not the
// scheme's default; "" for a URL without both.
func originOf(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" || p.Host == "" {
		return ""
	}
	scheme, host := strings.ToLower(p.Scheme), strings.ToLower(p.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := p.Port(); port != "" && !(scheme == "https" && port == "443") && !(scheme == "http" && port == "80") {
		host += ":" + port
	}
	return scheme + "://" + host
}
