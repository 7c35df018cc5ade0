package governance

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// BudgetUsage is one key's or team's budget in its current period, read
// from the counters Reserve and Settle use, so it is exactly what the next
// request is checked against.
type BudgetUsage struct {
	Scope        Scope     // ScopeKey or ScopeTeam
	ID           string    // key id, or team name
	Name         string    // key name, or team name
	Team         string    // the key's team; the team itself for a team
	LimitNanoUSD int64     // 0 = no cap
	Period       Period    // PeriodNone: spend since start-up, never reset
	PeriodStart  time.Time // zero for PeriodNone
	PeriodEnd    time.Time // when the spend resets; zero for PeriodNone
	SpentNanoUSD int64     // settled spend of the period
	HeldNanoUSD  int64     // estimates of requests in flight
}

// Budgets lists the budget state of every team and every key known to the
// current config and admin changes: teams first, then keys, each by team and
// name. team "" lists all; otherwise only that team and its keys. Keys
// without a budget are listed too, with their spend and LimitNanoUSD 0.
// Disabled and expired keys stay listed: their spend still counts.
func (g *Governor) Budgets(team string) []BudgetUsage {
	s := g.state.Load()
	now := g.now()
	var out []BudgetUsage
	if team == "" {
		out = make([]BudgetUsage, 0, len(s.teams)+len(s.byID))
	}
	for _, t := range s.teams {
		if team != "" && t.name != team {
			continue
		}
		out = append(out, budgetUsage(ScopeTeam, t.name, t.name, t.name, t.spend, t.budget, now))
	}
	for _, e := range s.byID {
		if team != "" && e.principal.Team != team {
			continue
		}
		out = append(out, budgetUsage(ScopeKey, e.principal.KeyID, e.principal.KeyName, e.principal.Team, e.spend, e.budget, now))
	}
	slices.SortFunc(out, func(a, b BudgetUsage) int {
		if a.Scope != b.Scope {
			return cmp.Compare(b.Scope, a.Scope) // ScopeTeam sorts before ScopeKey
		}
		if c := strings.Compare(a.Team, b.Team); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func budgetUsage(scope Scope, id, name, team string, c SpendCounter, b budgetRule, now time.Time) BudgetUsage {
	start := b.period.start(now)
	spent, held := c.Spent(start)
	u := BudgetUsage{Scope: scope, ID: id, Name: name, Team: team, LimitNanoUSD: b.limit, Period: b.period,
		SpentNanoUSD: spent, HeldNanoUSD: held}
	if b.period != PeriodNone {
		u.PeriodStart, u.PeriodEnd = time.Unix(start, 0).UTC(), b.period.next(now)
	}
	return u
}
