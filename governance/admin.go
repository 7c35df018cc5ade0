package governance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// RegisterAdmin adds the admin API to r (mounted at /admin by the caller).
// Every route requires the admin key. Keys and teams declared in the config
// file are read-only here (409): the file is their source of truth.
func (g *Governor) RegisterAdmin(r fiber.Router) {
	a := g.requireAdmin
	r.Post("/keys", a, g.createKey)
	r.Get("/keys", a, g.listKeys)
	r.Get("/keys/:id", a, g.getKey)
	r.Patch("/keys/:id", a, g.patchKey)
	r.Delete("/keys/:id", a, g.deleteKey)
	r.Post("/keys/:id/rotate", a, g.rotateKey)
	r.Post("/keys/:id/disable", a, g.setKeyDisabled(true))
	r.Post("/keys/:id/enable", a, g.setKeyDisabled(false))
	r.Get("/keys/:id/usage", a, g.keyUsage)
	r.Get("/keys/:id/authorize", a, g.explainKey)
	r.Post("/teams", a, g.createTeam)
	r.Get("/teams", a, g.listTeams)
	r.Get("/teams/:id", a, g.getTeam)
	r.Patch("/teams/:id", a, g.patchTeam)
	r.Delete("/teams/:id", a, g.deleteTeam)
	r.Get("/teams/:id/usage", a, g.teamUsage)
}

// adminError is the JSON error body: {"error":{"message","type"}}.
func adminError(c *fiber.Ctx, status int, typ, format string, a ...any) error {
	return c.Status(status).JSON(fiber.Map{"error": ErrorBody(c, fmt.Sprintf(format, a...), typ)})
}

// ErrorBody is the "error" object of the gateway's own JSON errors, with the
// request id the app's middleware put on the response, so an operator can
// find the call a client reports.
func ErrorBody(c *fiber.Ctx, message, typ string) fiber.Map {
	body := fiber.Map{"message": message, "type": typ}
	if id := c.GetRespHeader(fiber.HeaderXRequestID); id != "" {
		body["request_id"] = id
	}
	return body
}

// msgNeedsAdmin refuses a valid non-admin key; the audit log names its rule.
const msgNeedsAdmin = "the admin API needs the admin key"

// adminLocal holds the admitted admin principal for the audit log.
const adminLocal = "governance.admin"

