package redisgov

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Owners remembers which key owns each A2A task and context id, shared by
// every replica (it satisfies a2a.OwnerStore). Entries expire ttl after
// their creation, like the in-memory store; there is no count bound, Redis
// memory is bounded by the TTL.
type Owners struct {
	s   *Shared
	ttl time.Duration
}

// Owners returns the shared owner store; ttl <= 0 means one hour.
func (s *Shared) Owners(ttl time.Duration) *Owners {
	if ttl <= 0 {
		ttl = time.Hour
	}
	return &Owners{s: s, ttl: ttl}
}

func (o *Owners) key(agent, kind, id string) string {
	return o.s.prefix + "a2a:" + agent + ":" + kind + ":" + id
}

func (o *Owners) context() (context.Context, context.CancelFunc) {
	// Ownership is checked once per A2A call, not per counter: allow the
	// store a little longer than a counter call before failing closed.
	return context.WithTimeout(context.Background(), max(o.s.timeout, 250*time.Millisecond))
}

// Claim records keyID as the owner unless the id has a live owner, and
// reports whether keyID owns it afterwards. Redis errors answer false: an
// unprovable owner is refused, never granted.
func (o *Owners) Claim(agent, kind, id, keyID string) bool {
	ctx, cancel := o.context()
	defer cancel()
	owner, err := claimScript.Run(ctx, o.s.client, []string{o.key(agent, kind, id)}, keyID, o.ttl.Milliseconds()).Text()
	if err != nil {
		o.s.fail("a2a_claim", err)
		return false
	}
	return owner == keyID
}

// Owner returns the live owner of the id, if any.
func (o *Owners) Owner(agent, kind, id string) (string, bool) {
	ctx, cancel := o.context()
	defer cancel()
	owner, err := o.s.client.Get(ctx, o.key(agent, kind, id)).Result()
	if err != nil {
		if !errors.Is(err, redis.Nil) {
			o.s.fail("a2a_owner", err)
		}
		return "", false
	}
	return owner, true
}
