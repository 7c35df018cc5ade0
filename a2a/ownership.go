package a2a

import (
	"sync"
	"time"
)

// ownerKind separates task ids from context ids in one map.
type ownerKind uint8

const (
	ownedTask ownerKind = iota + 1
	ownedContext
)

type ownedID struct {
	agent string
	kind  ownerKind
	id    string
}

type ownerEntry struct {
	keyID   string
	expires time.Time
}

// ownership remembers which key created each task (and context) of each
// agent. It is bounded: entries expire after ttl, and past max entries the
// oldest go first. Because every entry lives the same ttl, insertion order
// is expiry order, so one FIFO serves both evictions.
type ownership struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[ownedID]ownerEntry
	order   []ownedID // FIFO of insertions; order[head:] is live
	head    int
}

func newOwnership(ttl time.Duration, maxEntries int) *ownership {
	if ttl <= 0 {
		ttl = defaultTaskTTL
	}
	if maxEntries <= 0 {
		maxEntries = defaultMaxTasks
	}
	return &ownership{ttl: ttl, max: maxEntries, now: time.Now, entries: make(map[ownedID]ownerEntry)}
}

// claim records keyID as the owner unless the id already has a live owner;
// it reports whether keyID owns the id afterwards. The first claim wins, so
// a second key cannot take over a task by naming it.
func (o *ownership) claim(id ownedID, keyID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	o.expireLocked(now)
	if e, ok := o.entries[id]; ok && now.Before(e.expires) {
		return e.keyID == keyID
	}
	for len(o.entries) >= o.max {
		o.evictOldestLocked()
	}
	o.entries[id] = ownerEntry{keyID: keyID, expires: now.Add(o.ttl)}
	o.order = append(o.order, id)
	return true
}

// owner returns the live owner of id, if any.
func (o *ownership) owner(id ownedID) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.entries[id]
	if !ok || !o.now().Before(e.expires) {
		return "", false
	}
	return e.keyID, true
}

// owns reports whether keyID is the live owner of id.
func (o *ownership) owns(id ownedID, keyID string) bool {
	owner, ok := o.owner(id)
	return ok && owner == keyID
}

func (o *ownership) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.entries)
}

func (o *ownership) expireLocked(now time.Time) {
	for o.head < len(o.order) {
		id := o.order[o.head]
		e, ok := o.entries[id]
		if ok && now.Before(e.expires) {
			break
		}
		o.popLocked()
	}
}

func (o *ownership) evictOldestLocked() {
	if o.head < len(o.order) {
		o.popLocked()
	}
}

func (o *ownership) popLocked() {
	id := o.order[o.head]
	o.order[o.head] = ownedID{}
	o.head++
	delete(o.entries, id)
	// Compact once the dead prefix dominates, so the slice stays O(live).
	if o.head > 1024 && o.head*2 > len(o.order) {
		o.order = append(o.order[:0:0], o.order[o.head:]...)
		o.head = 0
	}
}