func (g *Governor) requireAdmin(c *fiber.Ctx) error {
	if g.state.Load().admin == nil {
		return adminError(c, http.StatusForbidden, "permission_error", "admin API disabled: set governance.admin_key")
	}
	p, err := g.Authenticate(KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key")))
	if err != nil {
		g.Denied(RequestDenial(c, nil, "", "", err))
		return adminError(c, http.StatusUnauthorized, "authentication_error", "%s", err.Error())
	}
	if !p.Admin {
		g.Denied(RequestDenial(c, p, "", "", &Error{Kind: Forbidden, Rule: "admin_only", Message: msgNeedsAdmin}))
		return adminError(c, http.StatusForbidden, "permission_error", msgNeedsAdmin)
	}
	c.Locals(adminLocal, p)
	return c.Next()
}

func decodeBody(c *fiber.Ctx, v any) error {
	d := json.NewDecoder(bytes.NewReader(c.Body()))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	if d.More() {
		return errors.New("invalid JSON body: trailing data")
	}
	return nil
}

// keyFields are the fields of a key a PATCH may change.
type keyFields struct {
	Name     string       `json:"name"`
	Team     string       `json:"team"`
	User     string       `json:"user"`
	Expires  string       `json:"expires"`
	Disabled bool         `json:"disabled"`
	Allow    ACLConfig    `json:"allow"`
	Deny     ACLConfig    `json:"deny"`
	Limits   LimitsConfig `json:"limits"`
	Budget   BudgetConfig `json:"budget"`
}

// teamFields are the fields of a team a PATCH may change (name only to
// itself: a team is not renamed).
type teamFields struct {
	Name   string       `json:"name"`
	Org    string       `json:"org"`
	Budget BudgetConfig `json:"budget"`
	Limits LimitsConfig `json:"limits"`
	Allow  ACLConfig    `json:"allow"`
	Deny   ACLConfig    `json:"deny"`
}

// mergePatch applies patch to fields as a JSON merge patch (RFC 7396): an
// object is merged into the one it names, so {"budget":{"usd":"2"}} keeps
// the period; null clears; any other value replaces. decodeBody has checked
// the patch's names and types already.
func mergePatch[T any](fields T, patch []byte) (T, error) {
	var out T
	current, err := json.Marshal(fields)
	if err != nil {
		return out, err
	}
	d := json.NewDecoder(bytes.NewReader(mergeJSON(current, patch)))
	d.DisallowUnknownFields()
	if err := d.Decode(&out); err != nil {
		return out, fmt.Errorf("invalid JSON body: %v", err)
	}
	return out, nil
}

// mergeJSON is RFC 7396's MergePatch on raw JSON.
func mergeJSON(target, patch json.RawMessage) json.RawMessage {
	var p map[string]json.RawMessage
	if json.Unmarshal(patch, &p) != nil || p == nil {
		return patch // not an object: it replaces the target
	}
	var t map[string]json.RawMessage
	if json.Unmarshal(target, &t) != nil || t == nil {
		t = map[string]json.RawMessage{}
	}
	for k, v := range p {
		if string(bytes.TrimSpace(v)) == "null" {
			delete(t, k)
			continue
		}
		t[k] = mergeJSON(t[k], v)
	}
	out, _ := json.Marshal(t)
	return out
}

// patchDetail is the audit detail of a PATCH: its body, compacted, so that a
// null that cleared a field is on record too.
func patchDetail(body []byte) string {
	var out bytes.Buffer
	if json.Compact(&out, body) != nil {
		return ""
	}
	return out.String()
}

// keyInput is a create or PATCH body; absent fields keep their value.
type keyInput struct {
	Name     *string       `json:"name"`
	Team     *string       `json:"team"`
	User     *string       `json:"user"`
	Expires  *string       `json:"expires"`
	Disabled *bool         `json:"disabled"`
	Allow    *ACLConfig    `json:"allow"`
	Deny     *ACLConfig    `json:"deny"`
	Limits   *LimitsConfig `json:"limits"`
	Budget   *BudgetConfig `json:"budget"`
}

func (in *keyInput) apply(r *keyRecord) {
	set(&r.Name, in.Name)
	set(&r.Team, in.Team)
	set(&r.User, in.User)
	set(&r.Expires, in.Expires)
	set(&r.Disabled, in.Disabled)
	set(&r.Allow, in.Allow)
	set(&r.Deny, in.Deny)
	set(&r.Limits, in.Limits)
	set(&r.Budget, in.Budget)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

type keyView struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Key       string       `json:"key,omitempty"` // only in create and rotate answers
	Source    string       `json:"source"`
	Active    bool         `json:"active"`
	Team      string       `json:"team,omitempty"`
	Org       string       `json:"org,omitempty"`
	User      string       `json:"user,omitempty"`
	Expires   string       `json:"expires,omitempty"`
	Disabled  bool         `json:"disabled"`
	Allow     ACLConfig    `json:"allow"`
	Deny      ACLConfig    `json:"deny"`
	Limits    LimitsConfig `json:"limits"`
	Budget    BudgetConfig `json:"budget"`
	CreatedAt *time.Time   `json:"created_at,omitempty"`
	UpdatedAt *time.Time   `json:"updated_at,omitempty"`
}

func (g *Governor) viewKey(s *snapshot, rec keyRecord, runtime bool) keyView {
	v := keyView{ID: rec.ID, Name: rec.Name, Source: "config", Team: rec.Team, User: rec.User, Expires: rec.Expires,
		Disabled: rec.Disabled, Allow: rec.Allow, Deny: rec.Deny, Limits: rec.Limits, Budget: rec.Budget}
	if runtime {
		v.Source = "runtime"
		v.CreatedAt, v.UpdatedAt = &rec.CreatedAt, &rec.UpdatedAt
	}
	if e := s.byID[rec.ID]; e != nil {
		v.Org = e.principal.Org
		v.Active = !e.disabled && (e.expires.IsZero() || g.now().Before(e.expires))
	}
	return v
}

// findKey resolves :id (a key id, or failing that a key name). Callers hold g.mu.
func (g *Governor) findKey(idOrName string) (rec keyRecord, runtime, ok bool) {
	if r, ok := g.runtimeKeys[idOrName]; ok {
		return r, true, true
	}
	s := g.state.Load()
	e := s.byID[idOrName]
	if e == nil {
		e = s.byName[idOrName]
	}
	if e != nil {
		return e.rec, e.runtime, true
	}
	for _, r := range g.runtimeKeys {
		if r.Name == idOrName {
			return r, true, true
		}
	}
	return keyRecord{}, false, false
}

// nameTaken reports whether another key (config, runtime, active or not) has name.
func (g *Governor) nameTaken(name, exceptID string) bool {
	for _, k := range g.cfg.Keys {
		if k.Name == name {
			return true
		}
	}
	for id, r := range g.runtimeKeys {
		if r.Name == name && id != exceptID {
			return true
		}
	}
	return false
}

// checkRuntimeKey validates rec against the current teams. Callers hold g.mu.
func (g *Governor) checkRuntimeKey(rec *keyRecord) error {
	if err := rec.validate(); err != nil {
		return err
	}
	if rec.Team != "" && g.state.Load().teams[rec.Team] == nil {
		return fmt.Errorf("key.team: unknown team %q", rec.Team)
	}
	return nil
}

func (g *Governor) createKey(c *fiber.Ctx) error {
	var in keyInput
	if err := decodeBody(c, &in); err != nil {
		return adminError(c, http.StatusBadRequest, "invalid_request_error", "%v", err)
	}
	id, err := randomID("key_")
	if err != nil {
		return adminError(c, http.StatusInternalServerError, "server_error", "%v", err)
	}
	raw, err := NewKey()
	if err != nil {
		return adminError(c, http.StatusInternalServerError, "server_error", "%v", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.state.Load()
	now := g.now().UTC()
	rec := keyRecord{ID: id, Hash: hashHex(s.hasher.sum(raw)), CreatedAt: now, UpdatedAt: now}
	in.apply(&rec)
	if err := g.checkRuntimeKey(&rec); err != nil {
		return badRequest(err).send(c)
	}
	if g.nameTaken(rec.Name, "") {
		return adminError(c, http.StatusConflict, "conflict", "a key named %q already exists", rec.Name)
	}
	if err := g.putKey(rec, PutNew); err != nil {
		if fail := keyGuardFailure(err, rec); fail != nil {
			return fail.send(c)
		}
		g.log.Error("persist runtime key", "key_id", rec.ID, "err", err, LogRequestID(c.Context()))
		return adminError(c, http.StatusInternalServerError, "server_error", "could not persist the key")
	}
	g.runtimeKeys[rec.ID] = rec
	s = g.build(noWarn)
	g.publish(s)
	g.log.Info("runtime key created", "key_id", rec.ID, "key_name", rec.Name, "team", rec.Team, LogRequestID(c.Context()))
	g.adminAudit(c, ActionKeyCreate, keyTarget(rec), rec.Team, changedFields(in))
	v := g.viewKey(s, rec, true)
	v.Key = raw
	return c.Status(http.StatusCreated).JSON(v)
}

func (g *Governor) listKeys(c *fiber.Ctx) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.state.Load()
	out := make([]keyView, 0, len(g.cfg.Keys)+len(g.runtimeKeys))
	for _, k := range g.cfg.Keys {
		if e := s.byName[k.Name]; e != nil && !e.runtime {
			out = append(out, g.viewKey(s, e.rec, false))
		}
	}
	for _, id := range sortedKeys(g.runtimeKeys) {
		out = append(out, g.viewKey(s, g.runtimeKeys[id], true))
	}
	return c.JSON(fiber.Map{"keys": out})
}

func (g *Governor) getKey(c *fiber.Ctx) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	rec, runtime, ok := g.findKey(c.Params("id"))
	if !ok {
		return adminError(c, http.StatusNotFound, "not_found", "no such key")
	}
	return c.JSON(g.viewKey(g.state.Load(), rec, runtime))
}

// apiError is an admin failure decided while holding g.mu, sent afterwards.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) send(c *fiber.Ctx) error { return adminError(c, e.status, e.typ, "%s", e.msg) }

// guardFailure is the answer to a write a GuardedStore refused because
// another replica got there first: nil for any other error.
func guardFailure(err error, what, name string) *apiError {
	switch {
	case errors.Is(err, ErrRecordExists), errors.Is(err, ErrNameTaken):
		return &apiError{http.StatusConflict, "conflict", fmt.Sprintf("a %s named %q already exists", what, name)}
	case errors.Is(err, ErrRecordGone):
		return &apiError{http.StatusNotFound, "not_found", "no such " + what}
	}
	return nil
}

// keyGuardFailure is guardFailure for a key, whose runtime team may have
// been deleted by another replica since this one checked it.
func keyGuardFailure(err error, rec keyRecord) *apiError {
	if errors.Is(err, ErrParentGone) {
		return badRequest(fmt.Errorf("key.team: unknown team %q", rec.Team))
	}
	return guardFailure(err, "key", rec.Name)
}

func badRequest(err error) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", msg: err.Error()}
}

