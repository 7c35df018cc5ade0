package governance

import (
	"fmt"
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

// rateHeaderNames are in the canonical form of net/http and fasthttp, so
// a setter may skip normalizing them.
var rateHeaderNames = [2][3]string{
	{"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests"},
	{"X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens"},
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
// for the tightest limit that applied; nothing when no limit applied. Names
// come in canonical form (X-Ratelimit-Limit-Requests).
func (r *Reservation) RateLimitHeaders(set func(name, value string)) { r.headers.write(set) }

var requestMetric = [numKinds]Metric{MetricRequests, MetricToolCalls, MetricAgentCalls}

var requestNoun = [numKinds]string{"requests", "tool calls", "agent calls"}

// requestRule names each kind's per-minute limit in the audit log.
var requestRule = [numKinds]string{"rpm", "tool_rpm", "agent_rpm"}

// maxSteps bounds a reservation's counter calls: the rates, gauges and
// budgets a Reservation can hold.
const maxSteps = 8 + 2 + 3

// planStep is one counter call of a reservation with what its outcome means.
type planStep struct {
	op     CounterOp
	tokens bool       // OpTake: a token bucket (else a request count), for the headers
	denial rateDenial // OpTake, OpAcquire: what a refusal says
	scope  Scope      // OpHold
	id     string     // OpHold
	rule   budgetRule
}

// plan is every counter call of one reservation, in the order they are
// taken: rates of the key then of its team, concurrency, then budgets of
// the key, team and org.
type plan struct {
	n     int
	steps [maxSteps]planStep
}

func (pl *plan) add(s planStep) { pl.steps[pl.n] = s; pl.n++ }

// Reserve admits a request against every rate limit, concurrency limit and
// budget of the key, its team and its org, or admits nothing and returns a
// RateLimited or BudgetExceeded *Error. Each counter checks and takes
// atomically, and a denial at any counter returns what the earlier ones took,
// so no limit is ever exceeded however many goroutines race. BatchCounters
// get all the calls at once.
func (g *Governor) Reserve(p *Principal, req Request) (*Reservation, error) {
	if p == nil || p.entry == nil {
		return nil, unauthenticated("unauthenticated", "unknown principal: authenticate first")
	}
	ki := req.Kind.index()
	if ki < 0 {
		g.metrics.forbidden[numKinds].Inc()
		return nil, &Error{Kind: Forbidden, Rule: "acl:" + ruleUnknownKind, Message: "not allowed"}
	}
	now := g.now()
	r := &Reservation{g: g, kind: req.Kind}
	cost := max(req.EstimatedCostNanoUSD, 0)
	tokens := max(req.EstimatedTokens, 0)
	e := p.entry
	var pl plan
	if !p.Admin {
		levels := [2]*limitSet{&e.limits, nil}
		n := 1
		if e.team != nil {
			levels[1] = &e.team.limits
			n = 2
		}
		for _, l := range levels[:n] {
			pl.addRates(l, ki, req.Name, tokens)
		}
		for _, l := range levels[:n] {
			if l.parallel != nil {
				pl.add(planStep{op: CounterOp{Kind: OpAcquire, Concurrency: l.parallel, Limit: l.maxParallel}, denial: l.parallelDenial})
			}
		}
	}
	pl.addHold(ScopeKey, p.KeyID, e.spend, e.budget, cost, now)
	if t := e.team; t != nil {
		pl.addHold(ScopeTeam, t.name, t.spend, t.budget, cost, now)
		if o := t.org; o != nil {
			pl.addHold(ScopeOrg, o.name, o.spend, o.budget, cost, now)
		}
	}
	var err *Error
	if bc, ok := g.counters.(BatchCounters); ok {
		err = r.reserveBatch(bc, &pl, now)
	} else {
		err = r.reserveEach(&pl, now)
	}
	if err != nil {
		switch err.Kind {
		case RateLimited:
			g.metrics.rateLimited[ki].Inc()
		case BudgetExceeded:
			g.metrics.budgetDenied[ki].Inc()
		}
		return nil, err
	}
	g.metrics.reservations[ki].Inc()
	g.metrics.inFlight.Inc()
	return r, nil
}

func (pl *plan) addRates(l *limitSet, ki int, name string, tokens int64) {
	if c := l.reqRate[ki]; c != nil {
		pl.addTake(c, l.reqLimit[ki], 1, false, l.reqDenial[ki])
	}
	if ki != 0 {
		return
	}
	if l.tokRate != nil {
		pl.addTake(l.tokRate, l.tpm, tokens, true, l.tokDenial)
	}
	m := l.modelLimit(name)
	if m == nil {
		return
	}
	if m.rpmRate != nil {
		pl.addTake(m.rpmRate, m.rpm, 1, false, l.modelDenial[0])
	}
	if m.tpmRate != nil {
		pl.addTake(m.tpmRate, m.tpm, tokens, true, l.modelDenial[1])
	}
}

func (pl *plan) addTake(c RateCounter, limit, units int64, tokens bool, denial rateDenial) {
	pl.add(planStep{op: CounterOp{Kind: OpTake, Rate: c, Limit: limit, Units: min(units, limit)}, tokens: tokens, denial: denial})
}

func (pl *plan) addHold(scope Scope, id string, c SpendCounter, b budgetRule, cost int64, now time.Time) {
	pl.add(planStep{op: CounterOp{Kind: OpHold, Spend: c, Period: b.period.start(now), Limit: b.limit, Units: cost},
		scope: scope, id: id, rule: b})
}

// reserveEach calls the counters one by one, returning what the earlier
// steps took when one denies.
func (r *Reservation) reserveEach(pl *plan, now time.Time) *Error {
	for i := range pl.steps[:pl.n] {
		s := &pl.steps[i]
		var err *Error
		switch s.op.Kind {
		case OpTake:
			err = r.bookTake(s, s.op.Rate.Take(s.op.Limit, s.op.Units, now))
		case OpAcquire:
			err = r.bookAcquire(s, s.op.Concurrency.Acquire(s.op.Limit))
		case OpHold:
			err = r.bookHold(s, s.op.Spend.Hold(s.op.Period, s.op.Limit, s.op.Units), now)
		}
		if err != nil {
			r.rollback(now)
			return err
		}
	}
	return nil
}

// reserveBatch hands every step to the counters in one call; they undo the
// admitted steps themselves when a later one denies.
func (r *Reservation) reserveBatch(bc BatchCounters, pl *plan, now time.Time) *Error {
	var ops [maxSteps]CounterOp
	var out [maxSteps]OpResult
	for i := range pl.steps[:pl.n] {
		ops[i] = pl.steps[i].op
	}
	ran := bc.ReserveBatch(ops[:pl.n], now, out[:pl.n])
	for i := range ran {
		if err := r.book(&pl.steps[i], &out[i], now); err != nil {
			return err
		}
	}
	return nil
}

// book records what step s took, or returns the *Error its denial means.
func (r *Reservation) book(s *planStep, res *OpResult, now time.Time) *Error {
	switch s.op.Kind {
	case OpTake:
		return r.bookTake(s, res.Rate)
	case OpAcquire:
		return r.bookAcquire(s, res.Acquire)
	}
	return r.bookHold(s, res.Budget, now)
}

func (r *Reservation) bookAcquire(s *planStep, res AcquireResult) *Error {
	if !res.Allowed {
		if res.Unavailable {
			return errUnavailable()
		}
		return &Error{Kind: RateLimited, RetryAfter: time.Second, Message: s.denial.msg, Rule: s.denial.rule}
	}
	if !res.Unavailable { // admitted by fail_mode open: no slot to release
		r.gauges[r.nGauges] = s.op.Concurrency
		r.nGauges++
	}
	return nil
}

func (r *Reservation) bookTake(s *planStep, res RateResult) *Error {
	if res.Unavailable {
		if !res.Allowed {
			return errUnavailable()
		}
		return nil // admitted by fail_mode open: nothing taken, nothing to give back
	}
	limit := s.op.Limit
	r.headers.note(s.tokens, limit, res)
	if !res.Allowed {
		e := &Error{Kind: RateLimited, RetryAfter: res.RetryAfter, Message: s.denial.msg, Rule: s.denial.rule}
		e.rate.note(s.tokens, limit, res)
		return e
	}
	r.rates[r.nRates] = rateTake{c: s.op.Rate, limit: limit, units: s.op.Units, tokens: s.tokens}
	r.nRates++
	return nil
}

func (r *Reservation) bookHold(s *planStep, res BudgetResult, now time.Time) *Error {
	cost := s.op.Units
	if res.Unavailable {
		if !res.Allowed {
			return errUnavailable()
		}
		// Admitted by fail_mode open: nothing is held, but the actual cost is
		// still settled, so spend is counted once the store answers again.
		cost = 0
	} else if !res.Allowed {
		r.g.alertExhausted(s.scope, s.id, s.op.Period, s.op.Limit, res.Spent)
		e := &Error{Kind: BudgetExceeded, Rule: "budget." + s.scope.String(), Message: s.scope.String() + " budget exceeded"}
		if left := s.op.Limit - res.Spent - res.Held; left > 0 {
			// Nothing is overspent yet: the call's own worst case is what
			// does not fit, and a smaller one (a lower max_tokens) may.
			e.Message = fmt.Sprintf("%s budget: this call may cost up to %s USD, more than the %s USD left",
				s.scope, FormatUSD(cost), FormatUSD(left))
		}
		if next := s.rule.period.next(now); !next.IsZero() {
			e.RetryAfter = next.Sub(now)
			e.Message += " for this " + periodNoun[s.rule.period] + "; it resets at " + next.Format(time.RFC3339)
		}
		return e
	}
	period := s.op.Period
	if res.Period > period { // the counter is already in the next period: the call counts there
		period = res.Period
	}
	r.budgets[r.nBudgets] = budgetTake{c: s.op.Spend, scope: s.scope, id: s.id, period: period, limit: s.op.Limit, held: cost}
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
	if bc, ok := g.counters.(BatchCounters); ok {
		r.settleBatch(bc, cost, tokens)
	} else {
		r.settleEach(cost, tokens)
	}
	ki := kindMetricIndex(r.kind)
	g.metrics.inFlight.Dec()
	g.metrics.spend[ki].Add(float64(cost))
	g.metrics.tokens[ki].Add(float64(tokens))
}

func (r *Reservation) settleEach(cost, tokens int64) {
	for _, c := range r.gauges[:r.nGauges] {
		c.Release()
	}
	var now time.Time
	for _, t := range r.rates[:r.nRates] {
		if t.tokens && t.units != tokens {
			if now.IsZero() {
				now = r.g.now()
			}
			t.c.Give(t.limit, t.units-tokens, now)
		}
	}
	for _, b := range r.budgets[:r.nBudgets] {
		before, after := b.c.Settle(b.period, b.held, cost)
		r.g.alertCrossings(b, before, after)
	}
}

func (r *Reservation) settleBatch(bc BatchCounters, cost, tokens int64) {
	var ops [maxSteps]CounterOp
	var out [maxSteps]OpResult
	n := 0
	for _, c := range r.gauges[:r.nGauges] {
		ops[n] = CounterOp{Kind: OpRelease, Concurrency: c}
		n++
	}
	for _, t := range r.rates[:r.nRates] {
		if t.tokens && t.units != tokens {
			ops[n] = CounterOp{Kind: OpGive, Rate: t.c, Limit: t.limit, Units: t.units - tokens}
			n++
		}
	}
	first := n
	for _, b := range r.budgets[:r.nBudgets] {
		ops[n] = CounterOp{Kind: OpSettle, Spend: b.c, Period: b.period, Units: b.held, Actual: cost}
		n++
	}
	bc.SettleBatch(ops[:n], r.g.now(), out[:n])
	for i, b := range r.budgets[:r.nBudgets] {
		r.g.alertCrossings(b, out[first+i].Before, out[first+i].After)
	}
}

var alertThresholds = [3]int64{50, 80, 100}

// alertCrossings logs and counts each soft-budget threshold this settle
// crossed. Counters serialise settles, so each crossing is seen exactly once per period.
func (g *Governor) alertCrossings(b budgetTake, before, after int64) {
	if b.limit <= 0 || after <= before {
		return
	}
	for _, pct := range alertThresholds {
		at := b.limit/100*pct + b.limit%100*pct/100
		if before < at && after >= at {
			if pct == 100 {
				g.alertExhausted(b.scope, b.id, b.period, b.limit, after)
				continue
			}
			g.budgetAlert(b.scope, b.id, pct, after, b.limit)
		}
	}
}

// budgetKey names one budget: its scope and the key id, team or org name.
type budgetKey struct {
	scope Scope
	id    string
}

// alertExhausted gives a budget's 100% alert. Holds refuse the call that
// would overspend, so settled spend rarely reaches the limit itself: the
// first refusal is what 100% means. Many calls are refused after it, so
// g.exhausted keeps the alert to once a period (on each replica).
func (g *Governor) alertExhausted(scope Scope, id string, period, limit, spent int64) {
	if limit <= 0 {
		return
	}
	k := budgetKey{scope, id}
	for {
		prev, loaded := g.exhausted.LoadOrStore(k, period)
		if !loaded {
			break
		}
		if prev.(int64) >= period {
			return
		}
		if g.exhausted.CompareAndSwap(k, prev, period) {
			break
		}
	}
	g.budgetAlert(scope, id, 100, spent, limit)
}

func (g *Governor) budgetAlert(scope Scope, id string, pct, spent, limit int64) {
	g.metrics.budgetAlerts.WithLabelValues(scope.String(), strconv.FormatInt(pct, 10)).Inc()
	g.log.Warn("budget alert", "scope", scope.String(), "id", id, "threshold_percent", pct,
		"spend_usd", FormatUSD(spent), "budget_usd", FormatUSD(limit))
}
