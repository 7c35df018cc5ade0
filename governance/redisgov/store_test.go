package redisgov

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"github.com/switchboard-gw/switchboard/governance"
)

const (
	testSecret   = "test-secret-0123456789"
	testAdminKey = "sk-admin-0123456789abcdef"
	testKey      = "sk-config-key-0123456789"
)

func redisZ(score float64, member string) redis.Z { return redis.Z{Score: score, Member: member} }

// deadClient talks to a loopback port nobody listens on.
func deadClient(t *testing.T) *redis.Client {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 50 * time.Millisecond, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testGovernor(t *testing.T, store governance.Store, opts ...governance.Option) (*governance.Governor, string) {
	t.Helper()
	cfg := governance.Config{Secret: testSecret, AdminKey: testAdminKey,
		Keys: []governance.KeyConfig{{Name: "cfg", Key: testKey, Limits: governance.LimitsConfig{RPM: 10, MaxParallel: 2},
			Budget: governance.BudgetConfig{USD: "1"}}}}
	g, err := governance.New(cfg, store, slog.New(slog.DiscardHandler), nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return g, testKey
}

func TestStoreRoundTrip(t *testing.T) {
	t.Parallel()
	st := openTest(t).Store()
	ctx := context.Background()
	if err := st.PutRecord(ctx, governance.RecordKindKey, "key_1", []byte(`{"id":"key_1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := st.PutRecord(ctx, governance.RecordKindKeyHash, "abc", []byte("key_1")); err != nil {
		t.Fatal(err)
	}
	recs, err := st.ListRecords(ctx, governance.RecordKindKey)
	if err != nil || len(recs) != 1 || string(recs[0].Data) != `{"id":"key_1"}` || recs[0].UpdatedAt.IsZero() {
		t.Fatalf("list: %+v %v", recs, err)
	}
	if data, ok, err := st.GetRecord(ctx, governance.RecordKindKeyHash, "abc"); err != nil || !ok || string(data) != "key_1" {
		t.Fatalf("get: %q %v %v", data, ok, err)
	}
	if err := st.DeleteRecord(ctx, governance.RecordKindKey, "key_1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.GetRecord(ctx, governance.RecordKindKey, "key_1"); ok || err != nil {
		t.Fatalf("deleted record still there: %v", err)
	}
}

// replica is one governor with its admin API, as a gateway process has it.
type replica struct {
	g     *governance.Governor
	admin *fiber.App
}

func newReplica(t *testing.T, cfg governance.RedisConfig, watch bool) *replica {
	s := openAt(t, cfg, nil)
	g, _ := testGovernor(t, s.Store(), governance.WithCounters(s.Counters()))
	if watch {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.Store().Watch(ctx, g.ReloadRecords) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	app := fiber.New()
	g.RegisterAdmin(app.Group("/admin"))
	return &replica{g: g, admin: app}
}

func (r *replica) do(t *testing.T, method, path, body string) map[string]any {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAdminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.admin.Test(req, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNoContent {
		t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, out)
	}
	return out
}

// A key created on replica A authenticates on replica B at once, without
// waiting for the change notification (B does not even watch).
func TestKeyCreatedOnOneReplicaAuthenticatesOnAnother(t *testing.T) {
	t.Parallel()
	cfg := governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 5 * time.Second}
	a, b := newReplica(t, cfg, false), newReplica(t, cfg, false)
	team := a.do(t, http.MethodPost, "/admin/teams", `{"name":"ops"}`)
	if team["name"] != "ops" {
		t.Fatalf("team: %v", team)
	}
	created := a.do(t, http.MethodPost, "/admin/keys", `{"name":"agent-1","team":"ops"}`)
	raw, _ := created["key"].(string)
	if raw == "" {
		t.Fatalf("no key in %v", created)
	}
	p, err := b.g.Authenticate(raw)
	if err != nil || p.KeyName != "agent-1" || p.Team != "ops" {
		t.Fatalf("replica B: %+v %v", p, err)
	}
	// Config-declared keys keep working on both.
	for _, r := range []*replica{a, b} {
		if _, err := r.g.Authenticate(testKey); err != nil {
			t.Fatal(err)
		}
	}
	// A wrong key is refused, and repeating it is answered from the miss cache.
	if _, err := b.g.Authenticate("sk-wrong-0123456789abcdef"); err == nil {
		t.Fatal("a wrong key authenticated")
	}
}

// Changes reach a watching replica through the notification: a key deleted
// on A stops working on B.
func TestDeletedKeyStopsOnWatchingReplica(t *testing.T) {
	t.Parallel()
	cfg := governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 5 * time.Second}
	a, b := newReplica(t, cfg, true), newReplica(t, cfg, true)
	created := a.do(t, http.MethodPost, "/admin/keys", `{"name":"short-lived"}`)
	raw, _ := created["key"].(string)
	id, _ := created["id"].(string)
	if _, err := b.g.Authenticate(raw); err != nil {
		t.Fatal(err)
	}
	a.do(t, http.MethodDelete, "/admin/keys/"+id, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := b.g.Authenticate(raw); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("replica B still accepts a key deleted on A after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Start-up rebuild must not overwrite spend other replicas counted.
func TestSetSpentOnlySeeds(t *testing.T) {
	t.Parallel()
	c := openTest(t).Counters()
	sk := governance.CounterKey{Scope: governance.ScopeTeam, Metric: governance.MetricSpend, ID: "t"}
	const period = 1_800_000_000
	sp := c.SpendCounter(sk)
	sp.Hold(period, 0, 50)
	sp.Settle(period, 50, 50)
	sp.SetSpent(period, 7) // a replica starting with less history in its storage
	if spent, _ := sp.Spent(period); spent != 50 {
		t.Fatalf("spent %d after seeding an existing counter, want 50", spent)
	}
	sp.SetSpent(period+86400, 7)
	if spent, _ := sp.Spent(period + 86400); spent != 7 {
		t.Fatalf("spent %d after seeding a new period, want 7", spent)
	}
}

func TestOwnersFirstClaimWins(t *testing.T) {
	t.Parallel()
	cfg := governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 5 * time.Second}
	a, b := openAt(t, cfg, nil).Owners(time.Minute), openAt(t, cfg, nil).Owners(time.Minute)
	if !a.Claim("agent", "task", "t1", "key_a") {
		t.Fatal("first claim refused")
	}
	if b.Claim("agent", "task", "t1", "key_b") {
		t.Fatal("second key took over the task")
	}
	if !b.Claim("agent", "task", "t1", "key_a") {
		t.Fatal("owner's claim through another replica refused")
	}
	if owner, ok := b.Owner("agent", "task", "t1"); !ok || owner != "key_a" {
		t.Fatalf("owner %q %v", owner, ok)
	}
	if _, ok := b.Owner("other", "task", "t1"); ok {
		t.Fatal("ownership leaked across agents")
	}
}
