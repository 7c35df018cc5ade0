package llm

import (
	"math/rand/v2"
	"time"
)

// pick chooses a deployment of g for one attempt and takes one of its
// in-flight slots (the caller gives it back when the attempt ends).
// Deployments in tried are skipped while untried healthy ones remain, so
// retries spread over the group; a group of one deployment retries that one.
// It returns nil when no deployment is healthy and free.
func pick(g *group, tried []*deployment, now time.Time) *deployment {
	cands := make([]*deployment, 0, len(g.deployments))
	for pass := 0; pass < 2 && len(cands) == 0; pass++ {
		for _, d := range g.deployments {
			if pass == 0 && contains(tried, d) {
				continue
			}
			if !d.st.breaker.available(now) {
				continue
			}
			if d.maxParallel > 0 && d.st.inFlight.Load() >= int64(d.maxParallel) {
				continue
			}
			cands = append(cands, d)
		}
	}
	for len(cands) > 0 {
		d := choose(g.strategy, cands)
		// The slot is taken before the breaker so a full deployment never
		// holds the half-open probe; max_parallel stays exact under races.
		n := d.st.inFlight.Add(1)
		if d.maxParallel > 0 && n > int64(d.maxParallel) {
			d.st.inFlight.Add(-1)
			cands = remove(cands, d)
			continue
		}
		if d.st.breaker.acquire(now) {
			return d
		}
		// Another request holds the half-open probe.
		d.st.inFlight.Add(-1)
		cands = remove(cands, d)
	}
	return nil
}

func choose(s Strategy, cands []*deployment) *deployment {
	if len(cands) == 1 {
		return cands[0]
	}
	var score func(*deployment) int64
	switch s {
	case StrategyLeastBusy:
		score = func(d *deployment) int64 { return d.st.inFlight.Load() }
	case StrategyLowestLatency:
		// Untried deployments score 0 and so get measured first.
		score = func(d *deployment) int64 { return d.st.latency.Load() }
	case StrategyLowestCost:
		score = func(d *deployment) int64 { return d.price.Input + d.price.Output }
	default:
		return weighted(cands)
	}
	best := make([]*deployment, 0, len(cands))
	var bestScore int64
	for _, d := range cands {
		s := score(d)
		switch {
		case len(best) == 0 || s < bestScore:
			best, bestScore = append(best[:0], d), s
		case s == bestScore:
			best = append(best, d)
		}
	}
	return weighted(best)
}

// weighted picks at random in proportion to weight.
func weighted(cands []*deployment) *deployment {
	total := 0
	for _, d := range cands {
		total += d.weight
	}
	n := rand.IntN(total)
	for _, d := range cands {
		if n < d.weight {
			return d
		}
		n -= d.weight
	}
	return cands[len(cands)-1]
}

func contains(ds []*deployment, d *deployment) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

func remove(ds []*deployment, d *deployment) []*deployment {
	out := ds[:0]
	for _, x := range ds {
		if x != d {
			out = append(out, x)
		}
	}
	return out
}
