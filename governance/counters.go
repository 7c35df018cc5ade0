package governance

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Scope is the owner of a counter.
type Scope uint8

const (
	ScopeKey Scope = iota + 1
	ScopeTeam
	ScopeOrg
)

func (s Scope) String() string {
	switch s {
	case ScopeKey:
		return "key"
	case ScopeTeam:
		return "team"
	case ScopeOrg:
		return "org"
	}
	return "unknown"
}

// Metric is what a counter counts.
type Metric uint8

const (
	MetricRequests Metric = iota + 1
	MetricTokens
	MetricToolCalls
	MetricAgentCalls
	MetricParallel
	MetricSpend
	MetricStreams
)

// CounterKey names one counter: e.g. (key, key_3f…, requests, "") or, for a
// per_model limit, (key, key_3f…, tokens, "gpt-4o*").
type CounterKey struct {
	Scope   Scope
	Metric  Metric
	ID      string
	Pattern string
}

// RateResult is the state of a per-minute bucket after Take.
type RateResult struct {
	Allowed    bool
	Remaining  int64         // whole units left
	Reset      time.Duration // until the bucket is full again
	RetryAfter time.Duration // until the denied units would fit; 0 when allowed
	// Unavailable: a shared counter store could not be asked; Allowed then
	// carries its fail mode (open admits, closed denies) and nothing was taken.
	Unavailable bool
}

// BudgetResult is the state of a spend counter after Hold.
type BudgetResult struct {
	Allowed bool
	Spent   int64 // settled spend of the period, nano-USD
	Held    int64 // estimates of requests in flight, nano-USD
	// Period is the one the hold was checked and booked in: a later one than
	// asked when the counter is already in it (another replica's clock, or
	// this one's before a step back, started it). Settle the hold in it.
	Period int64
	// Unavailable: as in RateResult; nothing was held.
	Unavailable bool
}

// AcquireResult is the outcome of ConcurrencyCounter.Acquire.
type AcquireResult struct {
	Allowed bool
	// Unavailable: as in RateResult; no slot was taken, so none is released.
	Unavailable bool
}

// Counters hands out the rate-limit, concurrency and spend counters. The
// Governor resolves a counter once per key, team or per-model pattern when it
// builds its view of the config, so the request path never looks a counter up
// by name. The same CounterKey must always yield the same state, which is how
// counters survive config reloads. Every counter method is atomic, which is
// what makes limits exact under concurrency. MemoryCounters serves one
// process; a shared store (Redis) can implement the same interfaces for
// several replicas.
type Counters interface {
	RateCounter(k CounterKey) RateCounter
	ConcurrencyCounter(k CounterKey) ConcurrencyCounter
	SpendCounter(k CounterKey) SpendCounter
}

// RateCounter is a token bucket that holds up to limit units and refills
// limit units per minute.
type RateCounter interface {
	// Take removes units or, if they don't fit, removes nothing and denies.
	// units == 0 is allowed only while the bucket is not in debt.
	Take(limit, units int64, now time.Time) RateResult
	// Give returns units (negative units charge the bucket, possibly into
	// debt); the level never exceeds limit.
	Give(limit, units int64, now time.Time)
}

// ConcurrencyCounter counts requests in flight.
type ConcurrencyCounter interface {
	// Acquire takes a slot if fewer than max are in use.
	Acquire(max int64) AcquireResult
	// Release frees a slot taken by Acquire.
	Release()
	InFlight() int64
}

// SpendCounter is the spend of one key, team or org in its current period.
// period is the period's start in Unix seconds (0 = no period); a new period
// starts from zero spend.
type SpendCounter interface {
	// Hold reserves amount if spent+held+amount stays within limit (0 = no limit).
	Hold(period, limit, amount int64) BudgetResult
	// Settle drops a hold and adds the actual spend to the period it was held
	// in; it returns the period's spend before and after.
	Settle(period, held, actual int64) (before, after int64)
	// SetSpent sets a period's spend, e.g. rebuilt from storage at start-up.
	// A shared store that already counts the period keeps its own value: it
	// is the truth for every replica, while one replica's storage may not be.
	SetSpent(period, spent int64)
	// Spent is the settled spend of the period and the holds in flight.
	Spent(period int64) (spent, held int64)
}

const counterShards = 16

// MemoryCounters is the single-process Counters: a small per-counter mutex
// or atomic, so unrelated keys never contend.
type MemoryCounters struct {
	seed   maphash.Seed
	shards [counterShards]counterShard
}

