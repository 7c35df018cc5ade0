package governance

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// AuditEvent is one entry of the audit log: who did what to what, by which
// rule, from where. It never holds a raw key or anything derived from one.
// The fields mirror storage.AuditEvent; the app adapts one to the other so
// governance needs no storage import.
type AuditEvent struct {
	Time       time.Time
	Actor      string // key id ("admin" for the admin key, "system" for config reloads); empty when unauthenticated
	ActorName  string
	Team       string // the team the event concerns, which is what a team key may read
	Action     string
	Target     string
	Rule       string
	Status     string
	RemoteAddr string
	RequestID  string
	Detail     string
}

// Audit actions and statuses.
const (
	ActionDenied       = "request.denied"
	ActionKeyCreate    = "key.create"
	ActionKeyUpdate    = "key.update"
	ActionKeyDisable   = "key.disable"
	ActionKeyEnable    = "key.enable"
	ActionKeyRotate    = "key.rotate"
	ActionKeyDelete    = "key.delete"
	ActionTeamCreate   = "team.create"
	ActionTeamUpdate   = "team.update"
	ActionTeamDelete   = "team.delete"
	ActionConfigReload = "config.reload"

	AuditOK     = "ok"
	AuditDenied = "denied"
	AuditFailed = "failed"
)

// WithAudit makes the governor append admin actions and denials to w.
func WithAudit(w *AuditWriter) Option { return func(g *Governor) { g.audit = w } }

// Denial describes a request a protocol refused because of a governance
// error. Principal is nil when the caller did not authenticate.
type Denial struct {
	Principal  *Principal
	Kind       Kind
	Name       string
	Err        error
	RemoteAddr string
	RequestID  string
	Route      string
}

// RequestDenial fills a Denial with where the request came from: the
// client's address, the request id the app's middleware put on the response
// (X-Request-ID) and the path. Protocols that leave fiber for net/http take
// it at their fiber edge and complete it at the refusal. Fiber's strings
// point into buffers reused by the next request, so they are copied.
func RequestDenial(c *fiber.Ctx, p *Principal, kind Kind, name string, err error) Denial {
	return Denial{
		Principal: p, Kind: kind, Name: name, Err: err,
		RemoteAddr: c.IP(), RequestID: requestID(c), Route: clip(c.Path()),
	}
}

func requestID(c *fiber.Ctx) string { return clip(c.GetRespHeader(fiber.HeaderXRequestID)) }

// auditFieldLen bounds client-chosen text (paths, model and tool names) kept
// in an event, so a hostile client cannot grow the table by request size.
const auditFieldLen = 256

// clip bounds s and copies it: callers pass strings that may alias a
// request's buffers, and events outlive the request.
func clip(s string) string {
	if len(s) <= auditFieldLen {
		return strings.Clone(s)
	}
	return strings.Clone(strings.ToValidUTF8(s[:auditFieldLen], ""))
}

// Denied audits a refusal. Only governance errors are audited: a bad body or
// an unknown model is the client's mistake, not a decision. It never blocks.
func (g *Governor) Denied(d Denial) {
	var ge *Error
	if g.audit == nil || !errors.As(d.Err, &ge) {
		return
	}
	e := AuditEvent{
		Time: g.now().UTC(), Action: ActionDenied, Status: AuditDenied, Rule: ge.Rule,
		RemoteAddr: clip(d.RemoteAddr), RequestID: clip(d.RequestID), Detail: clip(d.Route) + ": " + ge.Message,
	}
	if d.Name != "" {
		e.Target = string(d.Kind) + ":" + clip(d.Name)
	}
	if p := d.Principal; p != nil {
		e.Actor, e.ActorName, e.Team = p.KeyID, p.KeyName, p.Team
	}
	g.audit.Append(e)
}

// adminAudit records a successful admin action by the principal requireAdmin
// admitted. team is the team the target belongs to (or is), so that team's
// keys can read it.
func (g *Governor) adminAudit(c *fiber.Ctx, action, target, team, detail string) {
	if g.audit == nil {
		return
	}
	e := AuditEvent{
		Time: g.now().UTC(), Actor: adminKeyID, ActorName: "admin", Team: team, Action: action, Target: target,
		Status: AuditOK, RemoteAddr: c.IP(), RequestID: requestID(c), Detail: detail,
	}
	if p, ok := c.Locals(adminLocal).(*Principal); ok {
		e.Actor, e.ActorName = p.KeyID, p.KeyName
	}
	g.audit.Append(e)
}

// changedFields is the JSON of the fields an admin request set (absent ones
// are nil pointers), e.g. {"budget":{"usd":"10","period":"1d"},"name":"ci"}.
// Admin inputs have no secret fields: key values are generated, never sent.
func changedFields(in any) string {
	b, err := json.Marshal(in)
	if err != nil {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	for k, v := range m {
		if string(v) == "null" {
			delete(m, k)
		}
	}
	b, _ = json.Marshal(m)
	return string(b)
}
