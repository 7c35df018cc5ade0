package governance

import (
	"sync/atomic"
	"time"
)

// StreamHold is one stream's place under the max_streams limits of its key
// and team. Release it exactly once when the stream ends (extra calls and a
// nil hold do nothing).
type StreamHold struct {
	n        int
	slots    [2]ConcurrencyCounter
	released atomic.Bool
}

// AcquireStream takes a place for one stream, of any layer, of the key
// rawKey under its key's and its team's limits.max_streams, or takes nothing
// and returns a RateLimited *Error (Unavailable when a shared counter store
// cannot be asked and fail_mode is closed) with the principal, for the audit.
// The places are counted apart from max_parallel: a stream may stay open for
// hours, and a platform team caps those apart from short calls. A key that
// does not authenticate gets no hold and no error: the handler refuses it in
// its protocol's shape (and counts it in the metrics). A nil hold with a nil
// error means no limit applies.
func (g *Governor) AcquireStream(rawKey string, kind Kind) (*StreamHold, *Principal, error) {
	p, _, authErr := g.identify(rawKey)
	if authErr != nil || p.Admin {
		return nil, nil, nil
	}
	e := p.entry
	levels := [2]*limitSet{&e.limits, nil}
	if e.team != nil {
		levels[1] = &e.team.limits
	}
	var h *StreamHold
	for _, l := range levels {
		if l == nil || l.streams == nil {
			continue
		}
		res := l.streams.Acquire(l.maxStreams)
		if !res.Allowed {
			h.Release()
			g.metrics.rateLimited[kindMetricIndex(kind)].Inc()
			if res.Unavailable {
				return nil, p, errUnavailable()
			}
			return nil, p, &Error{Kind: RateLimited, RetryAfter: time.Second, Message: l.streamDenial.msg, Rule: l.streamDenial.rule}
		}
		if res.Unavailable {
			continue // admitted by fail_mode open: no place to give back
		}
		if h == nil {
			h = &StreamHold{}
		}
		h.slots[h.n] = l.streams
		h.n++
	}
	return h, p, nil
}

// Release gives the stream's places back.
func (h *StreamHold) Release() {
	if h == nil || !h.released.CompareAndSwap(false, true) {
		return
	}
	for _, c := range h.slots[:h.n] {
		c.Release()
	}
}
