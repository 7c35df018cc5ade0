package redisgov

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-gw/switchboard/governance"
)

const (
	// rateTTL lets an idle bucket expire: after two minutes idle any bucket
	// is full again, which is exactly what a missing bucket means.
	rateTTL = 2*time.Minute + 10*time.Second
	// gaugeTTL only collects counters of keys that are gone.
	gaugeTTL = 24 * time.Hour
	// spendTTL outlives the longest budget period (a 31-day month) after the
	// counter's last write; spend without a period never expires.
	spendTTL = 35 * 24 * time.Hour
	// nanoLimb splits nano-USD into limbs Lua can add exactly.
	nanoLimb = 1_000_000_000
)

// Counters implements governance.Counters on Redis. Counter handles are
// cached (the Governor resolves each once per config build); their state
// lives only in Redis, except this replica's own in-flight slots and holds,
// which it also books locally so it can repair Redis after a failed call.
type Counters struct {
	s *Shared

	mu     sync.Mutex
	gauges map[string]*gauge
	spends map[string]*spend
}

func newCounters(s *Shared) *Counters {
	return &Counters{s: s, gauges: map[string]*gauge{}, spends: map[string]*spend{}}
}

func (c *Counters) key(kind string, k governance.CounterKey) string {
	var b strings.Builder
	b.WriteString(c.s.prefix)
	b.WriteString(kind)
	b.WriteByte(':')
	b.WriteString(k.Scope.String())
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(int(k.Metric)))
	b.WriteByte(':')
	b.WriteString(k.ID)
	if k.Pattern != "" {
		b.WriteByte(':')
		b.WriteString(k.Pattern)
	}
	return b.String()
}

// RateCounter implements governance.Counters.
func (c *Counters) RateCounter(k governance.CounterKey) governance.RateCounter {
	return &rate{s: c.s, key: c.key("rate", k)}
}

// ConcurrencyCounter implements governance.Counters.
func (c *Counters) ConcurrencyCounter(k governance.CounterKey) governance.ConcurrencyCounter {
	key := c.key("gauge", k)
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gauges[key]
	if g == nil {
		g = &gauge{s: c.s, key: key}
		c.gauges[key] = g
	}
	return g
}

// SpendCounter implements governance.Counters.
func (c *Counters) SpendCounter(k governance.CounterKey) governance.SpendCounter {
	key := c.key("spend", k)
	c.mu.Lock()
	defer c.mu.Unlock()
	sp := c.spends[key]
	if sp == nil {
		sp = &spend{s: c.s, key: key}
		c.spends[key] = sp
	}
	return sp
}

// repair rewrites this replica's slots and holds in Redis from its own
// books wherever a call failed (it may or may not have been applied) or the
// lease lapsed (other replicas may have dropped them).
func (c *Counters) repair(ctx context.Context, all bool) {
	c.mu.Lock()
	gauges := make([]*gauge, 0, len(c.gauges))
	for _, g := range c.gauges {
		gauges = append(gauges, g)
	}
	spends := make([]*spend, 0, len(c.spends))
	for _, sp := range c.spends {
		spends = append(spends, sp)
	}
	c.mu.Unlock()
	for _, g := range gauges {
		g.repair(ctx, all)
	}
	for _, sp := range spends {
		sp.repair(ctx, all)
	}
}

type rate struct {
	s   *Shared
	key string
}

func (r *rate) run(op string, limit, units int64, now time.Time) ([]int64, error) {
	ctx, cancel := r.s.opContext()
	defer cancel()
	return rateScript.Run(ctx, r.s.client, []string{r.key}, op, limit, units, now.UnixMicro(), rateTTL.Milliseconds()).Int64Slice()
}

func (r *rate) Take(limit, units int64, now time.Time) governance.RateResult {
	units = min(units, limit)
	res, err := r.run("take", limit, units, now)
	if err != nil || len(res) != 2 {
		r.s.fail("rate_take", err)
		return governance.RateResult{Allowed: r.s.failOpen, Unavailable: true}
	}
	return governance.BucketResult(limit, units, res[1], res[0] == 1)
}

func (r *rate) Give(limit, units int64, now time.Time) {
	units = max(min(units, limit), -limit)
	if _, err := r.run("give", limit, units, now); err != nil {
		r.s.fail("rate_give", err)
	}
}

// gauge is one concurrency counter; mine books this replica's slots.
type gauge struct {
	s   *Shared
	key string

	// mu: calls share it, repair takes it alone, so a repair writes a count
	// no call is changing.
	mu    sync.RWMutex
	mine  atomic.Int64
	dirty atomic.Bool
}

func (g *gauge) run(ctx context.Context, op string, arg int64) (int64, error) {
	return gaugeScript.Run(ctx, g.s.client, []string{g.key, g.s.leaseKey}, g.s.replica, op, arg, gaugeTTL.Milliseconds()).Int64()
}

