package dashboard

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/governance"
)

// budgetsResponse is GET /admin/budgets.
type budgetsResponse struct {
	Team    string       `json:"team,omitempty"` // the team filter in force (forced for team keys)
	Budgets []budgetView `json:"budgets"`
}

// budgetView is one key's or team's budget in its current period. Money is
// given exactly (nano-USD and its decimal USD string); UsedRatio is for
// drawing bars only.
type budgetView struct {
	Scope        string     `json:"scope"` // "team" or "key"
	ID           string     `json:"id"`    // key id, or team name
	Name         string     `json:"name"`
	Team         string     `json:"team,omitempty"`
	Period       string     `json:"period"` // daily, weekly, monthly or none
	PeriodStart  *time.Time `json:"period_start,omitempty"`
	PeriodEnd    *time.Time `json:"period_end,omitempty"`
	LimitNanoUSD int64      `json:"limit_nano_usd"` // 0 = no cap
	LimitUSD     string     `json:"limit_usd,omitempty"`
	SpentNanoUSD int64      `json:"spent_nano_usd"`
	SpentUSD     string     `json:"spent_usd"`
	HeldNanoUSD  int64      `json:"held_nano_usd"`
	HeldUSD      string     `json:"held_usd"`
	UsedRatio    *float64   `json:"used_ratio,omitempty"` // spent / limit; absent without a cap
}

// budgets answers GET /admin/budgets?team=: the budget limit, period and
// spend of every team and key the caller may see. The numbers come from the
// governor's live counters, not from stored spans, so they are what the
// next request is checked against.
func (d *Dashboard) budgets(c *fiber.Ctx) error {
	sc := scopeOf(principal(c))
	key, err := d.keyParam(c)
	if err != nil {
		return sendError(c, err)
	}
	team, keyID, err := sc.restrict(c.Query("team"), key)
	if err != nil {
		d.denied(c, err)
		return sendError(c, err)
	}
	resp := budgetsResponse{Team: team, Budgets: []budgetView{}}
	for _, u := range d.gov.Budgets(team) {
		if keyID != "" && (u.Scope != governance.ScopeKey || u.ID != keyID) {
			continue
		}
		resp.Budgets = append(resp.Budgets, viewBudget(u))
	}
	return c.JSON(resp)
}

func viewBudget(u governance.BudgetUsage) budgetView {
	v := budgetView{
		Scope: u.Scope.String(), ID: u.ID, Name: u.Name, Team: u.Team, Period: u.Period.String(),
		LimitNanoUSD: u.LimitNanoUSD, SpentNanoUSD: u.SpentNanoUSD, SpentUSD: formatUSD(u.SpentNanoUSD),
		HeldNanoUSD: u.HeldNanoUSD, HeldUSD: formatUSD(u.HeldNanoUSD),
	}
	if !u.PeriodStart.IsZero() {
		start, end := u.PeriodStart, u.PeriodEnd
		v.PeriodStart, v.PeriodEnd = &start, &end
	}
	if u.LimitNanoUSD > 0 {
		v.LimitUSD = formatUSD(u.LimitNanoUSD)
		r := float64(u.SpentNanoUSD) / float64(u.LimitNanoUSD)
		v.UsedRatio = &r
	}
	return v
}