// mutateKey runs change on a runtime key's record, persists it and swaps the
// snapshot. Callers hold g.mu.
func (g *Governor) mutateKey(c *fiber.Ctx, idOrName string, change func(*keyRecord) *apiError) (keyRecord, *apiError) {
	rec, runtime, ok := g.findKey(idOrName)
	if !ok {
		return rec, &apiError{http.StatusNotFound, "not_found", "no such key"}
	}
	if !runtime {
		return rec, &apiError{http.StatusConflict, "conflict",
			fmt.Sprintf("key %q is declared in the config file; change it there", rec.Name)}
	}
	if fail := change(&rec); fail != nil {
		return rec, fail
	}
	rec.UpdatedAt = g.now().UTC()
	if err := g.putKey(rec, PutExisting); err != nil {
		if fail := keyGuardFailure(err, rec); fail != nil {
			return rec, fail
		}
		g.log.Error("persist runtime key", "key_id", rec.ID, "err", err, LogRequestID(c.Context()))
		return rec, &apiError{http.StatusInternalServerError, "server_error", "could not persist the key"}
	}
	g.runtimeKeys[rec.ID] = rec
	g.publish(g.build(noWarn))
	return rec, nil
}

// respondKey applies change, audits it as action with detail and answers
// with the key's view; raw, when set, is a new key value shown this once.
func (g *Governor) respondKey(c *fiber.Ctx, action, detail string, change func(*keyRecord) *apiError, raw string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	before, _, _ := g.findKey(c.Params("id"))
	rec, fail := g.mutateKey(c, c.Params("id"), change)
	if fail != nil {
		return fail.send(c)
	}
	if before.Team != "" && before.Team != rec.Team {
		// The team the key left hears of it too.
		g.adminAudit(c, action, keyTarget(rec), before.Team, detail)
	}
	g.adminAudit(c, action, keyTarget(rec), rec.Team, detail)
	v := g.viewKey(g.state.Load(), rec, true)
	v.Key = raw
	return c.JSON(v)
}

