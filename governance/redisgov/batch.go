package redisgov

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-gw/switchboard/governance"
)

// One Reserve and one Settle each cost one round trip: the Governor hands
// over every counter step of a request (governance.BatchCounters) and one
// script runs them all, undoing the admitted steps when a later one denies.
// Each step is the same Lua function the single-counter scripts run, so a
// batch gives exactly the results of its steps one by one.
//
// A script may only touch the keys it is given, and Redis Cluster runs a
// script only if all of them hash to one slot: the counters of a key, its
// team and its org (and the lease set) have no common hash tag, so the
// batch, like the rest of this package, needs one Redis, not a Cluster. (A
// Cluster would need the lease set dropped from the scripts and every
// counter of a key's chain under one hash tag, e.g. its org's name.)

var errForeignCounter = errors.New("batch step on a counter another Counters handed out")

// batch is one batch script call being assembled: the counters' keys, the
// arguments, and the locks that keep repair out while the script runs.
type batch struct {
	keys   []string
	argv   []any
	locked []*sync.RWMutex
	gauges []*gauge
	spends []*spend
}

func (c *Counters) newBatch(n int, now time.Time) *batch {
	b := &batch{keys: make([]string, 1, n+1), argv: make([]any, 0, 5+n*opStride)}
	b.keys[0] = c.s.leaseKey
	b.argv = append(b.argv, c.s.replica, now.UnixMicro(), rateTTL.Milliseconds(), gaugeTTL.Milliseconds(), spendTTL.Milliseconds())
	return b
}

// rlock read-locks mu once per batch: a second read lock of the same mutex
// would deadlock behind a waiting repair. Locks of different counters need
// no order: the only writer, repair, holds one lock at a time.
func (b *batch) rlock(mu *sync.RWMutex) {
	for _, l := range b.locked {
		if l == mu {
			return
		}
	}
	mu.RLock()
	b.locked = append(b.locked, mu)
}

func (b *batch) unlock() {
	for _, l := range b.locked {
		l.RUnlock()
	}
}

// add appends one step; it returns false for a counter this package did not
// hand out.
func (b *batch) add(op governance.CounterOp) bool {
	var name string
	var args [opStride - 1]int64
	switch op.Kind {
	case governance.OpTake, governance.OpGive:
		r, ok := op.Rate.(*rate)
		if !ok {
			return false
		}
		name = "take"
		if op.Kind == governance.OpGive {
			name = "give"
			args[1] = max(min(op.Units, op.Limit), -op.Limit)
		} else {
			args[1] = min(op.Units, op.Limit)
		}
		args[0] = op.Limit
		b.keys = append(b.keys, r.key)
	case governance.OpAcquire, governance.OpRelease:
		g, ok := op.Concurrency.(*gauge)
		if !ok {
			return false
		}
		name = "acquire"
		if op.Kind == governance.OpRelease {
			name = "release"
		}
		args[0] = op.Limit
		b.rlock(&g.mu)
		b.gauges = append(b.gauges, g)
		b.keys = append(b.keys, g.key)
	case governance.OpHold, governance.OpSettle:
		sp, ok := op.Spend.(*spend)
		if !ok {
			return false
		}
		name = "hold"
		args[0] = op.Period
		args[1], args[2] = limbs(op.Limit)
		args[3], args[4] = limbs(op.Units)
		if op.Kind == governance.OpSettle {
			name = "settle"
			args[1], args[2] = limbs(op.Units)
			args[3], args[4] = limbs(op.Actual)
		}
		b.rlock(&sp.mu)
		b.spends = append(b.spends, sp)
		b.keys = append(b.keys, sp.key)
	default:
		return false
	}
	b.argv = append(b.argv, name)
	for _, a := range args {
		b.argv = append(b.argv, a)
	}
	return true
}

// fail marks every counter of the batch for repair: a failed script may or
// may not have run.
func (b *batch) fail() {
	for _, g := range b.gauges {
		g.dirty.Store(true)
	}
	for _, sp := range b.spends {
		sp.dirty.Store(true)
	}
}

