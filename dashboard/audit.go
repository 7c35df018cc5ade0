package dashboard

import (
	"context"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/storage"
)

// audit answers GET /admin/audit?from&to&range&actor&team&action&limit with
// the matching audit events, newest first. A team key reads only its team's
// events; a key without a team only the events it caused.
func (d *Dashboard) audit(c *fiber.Ctx) error {
	tr, err := parseTimeRange(c, d.now(), 0)
	if err != nil {
		return sendError(c, err)
	}
	q := storage.AuditQuery{From: tr.from, To: tr.to, Actor: c.Query("actor"), Action: c.Query("action")}
	if s := c.Query("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 1 || q.Limit > storage.MaxAuditLimit {
			return sendError(c, errBadRequest("limit: want 1 to %d", storage.MaxAuditLimit))
		}
	}
	sc := scopeOf(principal(c))
	team, actor, err := sc.restrict(c.Query("team"), q.Actor)
	if err != nil {
		d.denied(c, err)
		return sendError(c, err)
	}
	q.Team, q.Actor = team, actor
	ctx, cancel := context.WithTimeout(c.UserContext(), queryTimeout)
	defer cancel()
	events, err := d.store.Audit(ctx, q)
	if err != nil {
		return d.storeFailed(c, "audit", err)
	}
	if events == nil {
		events = []storage.AuditEvent{}
	}
	return c.JSON(fiber.Map{"events": events})
}