func (g *Governor) patchKey(c *fiber.Ctx) error {
	var in keyInput
	if err := decodeBody(c, &in); err != nil {
		return adminError(c, http.StatusBadRequest, "invalid_request_error", "%v", err)
	}
	return g.respondKey(c, ActionKeyUpdate, patchDetail(c.Body()), func(r *keyRecord) *apiError {
		fields, err := mergePatch(keyFields{Name: r.Name, Team: r.Team, User: r.User, Expires: r.Expires, Disabled: r.Disabled,
			Allow: r.Allow, Deny: r.Deny, Limits: r.Limits, Budget: r.Budget}, c.Body())
		if err != nil {
			return badRequest(err)
		}
		r.Name, r.Team, r.User, r.Expires, r.Disabled = fields.Name, fields.Team, fields.User, fields.Expires, fields.Disabled
		r.Allow, r.Deny, r.Limits, r.Budget = fields.Allow, fields.Deny, fields.Limits, fields.Budget
		if err := g.checkRuntimeKey(r); err != nil {
			return badRequest(err)
		}
		if g.nameTaken(r.Name, r.ID) {
			return &apiError{http.StatusConflict, "conflict", fmt.Sprintf("a key named %q already exists", r.Name)}
		}
		return nil
	}, "")
}

func (g *Governor) setKeyDisabled(disabled bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		action := ActionKeyEnable
		if disabled {
			action = ActionKeyDisable
		}
		return g.respondKey(c, action, "", func(r *keyRecord) *apiError {
			r.Disabled = disabled
			return nil
		}, "")
	}
}

// rotateKey replaces the key's value; the old value stops working at once.
// The id, and so the spend and limits, stay.
func (g *Governor) rotateKey(c *fiber.Ctx) error {
	raw, err := NewKey()
	if err != nil {
		return adminError(c, http.StatusInternalServerError, "server_error", "%v", err)
	}
	h := hashHex(g.state.Load().hasher.sum(raw))
	return g.respondKey(c, ActionKeyRotate, "key value replaced", func(r *keyRecord) *apiError {
		r.Hash = h
		return nil
	}, raw)
}