type counterShard struct {
	mu      sync.Mutex
	rates   map[CounterKey]*rateBucket
	gauges  map[CounterKey]*gauge
	budgets map[CounterKey]*budgetBucket
}

// NewMemoryCounters returns empty in-memory counters.
func NewMemoryCounters() *MemoryCounters {
	m := &MemoryCounters{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].rates = make(map[CounterKey]*rateBucket)
		m.shards[i].gauges = make(map[CounterKey]*gauge)
		m.shards[i].budgets = make(map[CounterKey]*budgetBucket)
	}
	return m
}

func (m *MemoryCounters) shard(k CounterKey) *counterShard {
	h := maphash.String(m.seed, k.ID) ^ maphash.String(m.seed, k.Pattern) ^ uint64(k.Metric)<<8 ^ uint64(k.Scope)
	return &m.shards[h%counterShards]
}

func lookup[V any](mu *sync.Mutex, table map[CounterKey]*V, k CounterKey) *V {
	mu.Lock()
	defer mu.Unlock()
	v := table[k]
	if v == nil {
		v = new(V)
		table[k] = v
	}
	return v
}

// RateCounter implements Counters.
func (m *MemoryCounters) RateCounter(k CounterKey) RateCounter {
	s := m.shard(k)
	return lookup(&s.mu, s.rates, k)
}

// ConcurrencyCounter implements Counters.
func (m *MemoryCounters) ConcurrencyCounter(k CounterKey) ConcurrencyCounter {
	s := m.shard(k)
	return lookup(&s.mu, s.gauges, k)
}

// SpendCounter implements Counters.
func (m *MemoryCounters) SpendCounter(k CounterKey) SpendCounter {
	s := m.shard(k)
	return lookup(&s.mu, s.budgets, k)
}

type gauge struct{ n atomic.Int64 }

func (g *gauge) Acquire(max int64) AcquireResult {
	if g.n.Add(1) > max {
		g.n.Add(-1)
		return AcquireResult{}
	}
	return AcquireResult{Allowed: true}
}

func (g *gauge) Release()        { g.n.Add(-1) }
func (g *gauge) InFlight() int64 { return g.n.Load() }

// minuteMicros is the refill window: a bucket refills limit units per minute. Bucket time is kept in
// microseconds, not nanoseconds: at the largest limit (maxLimit) a bucket in debt spans 2 × limit × minute
// unit-ticks, which overflows int64 in nanoseconds (and wrapped to a long lock-out) but not in microseconds.
const minuteMicros = int64(time.Minute / time.Microsecond)

// rateBucket is a token bucket kept in exact integers: the level is in
// "unit-microseconds" (one unit = minuteMicros), and refills by limit per
// microsecond, so no rounding ever admits an extra request.
type rateBucket struct {
	mu    sync.Mutex
	level int64
	last  int64
	init  bool
}

func (b *rateBucket) refill(limit, now int64) {
	capacity := limit * minuteMicros
	if !b.init {
		b.level, b.last, b.init = capacity, now, true
		return
	}
	if elapsed := now - b.last; elapsed > 0 {
		// Two minutes refill any level, even from full debt, to capacity.
		if elapsed > minuteMicros*2 {
			elapsed = minuteMicros * 2
		}
		b.level += elapsed * limit
		b.last = now
	}
	if b.level > capacity {
		b.level = capacity
	}
	// A negative level is debt (actual tokens above the estimate); bounding it
	// at one full window stops one huge response from locking a key out for long.
	if b.level < -capacity {
		b.level = -capacity
	}
}

func (b *rateBucket) Take(limit, units int64, at time.Time) RateResult {
	now := at.UnixMicro()
	if units > limit {
		units = limit
	}
	need := units * minuteMicros
	b.mu.Lock()
	b.refill(limit, now)
	ok := b.level >= need && (units > 0 || b.level > 0)
	if ok {
		b.level -= need
	}
	level := b.level
	b.mu.Unlock()
	return BucketResult(limit, units, level, ok)
}

// BucketUnit is one unit in a token bucket's level: the level is kept in
// unit-microseconds so that refilling limit units per minute adds exactly
// limit per microsecond.
const BucketUnit = minuteMicros

// BucketResult derives what Take reports from a bucket's level (in
// BucketUnit) after the take, so every RateCounter reports alike.
func BucketResult(limit, units, level int64, allowed bool) RateResult {
	units = min(units, limit)
	r := RateResult{Allowed: allowed, Remaining: max(level, 0) / minuteMicros}
	r.Reset = time.Duration((limit*minuteMicros-level+limit-1)/limit) * time.Microsecond
	if !allowed {
		missing := units*minuteMicros - level
		if missing <= 0 {
			missing = 1
		}
		r.RetryAfter = time.Duration((missing+limit-1)/limit) * time.Microsecond
	}
	return r
}

