package governance

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	testSecret   = "test-secret-0123456789abcdef"
	testAdminKey = "sk-admin-0123456789abcdef"
)

// testClock is a settable clock so rate and period tests never depend on timing.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 11, 18, 12, 0, 0, 0, time.UTC)} // a Wednesday
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// memStore is an in-memory Store; copies data so callers can't alias it.
type memStore struct {
	mu      sync.Mutex
	records map[string]map[string]Record
	fail    error
}

func newMemStore() *memStore { return &memStore{records: map[string]map[string]Record{}} }

func (m *memStore) PutRecord(_ context.Context, kind, id string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.records[kind] == nil {
		m.records[kind] = map[string]Record{}
	}
	m.records[kind][id] = Record{Kind: kind, ID: id, Data: append([]byte(nil), data...), UpdatedAt: time.Now()}
	return nil
}

func (m *memStore) DeleteRecord(_ context.Context, kind, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	delete(m.records[kind], id)
	return nil
}

func (m *memStore) ListRecords(_ context.Context, kind string) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	out := make([]Record, 0, len(m.records[kind]))
	for _, r := range m.records[kind] {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// mapSpend is a SpendSource answering from a map keyed "scope/id@since".
type mapSpend map[string]int64

func (m mapSpend) SpendSince(_ context.Context, scope, id string, since time.Time) (int64, error) {
	return m[fmt.Sprintf("%s/%s@%s", scope, id, since.Format(time.DateOnly))], nil
}

func rawKey(name string) string { return "sk-test-" + name + "-0123456789abcdef" }

func newGov(t testing.TB, cfg Config, opts ...Option) (*Governor, *testClock) {
	t.Helper()
	clock := newTestClock()
	if cfg.Secret == "" {
		cfg.Secret = testSecret
	}
	g, err := New(cfg, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), append([]Option{WithClock(clock.Now)}, opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return g, clock
}

func mustAuth(t testing.TB, g *Governor, name string) *Principal {
	t.Helper()
	p, err := g.Authenticate(rawKey(name))
	if err != nil {
		t.Fatalf("Authenticate(%s): %v", name, err)
	}
	return p
}

func usd(n int64) int64 { return n * nanoPerUSD }
