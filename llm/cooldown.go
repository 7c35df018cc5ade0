package llm

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// breaker is a deployment's circuit breaker: allowedFails consecutive
// failures open it for cooldown; after that one probe request is let through
// (half-open) and its outcome closes or re-opens the breaker. A 429 that
// says when to come back pauses the deployment until then instead: it is
// busy, not broken, and a retry before that time would only be refused.
type breaker struct {
	mu           sync.Mutex
	fails        int
	openUntil    time.Time
	probing      bool
	limitedUntil time.Time
}

type breakerState int

const (
	breakerClosed breakerState = iota
	breakerOpen
	breakerHalfOpen
	breakerLimited
)

func (b *breaker) state(now time.Time) breakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stateLocked(now)
}

// available reports whether the deployment may be picked now (a half-open
// breaker still lets only its probe through, see acquire).
func (b *breaker) available(now time.Time) bool {
	s := b.state(now)
	return s != breakerOpen && s != breakerLimited
}

func (b *breaker) stateLocked(now time.Time) breakerState {
	switch {
	case now.Before(b.limitedUntil):
		return breakerLimited
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

// rateLimited pauses the deployment for the time its 429 asked. A probe
// that got it ends without a verdict: the breaker stays half-open.
func (b *breaker) rateLimited(now time.Time, pause time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if until := now.Add(pause); until.After(b.limitedUntil) {
		b.limitedUntil = until
	}
	b.probing = false
}

// release gives back a half-open probe whose request never reached the
// upstream (it could not be translated), so the next request can probe.
func (b *breaker) release() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// unavailable is the error of a call that finds no deployment of g to
// try: a 429 when every deployment it could not use is paused by its own
// 429, a 503 otherwise. Retry-After is the soonest any of them is back.
func unavailable(g *group, now time.Time) *apiError {
	var cooling, limited time.Duration
	soonest := func(cur time.Duration, until time.Time) time.Duration {
		if l := until.Sub(now); l > 0 && (cur == 0 || l < cur) {
			return l
		}
		return cur
	}
	for _, d := range g.deployments {
		b := &d.st.breaker
		b.mu.Lock()
		cooling = soonest(cooling, b.openUntil)
		limited = soonest(limited, b.limitedUntil)
		b.mu.Unlock()
	}
	if limited > 0 && cooling == 0 {
		return &apiError{status: http.StatusTooManyRequests, typ: "rate_limit_error", code: "upstream_rate_limited",
			message: fmt.Sprintf("every deployment of model %q is rate limited by its provider", g.name), retryAfter: limited}
	}
	retryAfter := cooling
	if limited > 0 && limited < cooling {
		retryAfter = limited
	}
	return &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "no_healthy_deployment",
		message:    fmt.Sprintf("no deployment of model %q is available (all cooling down or at capacity)", g.name),
		retryAfter: retryAfter}
}