// keyTarget names a key in the audit log by id and name, never by value.
func keyTarget(rec keyRecord) string { return "key:" + rec.ID + " (" + rec.Name + ")" }

func (g *Governor) deleteKey(c *fiber.Ctx) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	rec, runtime, ok := g.findKey(c.Params("id"))
	if !ok {
		return adminError(c, http.StatusNotFound, "not_found", "no such key")
	}
	if !runtime {
		return adminError(c, http.StatusConflict, "conflict", "key %q is declared in the config file; remove it there", rec.Name)
	}
	if err := g.deleteRecord(RecordKindKey, rec.ID); err != nil {
		g.log.Error("delete runtime key", "key_id", rec.ID, "err", err, LogRequestID(c.Context()))
		return adminError(c, http.StatusInternalServerError, "server_error", "could not delete the key")
	}
	delete(g.runtimeKeys, rec.ID)
	g.publish(g.build(noWarn))
	g.log.Info("runtime key deleted", "key_id", rec.ID, "key_name", rec.Name, LogRequestID(c.Context()))
	g.adminAudit(c, ActionKeyDelete, keyTarget(rec), rec.Team, "")
	return c.SendStatus(http.StatusNoContent)
}

// usageView is a budget's state in the current period.
type usageView struct {
	Scope        string      `json:"scope"`
	ID           string      `json:"id"`
	Period       string      `json:"period"`
	PeriodStart  *time.Time  `json:"period_start,omitempty"`
	PeriodEnd    *time.Time  `json:"period_end,omitempty"`
	SpendUSD     json.Number `json:"spend_usd"`
	SpendNanoUSD int64       `json:"spend_nano_usd"`
	HeldUSD      json.Number `json:"held_usd"`
	BudgetUSD    json.Number `json:"budget_usd,omitempty"`
	RemainingUSD json.Number `json:"remaining_usd,omitempty"`
}

func (g *Governor) usage(scope Scope, id string, b budgetRule) usageView {
	now := g.now()
	start := b.period.start(now)
	spent, held := spendCounter(g.counters, scope, id).Spent(start)
	v := usageView{Scope: scope.String(), ID: id, Period: b.period.String(), SpendNanoUSD: spent,
		SpendUSD: json.Number(FormatUSD(spent)), HeldUSD: json.Number(FormatUSD(held))}
	if b.period != PeriodNone {
		ps, pe := time.Unix(start, 0).UTC(), b.period.next(now)
		v.PeriodStart, v.PeriodEnd = &ps, &pe
	}
	if b.limit > 0 {
		v.BudgetUSD = json.Number(FormatUSD(b.limit))
		v.RemainingUSD = json.Number(FormatUSD(max(b.limit-spent-held, 0)))
	}
	return v
}

func (g *Governor) keyUsage(c *fiber.Ctx) error {
	s := g.state.Load()
	e := s.byID[c.Params("id")]
	if e == nil {
		e = s.byName[c.Params("id")]
	}
	if e == nil {
		return adminError(c, http.StatusNotFound, "not_found", "no such active key")
	}
	out := fiber.Map{
		"key":       g.usage(ScopeKey, e.principal.KeyID, e.budget),
		"limits":    e.rec.Limits,
		"in_flight": g.counters.ConcurrencyCounter(CounterKey{Scope: ScopeKey, Metric: MetricParallel, ID: e.principal.KeyID}).InFlight(),
	}
	if t := e.team; t != nil {
		out["team"] = g.usage(ScopeTeam, t.name, t.budget)
		out["team_limits"] = t.rec.Limits
		if t.org != nil {
			out["org"] = g.usage(ScopeOrg, t.org.name, t.org.budget)
		}
	}
	return c.JSON(out)
}