func (b *rateBucket) Give(limit, units int64, at time.Time) {
	now := at.UnixMicro()
	if units > limit {
		units = limit
	}
	if units < -limit {
		units = -limit
	}
	b.mu.Lock()
	b.refill(limit, now)
	b.level += units * minuteMicros
	b.refill(limit, now) // clamp
	b.mu.Unlock()
}

type budgetBucket struct {
	mu     sync.Mutex
	period int64
	spent  int64
	held   int64
}

// roll starts a new period (or a changed budget period after a reload):
// spend resets, holds of requests still in flight stay.
func (b *budgetBucket) roll(period int64) {
	if period != b.period {
		b.period, b.spent = period, 0
	}
}

// Hold never takes the counter back to an earlier period: a clock that is
// behind (another replica's, near a period's end) would reset the new
// period's spend, and the calls after it could spend the budget again. Such
// a hold counts in the period the counter is in. A change of a budget's
// period goes back through SetSpent.
func (b *budgetBucket) Hold(period, limit, amount int64) BudgetResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	if period > b.period {
		b.roll(period)
	}
	used := b.spent + b.held
	if limit > 0 && (used >= limit || used+amount > limit) {
		return BudgetResult{Spent: b.spent, Held: b.held, Period: b.period}
	}
	b.held += amount
	return BudgetResult{Allowed: true, Spent: b.spent, Held: b.held, Period: b.period}
}

func (b *budgetBucket) Settle(period, held, actual int64) (int64, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= held
	before := b.spent
	// Spend of a request held in a period that has since ended belongs to that
	// period (where storage will also find it), not to the new one.
	if period == b.period {
		b.spent += actual
	}
	return before, b.spent
}

func (b *budgetBucket) SetSpent(period, spent int64) {
	b.mu.Lock()
	b.roll(period)
	b.spent = spent
	b.mu.Unlock()
}

func (b *budgetBucket) Spent(period int64) (int64, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.period != period {
		return 0, b.held
	}
	return b.spent, b.held
}

// BatchCounters is Counters whose calls each cost a round trip to a shared
// store. The Governor then hands over every step of a Reserve, and of a
// Settle, in one call, so a decision costs one round trip instead of one
// per counter. MemoryCounters does not implement it: in memory the steps
// are cheaper one by one than any batch.
type BatchCounters interface {
	Counters
	// ReserveBatch runs OpTake, OpAcquire and OpHold steps in order, all or
	// nothing: at the first step that denies it undoes the steps before it
	// and stops. out (len(ops) long) gets what each step reported, exactly
	// as the single call would have; it returns how many steps ran, the
	// last of them the denial when fewer than all were admitted. If the
	// store cannot be asked, every step reports Unavailable with the fail
	// mode in Allowed and nothing is taken.
	ReserveBatch(ops []CounterOp, now time.Time, out []OpResult) int
	// SettleBatch runs OpGive, OpRelease and OpSettle steps; out[i] gets
	// what an OpSettle step returned (zero when the store failed).
	SettleBatch(ops []CounterOp, now time.Time, out []OpResult)
}

// OpKind is the counter call a CounterOp stands for.
type OpKind uint8

const (
	OpTake    OpKind = iota + 1 // Rate.Take(Limit, Units, now)
	OpAcquire                   // Concurrency.Acquire(Limit)
	OpHold                      // Spend.Hold(Period, Limit, Units)
	OpGive                      // Rate.Give(Limit, Units, now)
	OpRelease                   // Concurrency.Release()
	OpSettle                    // Spend.Settle(Period, Units, Actual)
)

// CounterOp is one counter call of a batch, on a counter the same Counters
// handed out; only the counter its Kind names is set.
type CounterOp struct {
	Kind        OpKind
	Rate        RateCounter
	Concurrency ConcurrencyCounter
	Spend       SpendCounter
	Period      int64
	Limit       int64
	Units       int64 // rate units, or the amount held
	Actual      int64 // OpSettle: the actual spend
}

// OpResult is what one step of a batch reported.
type OpResult struct {
	Rate    RateResult    // OpTake
	Acquire AcquireResult // OpAcquire
	Budget  BudgetResult  // OpHold
	// OpSettle: the period's spend before and after, as Settle returns it.
	Before, After int64
}
