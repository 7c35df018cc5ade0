package dashboard

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/storage"
)

// Defaults and bounds of the spend view.
const (
	defaultSpendRange = 24 * time.Hour
	// maxHourBuckets keeps an hourly series to about three months of points.
	maxHourBuckets = 93 * 24
	maxTop         = 1000
)

// spendResponse is GET /admin/spend.
type spendResponse struct {
	From    time.Time   `json:"from"`
	To      time.Time   `json:"to"` // now when the query left it open
	GroupBy string      `json:"group_by"`
	Bucket  string      `json:"bucket"`
	Team    string      `json:"team,omitempty"` // the team filter in force (forced for team keys)
	KeyID   string      `json:"key_id,omitempty"`
	Total   amount      `json:"total"`
	Groups  []groupRow  `json:"groups"`
	Others  *groupRow   `json:"others,omitempty"` // the groups top cut off, summed
	Series  []seriesRow `json:"series,omitempty"` // only with a bucket
}

// groupRow is one group's sum over the range. Other marks the sum of the
// groups cut off by top.
type groupRow struct {
	Group string `json:"group"`
	Other bool   `json:"other,omitempty"`
	amount
}

// seriesRow is one group's sum in one bucket.
type seriesRow struct {
	Bucket time.Time `json:"bucket"`
	Group  string    `json:"group"`
	Other  bool      `json:"other,omitempty"`
	amount
}

// spend answers GET /admin/spend?group_by=&bucket=&from=&to=&range=&team=&key=&top=.
func (d *Dashboard) spend(c *fiber.Ctx) error {
	q, top, err := d.spendQuery(c)
	if err != nil {
		return sendError(c, err)
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), queryTimeout)
	defer cancel()
	rows, err := d.store.Spend(ctx, q)
	if err != nil {
		return d.storeFailed(c, "spend", err)
	}
	resp := summariseSpend(rows, top)
	resp.From, resp.GroupBy, resp.Bucket, resp.Team, resp.KeyID = q.From, string(q.GroupBy), string(q.Bucket), q.Team, q.KeyID
	if resp.To = q.To; resp.To.IsZero() {
		resp.To = d.now().UTC()
	}
	return c.JSON(resp)
}

func (d *Dashboard) spendQuery(c *fiber.Ctx) (storage.SpendQuery, int, error) {
	var q storage.SpendQuery
	tr, err := parseTimeRange(c, d.now(), defaultSpendRange)
	if err != nil {
		return q, 0, err
	}
	q.From, q.To = tr.from, tr.to
	q.GroupBy = storage.GroupBy(c.Query("group_by"))
	q.Bucket = storage.Bucket(c.Query("bucket"))
	if err := q.Validate(); err != nil {
		return q, 0, errBadRequest("group_by or bucket: want group_by one of team, key, model, provider, tool_server, tool, agent, layer and bucket hour or day")
	}
	if q.Bucket == storage.BucketHour {
		end := q.To
		if end.IsZero() {
			end = d.now()
		}
		if q.From.Before(end.Add(-maxHourBuckets * time.Hour)) {
			return q, 0, errBadRequest("bucket: hour buckets cover at most 93 days; use bucket=day")
		}
	}
	key, err := d.keyParam(c)
	if err != nil {
		return q, 0, err
	}
	if q.Team, q.KeyID, err = scopeOf(principal(c)).restrict(c.Query("team"), key); err != nil {
		d.denied(c, err)
		return q, 0, err
	}
	top := 0
	if s := c.Query("top"); s != "" {
		if top, err = strconv.Atoi(s); err != nil || top < 1 || top > maxTop {
			return q, 0, errBadRequest("top: want an integer from 1 to %d", maxTop)
		}
	}
	return q, top, nil
}

// summariseSpend totals rows per group and overall, keeps the top groups by
// cost (all when top is 0) and folds the rest into Others, in the series too.
func summariseSpend(rows []storage.SpendRow, top int) spendResponse {
	var resp spendResponse
	byGroup := map[string]*groupRow{}
	for _, r := range rows {
		resp.Total.addRow(r)
		g := byGroup[r.Group]
		if g == nil {
			g = &groupRow{Group: r.Group}
			byGroup[r.Group] = g
		}
		g.addRow(r)
	}
	resp.Total.finish()
	resp.Groups = make([]groupRow, 0, len(byGroup))
	for _, g := range byGroup {
		g.finish()
		resp.Groups = append(resp.Groups, *g)
	}
	slices.SortFunc(resp.Groups, func(a, b groupRow) int {
		if c := cmp.Compare(b.CostNanoUSD, a.CostNanoUSD); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Requests, a.Requests); c != 0 {
			return c
		}
		return cmp.Compare(a.Group, b.Group)
	})
	kept := map[string]bool{}
	if top > 0 && len(resp.Groups) > top {
		others := &groupRow{Other: true}
		for _, g := range resp.Groups[top:] {
			others.merge(g.amount)
		}
		others.finish()
		resp.Others = others
		resp.Groups = resp.Groups[:top]
	}
	for _, g := range resp.Groups {
		kept[g.Group] = true
	}
	resp.Series = buildSeries(rows, kept, resp.Others != nil)
	return resp
}

// buildSeries turns bucketed rows into the series, merging the groups not
// kept into one Other row per bucket. Rows without a bucket give no series.
func buildSeries(rows []storage.SpendRow, kept map[string]bool, folded bool) []seriesRow {
	if len(rows) == 0 || rows[0].Bucket.IsZero() {
		return nil
	}
	out := make([]seriesRow, 0, len(rows))
	otherAt := map[time.Time]int{}
	for _, r := range rows {
		if folded && !kept[r.Group] {
			i, ok := otherAt[r.Bucket]
			if !ok {
				i = len(out)
				otherAt[r.Bucket] = i
				out = append(out, seriesRow{Bucket: r.Bucket, Other: true})
			}
			out[i].addRow(r)
			continue
		}
		s := seriesRow{Bucket: r.Bucket, Group: r.Group}
		s.addRow(r)
		out = append(out, s)
	}
	for i := range out {
		out[i].finish()
	}
	slices.SortStableFunc(out, func(a, b seriesRow) int { return a.Bucket.Compare(b.Bucket) })
	return out
}