// explainKey answers what Authorize would decide, e.g.
// GET /admin/keys/:id/authorize?kind=tool&name=weather__get_forecast.
func (g *Governor) explainKey(c *fiber.Ctx) error {
	s := g.state.Load()
	e := s.byID[c.Params("id")]
	if e == nil {
		e = s.byName[c.Params("id")]
	}
	if e == nil {
		return adminError(c, http.StatusNotFound, "not_found", "no such active key")
	}
	kind := Kind(c.Query("kind"))
	if kind.index() < 0 {
		return adminError(c, http.StatusBadRequest, "invalid_request_error", "kind: want model, tool or agent")
	}
	d := authorize(&e.principal, kind, c.Query("name"))
	return c.JSON(fiber.Map{"allowed": d.Allowed, "rule": d.Rule})
}

// teamInput is a create or PATCH body for a team.
type teamInput struct {
	Name   *string       `json:"name"`
	Org    *string       `json:"org"`
	Budget *BudgetConfig `json:"budget"`
	Limits *LimitsConfig `json:"limits"`
	Allow  *ACLConfig    `json:"allow"`
	Deny   *ACLConfig    `json:"deny"`
}

func (in *teamInput) apply(t *TeamConfig) {
	set(&t.Org, in.Org)
	set(&t.Budget, in.Budget)
	set(&t.Limits, in.Limits)
	set(&t.Allow, in.Allow)
	set(&t.Deny, in.Deny)
}