func (c *Counters) run(b *batch, reserve bool) ([]int64, error) {
	ctx, cancel := c.s.opContext()
	defer cancel()
	script := settleScript
	if reserve {
		script = reserveScript
	}
	return script.Run(ctx, c.s.client, b.keys, b.argv...).Int64Slice()
}

// reserveStride is how many numbers reserveScript returns per step.
const reserveStride = 6

// ReserveBatch implements governance.BatchCounters.
func (c *Counters) ReserveBatch(ops []governance.CounterOp, now time.Time, out []governance.OpResult) int {
	b := c.newBatch(len(ops), now)
	defer b.unlock()
	var err error
	for _, op := range ops {
		if op.Kind != governance.OpTake && op.Kind != governance.OpAcquire && op.Kind != governance.OpHold || !b.add(op) {
			err = errForeignCounter
			break
		}
	}
	var res []int64
	if err == nil {
		res, err = c.run(b, true)
	}
	if err == nil && (len(res) == 0 || len(res)%reserveStride != 0 || len(res) > reserveStride*len(ops)) {
		err = errors.New("unexpected reply of " + strconv.Itoa(len(res)) + " numbers")
	}
	if err != nil {
		b.fail()
		c.s.fail("reserve", err)
		for i := range ops {
			out[i] = governance.OpResult{
				Rate:    governance.RateResult{Allowed: c.s.failOpen, Unavailable: true},
				Acquire: governance.AcquireResult{Allowed: c.s.failOpen, Unavailable: true},
				Budget:  governance.BudgetResult{Allowed: c.s.failOpen, Unavailable: true},
			}
		}
		return len(ops)
	}
	ran := len(res) / reserveStride
	admitted := res[len(res)-reserveStride] == 1
	for i, op := range ops[:ran] {
		r := res[i*reserveStride : (i+1)*reserveStride]
		ok := r[0] == 1
		switch op.Kind {
		case governance.OpTake:
			out[i].Rate = governance.BucketResult(op.Limit, min(op.Units, op.Limit), r[1], ok)
		case governance.OpAcquire:
			out[i].Acquire = governance.AcquireResult{Allowed: ok}
			if admitted {
				op.Concurrency.(*gauge).mine.Add(1)
			}
		case governance.OpHold:
			out[i].Budget = governance.BudgetResult{Allowed: ok, Spent: join(r[1], r[2]), Held: join(r[3], r[4]), Period: r[5]}
			if admitted {
				op.Spend.(*spend).held.Add(op.Units)
			}
		}
	}
	return ran
}

// SettleBatch implements governance.BatchCounters.
func (c *Counters) SettleBatch(ops []governance.CounterOp, now time.Time, out []governance.OpResult) {
	b := c.newBatch(len(ops), now)
	defer b.unlock()
	var err error
	for _, op := range ops {
		if op.Kind != governance.OpGive && op.Kind != governance.OpRelease && op.Kind != governance.OpSettle || !b.add(op) {
			err = errForeignCounter
			break
		}
	}
	if err != nil {
		b.fail()
		c.s.fail("settle", err)
		return
	}
	// The books drop the slots and holds first, as the single calls do, so
	// a failed script is repaired to the state after it.
	for _, op := range ops {
		switch op.Kind {
		case governance.OpRelease:
			op.Concurrency.(*gauge).mine.Add(-1)
		case governance.OpSettle:
			op.Spend.(*spend).held.Add(-op.Units)
		}
	}
	res, err := c.run(b, false)
	if err == nil && len(res) != 4*len(ops) {
		err = errors.New("unexpected reply of " + strconv.Itoa(len(res)) + " numbers")
	}
	if err != nil {
		// Not retried: the script may have run, and spend must not count
		// twice. Slots and holds are repaired from the books; spend is lost.
		b.fail()
		c.s.fail("settle", err)
		return
	}
	for i, op := range ops {
		if op.Kind == governance.OpSettle {
			r := res[i*4 : i*4+4]
			out[i].Before, out[i].After = join(r[0], r[1]), join(r[2], r[3])
		}
	}
}

var _ governance.BatchCounters = (*Counters)(nil)
