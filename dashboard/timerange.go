package dashboard

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
)

// timeRange is a query's [from, to); a zero end is open.
type timeRange struct {
	from, to time.Time
}

// maxRange bounds how far back `range` may reach.
const maxRange = 20 * 366 * 24 * time.Hour

// parseTimeRange reads `from` and `to` (RFC 3339 or unix seconds) and
// `range` (a Go duration reaching back from `to`, or from now when `to` is
// absent). Without from or range, def applies the same way; def 0 leaves the
// start open.
func parseTimeRange(c *fiber.Ctx, now time.Time, def time.Duration) (timeRange, error) {
	var r timeRange
	var err error
	if r.from, err = parseTime("from", c.Query("from")); err != nil {
		return r, err
	}
	if r.to, err = parseTime("to", c.Query("to")); err != nil {
		return r, err
	}
	back := def
	if s := c.Query("range"); s != "" {
		if !r.from.IsZero() {
			return r, errBadRequest("range: give either from or range, not both")
		}
		if back, err = time.ParseDuration(s); err != nil || back <= 0 || back > maxRange {
			return r, errBadRequest("range: want a positive duration such as 1h, 24h or 720h")
		}
	}
	if r.from.IsZero() && back > 0 {
		end := r.to
		if end.IsZero() {
			end = now
		}
		r.from = end.Add(-back)
	}
	if !r.from.IsZero() && !r.to.IsZero() && r.to.Before(r.from) {
		return r, errBadRequest("to: must not be before from")
	}
	return r, nil
}

func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 && n < 1<<40 {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, errBadRequest("%s: want an RFC 3339 time or unix seconds", field)
}
