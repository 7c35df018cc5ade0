package governance

import (
	"strconv"
	"sync/atomic"
	"time"
)

// Request is what Reserve admits: one call to a model, tool or agent, with
// the caller's upper estimates. EstimatedTokens 0 means unknown: the token
// limits then only require the bucket not to be in debt.
type Request struct {
	Kind                 Kind
	Name                 string
	EstimatedCostNanoUSD int64
	EstimatedTokens      int64
}

// Reservation is an admitted request's hold on rate, concurrency and budget.
// Settle it exactly once when the call ends (extra calls are no-ops).
type Reservation struct {
	g        *Governor
	kind     Kind
	nRates   uint8
	nGauges  uint8
	nBudgets uint8
	settled  atomic.Bool
	rates    [8]rateTake // key and team: requests, tokens, per-model requests and tokens
	gauges   [2]ConcurrencyCounter
	budgets  [3]budgetTake // key, team, org
	headers  rateHeaders
}

type rateTake struct {
	c      RateCounter
	limit  int64
	units  int64
	tokens bool
}

type budgetTake struct {
	c      SpendCounter
	scope  Scope
	id     string
	period int64
	limit  int64
	held   int64
}

type rateInfo struct {
	set       bool
	limit     int64
	remaining int64
	reset     time.Duration
}

type rateHeaders struct {
	requests, tokens rateInfo
}

func (h *rateHeaders) note(tokens bool, limit int64, r RateResult) {
	i := &h.requests
	if tokens {
		i = &h.tokens
	}
	if !i.set || r.Remaining < i.remaining {
		*i = rateInfo{set: true, limit: limit, remaining: r.Remaining, reset: r.Reset}
	}
}

var rateHeaderNames = [2][3]string{
	{"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"},
	{"x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"},
}

func (h *rateHeaders) write(set func(name, value string)) {
	for i, info := range [2]*rateInfo{&h.requests, &h.tokens} {
		if !info.set {
			continue
		}
		set(rateHeaderNames[i][0], strconv.FormatInt(info.limit, 10))
		set(rateHeaderNames[i][1], strconv.FormatInt(info.remaining, 10))
		// OpenAI writes resets as Go-style durations ("6m0s", "20ms").
		set(rateHeaderNames[i][2], info.reset.Round(time.Millisecond).String())
	}
}

// RateLimitHeaders writes x-ratelimit-{limit,remaining,reset}-{requests,tokens}
// for the tightest limit that applied; nothing when no limit applied.
func (r *Reservation) RateLimitHeaders(set func(name, value string)) { r.headers.write(set) }

var requestMetric = [numKinds]Metric{MetricRequests, MetricToolCalls, MetricAgentCalls}

var requestNoun = [numKinds]string{"requests", "tool calls", "agent calls"}

// Reserve admits a request against every rate limit, concurrency limit and
// budget of the key, its team and its org, or admits nothing and returns a
// RateLimited or BudgetExceeded *Error. Each counter checks and takes
// atomically, and a denial at any counter returns what the earlier ones took,
// so no limit is ever exceeded however many goroutines race.
func (g *Governor) Reserve(p *Principal, req Request) (*Reservation, error) {
	if p == nil || p.entry == nil {
		return nil, unauthenticated("unknown principal: authenticate first")
	}
	ki := req.Kind.index()
	if ki < 0 {
		g.metrics.forbidden[numKinds].Inc()
		return nil, &Error{Kind: Forbidden, Message: "not allowed"}
	}
	now := g.now()
	r := &Reservation{g: g, kind: req.Kind}
	cost := max(req.EstimatedCostNanoUSD, 0)
	tokens := max(req.EstimatedTokens, 0)
	e := p.entry
	if !p.Admin {
		levels := [2]*limitSet{&e.limits, nil}
		n := 1
		if e.team != nil {
			levels[1] = &e.team.limits
			n = 2
		}
		for _, l := range levels[:n] {
			if err := r.takeRates(l, ki, req.Name, tokens, now); err != nil {
				r.rollback(now)
				if err.Kind != Unavailable {
					g.metrics.rateLimited[ki].Inc()
				}
				return nil, err
			}
		}
		for _, l := range levels[:n] {
			if l.parallel == nil {
				continue
			}
			res := l.parallel.Acquire(l.maxParallel)
			if !res.Allowed {
				r.rollback(now)
				if res.Unavailable {
					return nil, errUnavailable()
				}
				g.metrics.rateLimited[ki].Inc()
				return nil, &Error{Kind: RateLimited, RetryAfter: time.Second, Message: l.parallelMsg}
			}
			if res.Unavailable {
				continue // admitted by fail_mode open: no slot to release
			}
			r.gauges[r.nGauges] = l.parallel
			r.nGauges++
		}
	}
	err := r.hold(ScopeKey, p.KeyID, e.spend, e.budget, cost, now)
	if t := e.team; err == nil && t != nil {
		err = r.hold(ScopeTeam, t.name, t.spend, t.budget, cost, now)
		if o := t.org; err == nil && o != nil {
			err = r.hold(ScopeOrg, o.name, o.spend, o.budget, cost, now)
		}
	}
	if err != nil {
		r.rollback(now)
		if err.Kind != Unavailable {
			g.metrics.budgetDenied[ki].Inc()
		}
		return nil, err
	}
	g.metrics.reservations[ki].Inc()
	g.metrics.inFlight.Inc()
	return r, nil
}