func (g *gauge) Acquire(max int64) governance.AcquireResult {
	g.mu.RLock()
	defer g.mu.RUnlock()
	ctx, cancel := g.s.opContext()
	defer cancel()
	ok, err := g.run(ctx, "acquire", max)
	if err != nil {
		g.dirty.Store(true)
		g.s.fail("concurrency_acquire", err)
		return governance.AcquireResult{Allowed: g.s.failOpen, Unavailable: true}
	}
	if ok == 1 {
		g.mine.Add(1)
	}
	return governance.AcquireResult{Allowed: ok == 1}
}

func (g *gauge) Release() {
	g.mu.RLock()
	defer g.mu.RUnlock()
	g.mine.Add(-1)
	ctx, cancel := g.s.opContext()
	defer cancel()
	if _, err := g.run(ctx, "release", 0); err != nil {
		g.dirty.Store(true)
		g.s.fail("concurrency_release", err)
	}
}

func (g *gauge) InFlight() int64 {
	ctx, cancel := g.s.opContext()
	defer cancel()
	n, err := g.run(ctx, "count", 0)
	if err != nil {
		g.s.fail("concurrency_count", err)
		return g.mine.Load()
	}
	return n
}

func (g *gauge) repair(ctx context.Context, all bool) {
	if !all && !g.dirty.Load() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, err := g.run(ctx, "set", g.mine.Load()); err != nil {
		g.s.fail("concurrency_repair", err)
		return
	}
	g.dirty.Store(false)
}

// spend is one spend counter; held books this replica's holds.
type spend struct {
	s   *Shared
	key string

	mu    sync.RWMutex // as in gauge
	held  atomic.Int64
	dirty atomic.Bool
}

func limbs(n int64) (hi, lo int64) {
	hi, lo = n/nanoLimb, n%nanoLimb
	if lo < 0 {
		hi, lo = hi-1, lo+nanoLimb
	}
	return hi, lo
}

func join(hi, lo int64) int64 { return hi*nanoLimb + lo }

func spendTTLFor(op string, period int64) int64 {
	if period == 0 && op != "sethold" {
		return 0
	}
	return spendTTL.Milliseconds()
}

func (sp *spend) run(ctx context.Context, op string, period int64, args ...int64) ([]int64, error) {
	argv := make([]any, 0, 4+len(args))
	argv = append(argv, sp.s.replica, op, period)
	for _, a := range args {
		argv = append(argv, a)
	}
	argv = append(argv, spendTTLFor(op, period))
	return spendScript.Run(ctx, sp.s.client, []string{sp.key, sp.s.leaseKey}, argv...).Int64Slice()
}

func (sp *spend) Hold(period, limit, amount int64) governance.BudgetResult {
	sp.mu.RLock()
	defer sp.mu.RUnlock()
	ctx, cancel := sp.s.opContext()
	defer cancel()
	lh, ll := limbs(limit)
	ah, al := limbs(amount)
	res, err := sp.run(ctx, "hold", period, lh, ll, ah, al)
	if err != nil || len(res) != 6 {
		sp.dirty.Store(true)
		sp.s.fail("budget_hold", err)
		return governance.BudgetResult{Allowed: sp.s.failOpen, Unavailable: true}
	}
	if res[0] == 1 {
		sp.held.Add(amount)
	}
	return governance.BudgetResult{Allowed: res[0] == 1, Spent: join(res[1], res[2]), Held: join(res[3], res[4]), Period: res[5]}
}

func (sp *spend) Settle(period, held, actual int64) (before, after int64) {
	sp.mu.RLock()
	defer sp.mu.RUnlock()
	sp.held.Add(-held)
	ctx, cancel := sp.s.opContext()
	defer cancel()
	hh, hl := limbs(held)
	ah, al := limbs(actual)
	res, err := sp.run(ctx, "settle", period, hh, hl, ah, al)
	if err != nil || len(res) != 4 {
		// Not retried: a timed-out script may have run, and spend must not
		// count twice. The hold is repaired from our books; the spend is lost.
		sp.dirty.Store(true)
		sp.s.fail("budget_settle", err)
		return 0, 0
	}
	return join(res[0], res[1]), join(res[2], res[3])
}

func (sp *spend) SetSpent(period, spent int64) {
	ctx, cancel := context.WithTimeout(context.Background(), max(sp.s.timeout, time.Second))
	defer cancel()
	h, l := limbs(spent)
	if _, err := sp.run(ctx, "seed", period, h, l); err != nil {
		sp.s.fail("budget_seed", err)
	}
}

func (sp *spend) Spent(period int64) (spent, held int64) {
	ctx, cancel := sp.s.opContext()
	defer cancel()
	res, err := sp.run(ctx, "spent", period)
	if err != nil || len(res) != 4 {
		sp.s.fail("budget_spent", err)
		return 0, sp.held.Load()
	}
	return join(res[0], res[1]), join(res[2], res[3])
}

func (sp *spend) repair(ctx context.Context, all bool) {
	if !all && !sp.dirty.Load() {
		return
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	h, l := limbs(sp.held.Load())
	if _, err := sp.run(ctx, "sethold", 0, h, l); err != nil {
		sp.s.fail("budget_repair", err)
		return
	}
	sp.dirty.Store(false)
}

var _ governance.Counters = (*Counters)(nil)
