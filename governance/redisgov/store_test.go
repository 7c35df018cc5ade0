package redisgov

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
	status, out := r.try(t, method, path, body)
	if status >= 300 && status != http.StatusNoContent {
		t.Fatalf("%s %s: %d %v", method, path, status, out)
	}
	return out
}

func (r *replica) try(t *testing.T, method, path, body string) (int, map[string]any) {
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
	return resp.StatusCode, out
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

// Two replicas check an admin change against their own copies of the
// records. The replicas here never watch, so each copy is as stale as it
// can be; the store must still refuse what the other replica's change made
// wrong, instead of answering 201 twice and keeping a key that never works.
func TestReplicasCannotBothClaimOneName(t *testing.T) {
	t.Parallel()
	type step = replicaStep
	cases := []struct {
		name  string
		steps []step
	}{
		{"key created twice", []step{
			{false, "POST", "/admin/keys", `{"name":"dup"}`, 201, ""},
			{true, "POST", "/admin/keys", `{"name":"dup"}`, 409, ""},
		}},
		{"team created twice", []step{
			{false, "POST", "/admin/teams", `{"name":"dup-team"}`, 201, ""},
			{true, "POST", "/admin/teams", `{"name":"dup-team","budget":{"usd":"5"}}`, 409, ""},
		}},
		{"key renamed onto another replica's key", []step{
			{false, "POST", "/admin/keys", `{"name":"taken"}`, 201, ""},
			{true, "POST", "/admin/keys", `{"name":"free"}`, 201, ""},
			{true, "PATCH", "/admin/keys/free", `{"name":"taken"}`, 409, ""},
		}},
		{"a renamed key frees its old name", []step{
			{false, "POST", "/admin/keys", `{"name":"before"}`, 201, ""},
			{false, "PATCH", "/admin/keys/before", `{"name":"after"}`, 200, ""},
			{true, "POST", "/admin/keys", `{"name":"before"}`, 201, ""},
			{true, "POST", "/admin/keys", `{"name":"after"}`, 409, ""},
		}},
		{"a deleted key frees its name", []step{
			{false, "POST", "/admin/keys", `{"name":"brief"}`, 201, ""},
			{false, "DELETE", "/admin/keys/brief", ``, 204, ""},
			{true, "POST", "/admin/keys", `{"name":"brief"}`, 201, ""},
		}},
		{"a deleted team frees its name", []step{
			{false, "POST", "/admin/teams", `{"name":"brief-team"}`, 201, ""},
			{false, "DELETE", "/admin/teams/brief-team", ``, 204, ""},
			{true, "POST", "/admin/teams", `{"name":"brief-team"}`, 201, ""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runOnTwoReplicas(t, tc.steps)
		})
	}
}

// replicaStep is one admin request on replica A or B, and the status it must
// get; method "RELOAD" reloads the replica's records instead.
type replicaStep struct {
	onB          bool // run on replica B, else A
	method, path string
	body         string
	want         int
	says         string // in the answer, when set
}

// runOnTwoReplicas runs steps on two replicas sharing a fresh Redis prefix
// that do not watch for each other's changes, so each acts on its own copy
// of the records until a RELOAD step.
func runOnTwoReplicas(t *testing.T, steps []replicaStep) {
	t.Helper()
	cfg := governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 5 * time.Second}
	a, b := newReplica(t, cfg, false), newReplica(t, cfg, false)
	for i, st := range steps {
		r := a
		if st.onB {
			r = b
		}
		if st.method == "RELOAD" {
			if err := r.g.ReloadRecords(context.Background()); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, out := r.try(t, st.method, st.path, st.body)
		if got != st.want {
			t.Fatalf("step %d %s %s %s: %d %v, want %d", i, st.method, st.path, st.body, got, out, st.want)
		}
		if st.says != "" && !strings.Contains(fmt.Sprint(out), st.says) {
			t.Fatalf("step %d %s %s: %v, want it to say %q", i, st.method, st.path, out, st.says)
		}
	}
}

// A change of a key or team another replica deleted answers 404 and does not
// bring the record back.
func TestChangeOfRecordDeletedOnAnotherReplica(t *testing.T) {
	t.Parallel()
	cfg := governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 5 * time.Second}
	a, b := newReplica(t, cfg, false), newReplica(t, cfg, false)
	a.do(t, "POST", "/admin/teams", `{"name":"doomed-team"}`)
	a.do(t, "POST", "/admin/keys", `{"name":"doomed"}`)
	if err := b.g.ReloadRecords(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.do(t, "DELETE", "/admin/keys/doomed", "")
	a.do(t, "DELETE", "/admin/teams/doomed-team", "")
	for _, c := range []struct{ path, body string }{
		{"/admin/keys/doomed", `{"limits":{"rpm":5}}`},
		{"/admin/keys/doomed/disable", ``},
		{"/admin/teams/doomed-team", `{"limits":{"rpm":5}}`},
	} {
		method := "PATCH"
		if strings.HasSuffix(c.path, "/disable") {
			method = "POST"
		}
		if got, out := b.try(t, method, c.path, c.body); got != http.StatusNotFound {
			t.Fatalf("%s %s on B: %d %v, want 404", method, c.path, got, out)
		}
	}
	if err := a.g.ReloadRecords(context.Background()); err != nil {
		t.Fatal(err)
	}
	keys := a.do(t, "GET", "/admin/keys", "")["keys"].([]any)
	for _, k := range keys {
		if k.(map[string]any)["name"] == "doomed" {
			t.Fatalf("the deleted key came back: %v", keys)
		}
	}
	if got, _ := a.try(t, "GET", "/admin/teams/doomed-team", ""); got != http.StatusNotFound {
		t.Fatalf("the deleted team came back: %d", got)
	}
}

// Many concurrent creations of one name across two replicas: one wins.
func TestConcurrentCreationsOfOneName(t *testing.T) {
	t.Parallel()
	cfg := governance.RedisConfig{Addr: testAddr(t), Prefix: testPrefix(t), Timeout: 5 * time.Second}
	reps := []*replica{newReplica(t, cfg, false), newReplica(t, cfg, false)}
	const n = 16
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, _ := reps[i%2].try(t, "POST", "/admin/keys", `{"name":"contested"}`)
			codes <- got
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Fatalf("answers %v, want one 201 and %d 409", count, n-1)
	}
}

// A replica deleting a team another replica has just put a key in (or the
// reverse) checks its own copy of the records, which has not heard of the
// other's change: the store refuses whichever change comes second.
func TestTeamDeletionAgainstKeyInItOnAnotherReplica(t *testing.T) {
	t.Parallel()
	type step = replicaStep
	reloadB := step{onB: true, method: "RELOAD"}
	cases := []struct {
		name  string
		steps []step
	}{
		{"key created before the deletion", []step{
			{false, "POST", "/admin/teams", `{"name":"crew"}`, 201, ""}, reloadB,
			{true, "POST", "/admin/keys", `{"name":"member","team":"crew"}`, 201, ""},
			{false, "DELETE", "/admin/teams/crew", ``, 409, `team "crew" still has keys: member`},
			{false, "GET", "/admin/teams/crew", ``, 200, ""},
		}},
		{"key created after the deletion", []step{
			{false, "POST", "/admin/teams", `{"name":"crew"}`, 201, ""}, reloadB,
			{false, "DELETE", "/admin/teams/crew", ``, 204, ""},
			{true, "POST", "/admin/keys", `{"name":"member","team":"crew"}`, 400, `key.team: unknown team "crew"`},
			{true, "POST", "/admin/keys", `{"name":"member"}`, 201, ""},
		}},
		{"key moved in before the deletion", []step{
			{false, "POST", "/admin/teams", `{"name":"crew"}`, 201, ""},
			{true, "POST", "/admin/keys", `{"name":"mover"}`, 201, ""}, reloadB,
			{true, "PATCH", "/admin/keys/mover", `{"team":"crew"}`, 200, ""},
			{false, "DELETE", "/admin/teams/crew", ``, 409, `team "crew" still has keys: mover`},
		}},
		{"key moved in after the deletion", []step{
			{false, "POST", "/admin/teams", `{"name":"crew"}`, 201, ""},
			{true, "POST", "/admin/keys", `{"name":"mover"}`, 201, ""}, reloadB,
			{false, "DELETE", "/admin/teams/crew", ``, 204, ""},
			{true, "PATCH", "/admin/keys/mover", `{"team":"crew"}`, 400, `key.team: unknown team "crew"`},
		}},
		{"a key that left frees the team", []step{
			{false, "POST", "/admin/teams", `{"name":"crew"}`, 201, ""}, reloadB,
			{true, "POST", "/admin/keys", `{"name":"leaver","team":"crew"}`, 201, ""},
			{true, "PATCH", "/admin/keys/leaver", `{"team":null}`, 200, ""},
			{false, "DELETE", "/admin/teams/crew", ``, 204, ""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runOnTwoReplicas(t, tc.steps)
		})
	}
}