func (r *Reservation) takeRates(l *limitSet, ki int, name string, tokens int64, now time.Time) *Error {
	if c := l.reqRate[ki]; c != nil {
		if err := r.take(c, l.reqLimit[ki], 1, false, now, l.reqMsg[ki]); err != nil {
			return err
		}
	}
	if ki != 0 {
		return nil
	}
	if l.tokRate != nil {
		if err := r.take(l.tokRate, l.tpm, tokens, true, now, l.tokMsg); err != nil {
			return err
		}
	}
	m := l.modelLimit(name)
	if m == nil {
		return nil
	}
	if m.rpmRate != nil {
		if err := r.take(m.rpmRate, m.rpm, 1, false, now, l.modelMsg[0]); err != nil {
			return err
		}
	}
	if m.tpmRate != nil {
		if err := r.take(m.tpmRate, m.tpm, tokens, true, now, l.modelMsg[1]); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reservation) take(c RateCounter, limit, units int64, tokens bool, now time.Time, msg string) *Error {
	units = min(units, limit)
	res := c.Take(limit, units, now)
	if res.Unavailable {
		if !res.Allowed {
			return errUnavailable()
		}
		return nil // admitted by fail_mode open: nothing taken, nothing to give back
	}
	r.headers.note(tokens, limit, res)
	if !res.Allowed {
		e := &Error{Kind: RateLimited, RetryAfter: res.RetryAfter, Message: msg}
		e.rate.note(tokens, limit, res)
		return e
	}
	r.rates[r.nRates] = rateTake{c: c, limit: limit, units: units, tokens: tokens}
	r.nRates++
	return nil
}

func (r *Reservation) hold(scope Scope, id string, c SpendCounter, b budgetRule, cost int64, now time.Time) *Error {
	period := b.period.start(now)
	res := c.Hold(period, b.limit, cost)
	if res.Unavailable {
		if !res.Allowed {
			return errUnavailable()
		}
		// Admitted by fail_mode open: nothing is held, but the actual cost is
		// still settled, so spend is counted once the store answers again.
		cost = 0
	} else if !res.Allowed {
		e := &Error{Kind: BudgetExceeded, Message: scope.String() + " budget exceeded"}
		if next := b.period.next(now); !next.IsZero() {
			e.RetryAfter = next.Sub(now)
			e.Message += " for this " + periodNoun[b.period] + "; it resets at " + next.Format(time.RFC3339)
		}
		return e
	}
	r.budgets[r.nBudgets] = budgetTake{c: c, scope: scope, id: id, period: period, limit: b.limit, held: cost}
	r.nBudgets++
	return nil
}

var periodNoun = map[Period]string{PeriodDaily: "day", PeriodWeekly: "week", PeriodMonthly: "month"}

func (r *Reservation) rollback(now time.Time) {
	for _, t := range r.rates[:r.nRates] {
		t.c.Give(t.limit, t.units, now)
	}
	for _, c := range r.gauges[:r.nGauges] {
		c.Release()
	}
	for _, b := range r.budgets[:r.nBudgets] {
		b.c.Settle(b.period, b.held, 0)
	}
}

// Settle ends the reservation: frees its concurrency slots, corrects the
// token buckets from the estimate to actualTokens and replaces each budget
// hold with actualCostNanoUSD. Calls after the first do nothing.
func (r *Reservation) Settle(actualCostNanoUSD, actualTokens int64) {
	if r == nil || !r.settled.CompareAndSwap(false, true) {
		return
	}
	g := r.g
	cost := max(actualCostNanoUSD, 0)
	tokens := max(actualTokens, 0)
	for _, c := range r.gauges[:r.nGauges] {
		c.Release()
	}
	var now time.Time
	for _, t := range r.rates[:r.nRates] {
		if t.tokens && t.units != tokens {
			if now.IsZero() {
				now = g.now()
			}
			t.c.Give(t.limit, t.units-tokens, now)
		}
	}
	for _, b := range r.budgets[:r.nBudgets] {
		before, after := b.c.Settle(b.period, b.held, cost)
		if b.limit > 0 && after > before {
			g.alertCrossings(b, before, after)
		}
	}
	ki := kindMetricIndex(r.kind)
	g.metrics.inFlight.Dec()
	g.metrics.spend[ki].Add(float64(cost))
	g.metrics.tokens[ki].Add(float64(tokens))
}

var alertThresholds = [3]int64{50, 80, 100}

// alertCrossings logs and counts each soft-budget threshold this settle
// crossed. Counters serialise settles, so each crossing is seen exactly once per period.
func (g *Governor) alertCrossings(b budgetTake, before, after int64) {
	for _, pct := range alertThresholds {
		at := b.limit/100*pct + b.limit%100*pct/100
		if before < at && after >= at {
			label := strconv.FormatInt(pct, 10)
			g.metrics.budgetAlerts.WithLabelValues(b.scope.String(), label).Inc()
			g.log.Warn("budget alert", "scope", b.scope.String(), "id", b.id, "threshold_percent", pct,
				"spend_usd", FormatUSD(after), "budget_usd", FormatUSD(b.limit))
		}
	}
}
