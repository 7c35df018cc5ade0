package governance

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// RecordLookup is a Store that other replicas write too. The Governor keeps
// an index record (RecordKindKeyHash: HMAC hex → key id) beside each runtime
// key, so a replica that does not know a key yet can ask the store before it
// refuses the key, instead of waiting for the change notification.
type RecordLookup interface {
	Store
	// GetRecord returns one record's data; ok is false when there is none.
	GetRecord(ctx context.Context, kind, id string) (data []byte, ok bool, err error)
}

// RecordKindKeyHash indexes runtime keys by their HMAC (hex) in a shared store.
const RecordKindKeyHash = "governance.key_hash"

const (
	// missTTL is how long an unknown key's hash is remembered as unknown, so
	// repeating a wrong key costs one store lookup per missTTL.
	missTTL = time.Second
	// maxMisses bounds the miss cache; when full it is cleared.
	maxMisses = 16384
	// lookupsPerSecond bounds store lookups of unknown keys per replica, so a
	// flood of distinct wrong keys cannot hammer the store. Past it, unknown
	// keys are refused until the change notification (milliseconds) arrives.
	lookupsPerSecond = 200
	// lookupTimeout bounds the lookup and the reload it may trigger.
	lookupTimeout = 500 * time.Millisecond
)

// missCache remembers recent authentication misses and rate-limits lookups.
type missCache struct {
	mu     sync.Mutex
	misses map[[32]byte]time.Time
	window atomic.Int64 // unix second of the current lookup window
	used   atomic.Int64 // lookups in that window
}

func (m *missCache) recent(h [32]byte, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.misses[h]
	return ok && now.Before(t)
}

func (m *missCache) note(h [32]byte, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.misses == nil || len(m.misses) >= maxMisses {
		m.misses = make(map[[32]byte]time.Time)
	}
	m.misses[h] = now.Add(missTTL)
}

func (m *missCache) clear() {
	m.mu.Lock()
	m.misses = nil
	m.mu.Unlock()
}

// allow spends one lookup of this second's allowance.
func (m *missCache) allow(now time.Time) bool {
	sec := now.Unix()
	if w := m.window.Load(); w != sec && m.window.CompareAndSwap(w, sec) {
		m.used.Store(0)
	}
	return m.used.Add(1) <= lookupsPerSecond
}

// indexKeyHash writes the hash → id index record when the store is shared.
func (g *Governor) indexKeyHash(ctx context.Context, k keyRecord) error {
	if _, ok := g.store.(RecordLookup); !ok || k.Hash == "" {
		return nil
	}
	return g.store.PutRecord(ctx, RecordKindKeyHash, k.Hash, []byte(k.ID))
}

// ReloadRecords replaces the runtime keys and teams with the store's, e.g.
// when another replica changed them. On error the current ones stay.
func (g *Governor) ReloadRecords(ctx context.Context) error {
	if g.store == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// Listing under g.mu keeps a concurrent admin change of this replica from
	// being overwritten by an older listing.
	keys, err := g.store.ListRecords(ctx, RecordKindKey)
	if err != nil {
		return errors.Join(errors.New("governance: reload runtime keys"), err)
	}
	teams, err := g.store.ListRecords(ctx, RecordKindTeam)
	if err != nil {
		return errors.Join(errors.New("governance: reload runtime teams"), err)
	}
	g.setRecords(keys, teams)
	g.publish(g.build(noWarn))
	g.misses.clear()
	return nil
}

// lookupMissing asks a shared store for a key this replica does not know;
// it returns the key's entry after reloading, or nil.
func (g *Governor) lookupMissing(h [32]byte) *keyEntry {
	lookup, ok := g.store.(RecordLookup)
	if !ok {
		return nil
	}
	now := g.now()
	if g.misses.recent(h, now) || !g.misses.allow(now) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	defer cancel()
	_, found, err := lookup.GetRecord(ctx, RecordKindKeyHash, hashHex(h))
	if err != nil {
		g.log.Warn("looking up an unknown key in the shared store failed", "err", err)
		return nil
	}
	if found {
		if err := g.ReloadRecords(ctx); err != nil {
			g.log.Warn("reloading runtime keys for an unknown key failed", "err", err)
			return nil
		}
		if e := g.state.Load().byHash[h]; e != nil {
			return e
		}
		// The index outlived its key (rotated or deleted): drop it. Records
		// are written before their index, so no live key can lose its entry.
		if err := g.store.DeleteRecord(ctx, RecordKindKeyHash, hashHex(h)); err != nil {
			g.log.Warn("dropping a stale key index failed", "err", err)
		}
	}
	g.misses.note(h, now)
	return nil
}