type teamView struct {
	TeamConfig
	Source    string     `json:"source"`
	Keys      int        `json:"keys"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

func viewTeam(s *snapshot, t *teamEntry) teamView {
	v := teamView{TeamConfig: t.rec.TeamConfig, Source: "config"}
	if t.runtime {
		v.Source = "runtime"
		v.CreatedAt, v.UpdatedAt = &t.rec.CreatedAt, &t.rec.UpdatedAt
	}
	for _, e := range s.byID {
		if e.team == t {
			v.Keys++
		}
	}
	return v
}

func (g *Governor) createTeam(c *fiber.Ctx) error {
	var in teamInput
	if err := decodeBody(c, &in); err != nil {
		return adminError(c, http.StatusBadRequest, "invalid_request_error", "%v", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now().UTC()
	t := teamRecord{CreatedAt: now, UpdatedAt: now}
	set(&t.Name, in.Name)
	in.apply(&t.TeamConfig)
	if err := t.validate("team", g.orgSet()); err != nil {
		return adminError(c, http.StatusBadRequest, "invalid_request_error", "%v", err)
	}
	s := g.state.Load()
	if _, ok := g.runtimeTeams[t.Name]; ok || s.teams[t.Name] != nil {
		return adminError(c, http.StatusConflict, "conflict", "a team named %q already exists", t.Name)
	}
	if err := g.putRecord(RecordKindTeam, t.Name, t, Guard{Pre: PutNew}); err != nil {
		if fail := guardFailure(err, "team", t.Name); fail != nil {
			return fail.send(c)
		}
		g.log.Error("persist runtime team", "team", t.Name, "err", err, LogRequestID(c.Context()))
		return adminError(c, http.StatusInternalServerError, "server_error", "could not persist the team")
	}
	g.runtimeTeams[t.Name] = t
	s = g.build(noWarn)
	g.publish(s)
	g.log.Info("runtime team created", "team", t.Name, LogRequestID(c.Context()))
	g.adminAudit(c, ActionTeamCreate, "team:"+t.Name, t.Name, changedFields(in))
	return c.Status(http.StatusCreated).JSON(viewTeam(s, s.teams[t.Name]))
}

// orgSet lists configured orgs, the only orgs a runtime team may join. Callers hold g.mu.
func (g *Governor) orgSet() map[string]bool {
	m := make(map[string]bool, len(g.cfg.Orgs))
	for _, o := range g.cfg.Orgs {
		m[o.Name] = true
	}
	return m
}

func (g *Governor) listTeams(c *fiber.Ctx) error {
	s := g.state.Load()
	out := make([]teamView, 0, len(s.teams))
	for _, name := range sortedKeys(s.teams) {
		out = append(out, viewTeam(s, s.teams[name]))
	}
	return c.JSON(fiber.Map{"teams": out})
}

func (g *Governor) getTeam(c *fiber.Ctx) error {
	s := g.state.Load()
	t := s.teams[c.Params("id")]
	if t == nil {
		return adminError(c, http.StatusNotFound, "not_found", "no such team")
	}
	return c.JSON(viewTeam(s, t))
}

// runtimeTeam finds a team the admin API may change. Callers hold g.mu.
func (g *Governor) runtimeTeam(name string) (teamRecord, *apiError) {
	if t, ok := g.runtimeTeams[name]; ok {
		return t, nil
	}
	if g.state.Load().teams[name] != nil {
		return teamRecord{}, &apiError{http.StatusConflict, "conflict",
			fmt.Sprintf("team %q is declared in the config file; change it there", name)}
	}
	return teamRecord{}, &apiError{http.StatusNotFound, "not_found", "no such team"}
}

func (g *Governor) patchTeam(c *fiber.Ctx) error {
	var in teamInput
	if err := decodeBody(c, &in); err != nil {
		return adminError(c, http.StatusBadRequest, "invalid_request_error", "%v", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t, fail := g.runtimeTeam(c.Params("id"))
	if fail != nil {
		return fail.send(c)
	}
	if in.Name != nil && *in.Name != t.Name {
		return adminError(c, http.StatusBadRequest, "invalid_request_error", "name: a team cannot be renamed (its spend is recorded under its name)")
	}
	fields, err := mergePatch(teamFields{Name: t.Name, Org: t.Org, Budget: t.Budget, Limits: t.Limits, Allow: t.Allow, Deny: t.Deny}, c.Body())
	if err != nil {
		return adminError(c, http.StatusBadRequest, "invalid_request_error", "%v", err)
	}
	t.Org, t.Budget, t.Limits, t.Allow, t.Deny = fields.Org, fields.Budget, fields.Limits, fields.Allow, fields.Deny
	t.UpdatedAt = g.now().UTC()
	if err := t.validate("team", g.orgSet()); err != nil {
		return adminError(c, http.StatusBadRequest, "invalid_request_error", "%v", err)
	}
	if err := g.putRecord(RecordKindTeam, t.Name, t, Guard{Pre: PutExisting}); err != nil {
		if fail := guardFailure(err, "team", t.Name); fail != nil {
			return fail.send(c)
		}
		g.log.Error("persist runtime team", "team", t.Name, "err", err, LogRequestID(c.Context()))
		return adminError(c, http.StatusInternalServerError, "server_error", "could not persist the team")
	}
	g.runtimeTeams[t.Name] = t
	s := g.build(noWarn)
	g.publish(s)
	g.adminAudit(c, ActionTeamUpdate, "team:"+t.Name, t.Name, patchDetail(c.Body()))
	return c.JSON(viewTeam(s, s.teams[t.Name]))
}

func (g *Governor) deleteTeam(c *fiber.Ctx) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, fail := g.runtimeTeam(c.Params("id"))
	if fail != nil {
		return fail.send(c)
	}
	var members []string
	for _, k := range g.runtimeKeys {
		if k.Team == t.Name {
			members = append(members, k.Name)
		}
	}
	if len(members) == 0 {
		// Another replica may have put a key in the team that this one has
		// not heard of yet: the store has the last word.
		var inUse *RecordInUseError
		switch err := g.deleteTeamRecord(t.Name); {
		case errors.As(err, &inUse):
			members = inUse.Names
		case err != nil:
			g.log.Error("delete runtime team", "team", t.Name, "err", err, LogRequestID(c.Context()))
			return adminError(c, http.StatusInternalServerError, "server_error", "could not delete the team")
		}
	}
	if len(members) > 0 {
		slices.Sort(members)
		return adminError(c, http.StatusConflict, "conflict", "team %q still has keys: %s", t.Name, strings.Join(members, ", "))
	}
	delete(g.runtimeTeams, t.Name)
	g.publish(g.build(noWarn))
	g.log.Info("runtime team deleted", "team", t.Name, LogRequestID(c.Context()))
	g.adminAudit(c, ActionTeamDelete, "team:"+t.Name, t.Name, "")
	return c.SendStatus(http.StatusNoContent)
}

func (g *Governor) teamUsage(c *fiber.Ctx) error {
	t := g.state.Load().teams[c.Params("id")]
	if t == nil {
		return adminError(c, http.StatusNotFound, "not_found", "no such team")
	}
	out := fiber.Map{
		"team":      g.usage(ScopeTeam, t.name, t.budget),
		"limits":    t.rec.Limits,
		"in_flight": g.counters.ConcurrencyCounter(CounterKey{Scope: ScopeTeam, Metric: MetricParallel, ID: t.name}).InFlight(),
	}
	if t.org != nil {
		out["org"] = g.usage(ScopeOrg, t.org.name, t.org.budget)
	}
	return c.JSON(out)
}
