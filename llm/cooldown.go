package llm

import (
	"sync"
	"time"
)

// breaker is a deployment's circuit breaker: allowedFails consecutive
// failures open it for cooldown; after that one probe request is let through
// (half-open) and its outcome closes or re-opens the breaker.
type breaker struct {
	mu        sync.Mutex
	fails     int
	openUntil time.Time
	probing   bool
}

type breakerState int

const (
	breakerClosed breakerState = iota
	breakerOpen
	breakerHalfOpen
)

func (b *breaker) state(now time.Time) breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stateLocked(now)
}

func (b *breaker) stateLocked(now time.Time) breakerState {
	switch {
	case b.openUntil.IsZero():
		return breakerClosed
	case now.Before(b.openUntil):
		return breakerOpen
	}
	return breakerHalfOpen
}

// acquire reports whether a request may go to the deployment now; in the
// half-open state only the first caller gets the probe.
func (b *breaker) acquire(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.stateLocked(now) {
	case breakerClosed:
		return true
	case breakerHalfOpen:
		if b.probing {
			return false
		}
		b.probing = true
		return true
	}
	return false
}

func (b *breaker) success() {
	b.mu.Lock()
	b.fails, b.openUntil, b.probing = 0, time.Time{}, false
	b.mu.Unlock()
}

// failure counts one failed call and reports whether it opened the breaker.
func (b *breaker) failure(now time.Time, allowedFails int, cooldown time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fails++
	if b.probing || b.fails >= allowedFails {
		b.openUntil, b.probing = now.Add(cooldown), false
		return true
	}
	return false
}

// release gives back a half-open probe whose request never reached the
// upstream (it could not be translated), so the next request can probe.
func (b *breaker) release() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// cooldownLeft is how long until the first deployment of g leaves cooldown
// (0 when none is cooling down), for Retry-After.
func cooldownLeft(g *group, now time.Time) time.Duration {
	var left time.Duration
	for _, d := range g.deployments {
		d.st.breaker.mu.Lock()
		until := d.st.breaker.openUntil
		d.st.breaker.mu.Unlock()
		if l := until.Sub(now); l > 0 && (left == 0 || l < left) {
			left = l
		}
	}
	return left
}
