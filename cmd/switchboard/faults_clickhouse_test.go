package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/shopspring/decimal"

	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

// spansPerChat is what one chat call its first upstream attempt answers records: the call span alone.
const spansPerChat = 1

// privateClickHouse is a ClickHouse of the test's own, started by deploy/clickhouse.sh on free ports so the test
// may stop it without disturbing the shared one other tests use.
type privateClickHouse struct {
	t    *testing.T
	addr string
	env  []string
}

func startPrivateClickHouse(t *testing.T) *privateClickHouse {
	t.Helper()
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		if _, err := os.Stat("/usr/sbin/clickhouse-server"); err != nil {
			t.Skip("clickhouse-server is not installed")
		}
	}
	port := freePortNumber(t)
	httpPort := freePortNumber(t)
	for httpPort == port {
		httpPort = freePortNumber(t)
	}
	ch := &privateClickHouse{t: t, addr: "127.0.0.1:" + strconv.Itoa(port), env: []string{
		"CLICKHOUSE_PORT=" + strconv.Itoa(port), "CLICKHOUSE_HTTP_PORT=" + strconv.Itoa(httpPort),
		"CLICKHOUSE_DIR=" + filepath.Join(t.TempDir(), "clickhouse"),
	}}
	ch.run("start")
	t.Cleanup(func() { ch.run("stop") })
	return ch
}

// freePortNumber is a free port below Linux's ephemeral range (32768 and up): a server that is stopped and started
// again on it must not find it taken by some client's outgoing connection in between.
func freePortNumber(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

func (c *privateClickHouse) run(action string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../../deploy/clickhouse.sh", action)
	cmd.Env = append(os.Environ(), c.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("clickhouse %s: %v\n%s", action, err, out)
	}
}

// open connects to the private ClickHouse; done closes the connection and ends ctx (30 s at most).
func (c *privateClickHouse) open() (conn clickhouse.Conn, ctx context.Context, done func()) {
	c.t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{c.addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	return conn, ctx, func() { cancel(); _ = conn.Close() }
}

// count runs a SELECT count() query against the private ClickHouse.
func (c *privateClickHouse) count(query string) uint64 {
	c.t.Helper()
	conn, ctx, done := c.open()
	defer done()
	var n uint64
	if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
		c.t.Fatal(err)
	}
	return n
}

// spansByTrace counts the stored spans of each trace, and sums the key's settled cost, straight from ClickHouse.
func (c *privateClickHouse) spansByTrace() (map[string]int, int64) {
	c.t.Helper()
	conn, ctx, done := c.open()
	defer done()
	rows, err := conn.Query(ctx, "SELECT lower(hex(trace_id)), toInt64(count()) FROM faults.spans GROUP BY trace_id")
	if err != nil {
		c.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			c.t.Fatal(err)
		}
		out[id] = int(n)
	}
	if err := rows.Err(); err != nil {
		c.t.Fatal(err)
	}
	var cost int64
	if err := conn.QueryRow(ctx, "SELECT toInt64(sum(cost_nano)) FROM faults.spans WHERE key_name = 'faults'").Scan(&cost); err != nil {
		c.t.Fatal(err)
	}
	return out, cost
}

func clickHouseFaultConfig(listen, dir, llmURL, chAddr string) string {
	return fmt.Sprintf(`server: {listen: %q, shutdown_timeout: 5s}
log: {format: json, level: warn}
models:
  - name: gpt-4o-mini
    deployments: [{provider: openai, base_url: "%s/v1", model: gpt-4o-mini}]
    pricing: {input_per_mtok: "0.15", output_per_mtok: "0.60"}
governance:
  secret: %s
  admin_key: %s
  keys: [{name: faults, key: %s, budget: {usd: 1000, period: daily}}]
storage: {clickhouse: {addr: %q, database: faults, dial_timeout: 1s}}
trace: {spill_dir: %q, flush_interval: 100ms, retry_interval: 250ms, write_timeout: 3s}
`, listen, llmURL, faultSecret, faultAdminKey, faultKey, chAddr, filepath.Join(dir, "spill"))
}

// loadResult is what the clients of one load run saw.
type loadResult struct {
	sent, ok  int64
	statuses  map[int]int64
	traces    []string // trace ids sent, in hex
	costNano  int64    // sum of x-switchboard-cost-usd over the answers
	firstErrs []string
}

// load sends n chat calls with concurrency workers; before call i it waits on gate(i), so a test can hold calls
// back until a fault is in place.
func load(t *testing.T, base string, n, workers int, gate func(i int)) loadResult {
	t.Helper()
	var next, ok, sent, cost atomic.Int64
	var mu sync.Mutex
	res := loadResult{statuses: map[int]int64{}, traces: make([]string, n)}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				gate(i)
				id, tp := newTraceparent()
				res.traces[i] = id.String()
				sent.Add(1)
				r, err := postChat(base, "gpt-4o-mini", tp, false)
				mu.Lock()
				if err != nil {
					res.statuses[0]++
					if len(res.firstErrs) < 3 {
						res.firstErrs = append(res.firstErrs, err.Error())
					}
				} else {
					res.statuses[r.status]++
				}
				mu.Unlock()
				if err != nil || r.status != http.StatusOK {
					continue
				}
				ok.Add(1)
				usd, derr := decimal.NewFromString(r.header.Get("x-switchboard-cost-usd"))
				if derr != nil {
					mu.Lock()
					res.firstErrs = append(res.firstErrs, "cost header: "+derr.Error())
					mu.Unlock()
					continue
				}
				cost.Add(usd.Shift(9).IntPart())
			}
		}()
	}
	wg.Wait()
	res.sent, res.ok, res.costNano = sent.Load(), ok.Load(), cost.Load()
	return res
}

// checkStoredOnce proves every trace sent is in ClickHouse with exactly its spans, and nothing else is there.
func checkStoredOnce(t *testing.T, stored map[string]int, traces []string) int {
	t.Helper()
	total := 0
	for _, n := range stored {
		total += n
	}
	missing, wrong := 0, 0
	for _, id := range traces {
		switch n := stored[id]; {
		case n == 0:
			missing++
		case n != spansPerChat:
			wrong++
		}
	}
	if missing > 0 || wrong > 0 || len(stored) != len(traces) {
		t.Errorf("ClickHouse: %d traces missing, %d with a wrong span count (lost or duplicated), %d traces stored for %d sent",
			missing, wrong, len(stored), len(traces))
	}
	return total
}

// clickHouseFaultSetup gives a ClickHouse fault test what it runs on: a private ClickHouse it may stop, a scratch
// folder, the gateway binary built there, and a mock LLM upstream.
func clickHouseFaultSetup(t *testing.T) (ch *privateClickHouse, dir, bin string, up *mock.LLMServer) {
	t.Helper()
	ch = startPrivateClickHouse(t)
	dir = t.TempDir()
	bin = buildGateway(t, dir)
	up, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	return ch, dir, bin, up
}

// TestFaultClickHouseRestartUnderLoad stops ClickHouse while calls flow and starts it again: every call is
// answered, every span reaches ClickHouse exactly once, the spend the gateway holds equals the settled costs
// stored there, and the audit events of calls refused during the outage are stored once it is back.
func TestFaultClickHouseRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a ClickHouse")
	}
	t.Parallel()
	ch, dir, bin, up := clickHouseFaultSetup(t)
	addr := freeAddr(t)
	g := startGateway(t, bin, dir, addr, clickHouseFaultConfig(addr, dir, up.URL, ch.addr))
	spendBefore := keySpend(t, g.base)

	const n, workers = 2000, 16
	const stopAt, holdUntilStopped, startAt = 400, 1000, 1300
	var begun atomic.Int64 // calls that passed the gate
	stopped, started := make(chan struct{}), make(chan struct{})
	faults := make(chan error, 2)
	const deniedDuringOutage = 5
	var deniedStatuses []int // written before stopped is closed
	go func() {
		// Stop and start run while calls are in flight; calls past a mark wait for the fault so the outage is
		// really under load whatever the machine's speed.
		for begun.Load() < stopAt {
			time.Sleep(5 * time.Millisecond)
		}
		faults <- runScript(ch, "stop")
		deniedStatuses = refuseWrongKeys(g.base, deniedDuringOutage)
		// The outage lasts until the store has refused their audit batch at least once.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if m, err := metrics(g.base); err == nil && m["switchboard_audit_write_failures_total"] > 0 {
				break
			}
		}
		close(stopped)
		for begun.Load() < startAt {
			time.Sleep(5 * time.Millisecond)
		}
		faults <- runScript(ch, "start")
		close(started)
	}()
	res := load(t, g.base, n, workers, func(i int) {
		begun.Add(1)
		switch {
		case i >= holdUntilStopped && i < startAt+workers:
			<-stopped
		case i >= startAt+workers:
			<-started
		}
	})
	<-started
	for range 2 {
		if err := <-faults; err != nil {
			t.Fatal(err)
		}
	}
	if res.sent != n || res.ok != n {
		t.Fatalf("sent %d, answered 200: %d; statuses %v; errors %q", res.sent, res.ok, res.statuses, res.firstErrs)
	}
	for _, status := range deniedStatuses {
		if status != http.StatusUnauthorized {
			t.Fatalf("calls with a wrong key during the outage: statuses %v, want 401s", deniedStatuses)
		}
	}

	// Every span the gateway recorded is written once the recorder has replayed its spill.
	st := waitStats(t, g.base, "the spill to be replayed", func(s traceStats) bool {
		return s.recorded == n*spansPerChat && s.written == s.recorded && s.spillBytes == 0 && s.queued == 0
	})
	if st.spilled == 0 || st.dropped != 0 {
		t.Errorf("recorder %+v: want spans spilled during the outage and none dropped", st)
	}
	stored, storedCost := ch.spansByTrace()
	inClickHouse := checkStoredOnce(t, stored, res.traces)
	spendAfter := keySpend(t, g.base)
	if spendAfter-spendBefore != res.costNano || storedCost != res.costNano {
		t.Errorf("spend: gateway %d nano-USD, ClickHouse %d, sum of answers' costs %d", spendAfter-spendBefore, storedCost, res.costNano)
	}
	// The audit writer keeps retrying the batch the stopped store refused.
	audited := func() uint64 { return ch.count("SELECT count() FROM faults.audit WHERE rule = 'unknown_key'") }
	for deadline := time.Now().Add(time.Minute); audited() < deniedDuringOutage && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	if got := audited(); got != deniedDuringOutage {
		t.Errorf("audit events of wrong-key calls during the outage in ClickHouse: %d, want %d", got, deniedDuringOutage)
	}
	t.Logf("FAULT ClickHouse stop+start under load | requests sent %d answered %d (200) | spans recorded %d spilled %d replayed %d in ClickHouse %d | spend gateway %d ClickHouse %d answers %d nano-USD | audit events during the outage %d",
		res.sent, res.ok, st.recorded, st.spilled, st.replayed, inClickHouse, spendAfter-spendBefore, storedCost, res.costNano, audited())
}

// refuseWrongKeys sends n chat calls with a key the gateway does not know and returns their statuses (0: no answer).
func refuseWrongKeys(base string, n int) []int {
	statuses := make([]int, n)
	for i := range statuses {
		req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			continue
		}
		req.Header.Set("Authorization", "Bearer sk-sb-not-a-key-"+strconv.Itoa(i))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			statuses[i] = resp.StatusCode
			resp.Body.Close()
		}
	}
	return statuses
}

// runScript is privateClickHouse.run for a goroutine: it returns the error instead of failing the test.
func runScript(c *privateClickHouse, action string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../../deploy/clickhouse.sh", action)
	cmd.Env = append(os.Environ(), c.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("clickhouse %s: %w\n%s", action, err, out)
	}
	return nil
}

// TestFaultSIGKILLSpillSurvives kills the gateway while its spans wait in the spill (ClickHouse down), then
// restarts both: every span arrives once, and the spend rebuilt from storage is what the calls cost.
func TestFaultSIGKILLSpillSurvives(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a ClickHouse")
	}
	t.Parallel()
	ch, dir, bin, up := clickHouseFaultSetup(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePortNumber(t)) // the restarted gateway listens here again
	cfg := clickHouseFaultConfig(addr, dir, up.URL, ch.addr)
	g := startGateway(t, bin, dir, addr, cfg)

	ch.run("stop")
	const m = 300
	res := load(t, g.base, m, 8, func(int) {})
	if res.sent != m || res.ok != m {
		t.Fatalf("sent %d, answered 200: %d; statuses %v; errors %q", res.sent, res.ok, res.statuses, res.firstErrs)
	}
	// SIGKILL loses what is only in memory: wait until every span is on disk, as the recorder reports.
	before := waitStats(t, g.base, "every span to reach the spill", func(s traceStats) bool {
		return s.recorded == m*spansPerChat && s.spilled == s.recorded && s.queued == 0
	})
	spendBefore := keySpend(t, g.base)
	g.kill()

	ch.run("start")
	g2 := startGateway(t, bin, dir, addr, cfg)
	spendAfter := keySpend(t, g2.base)
	after := waitStats(t, g2.base, "the spill of the killed gateway to be replayed", func(s traceStats) bool {
		return s.replayed == m*spansPerChat && s.spillBytes == 0
	})
	stored, storedCost := ch.spansByTrace()
	inClickHouse := checkStoredOnce(t, stored, res.traces)
	if spendBefore != res.costNano || spendAfter != res.costNano || storedCost != res.costNano {
		t.Errorf("spend: before SIGKILL %d, rebuilt after restart %d, ClickHouse %d, sum of answers' costs %d (nano-USD)",
			spendBefore, spendAfter, storedCost, res.costNano)
	}
	if after.dropped != 0 || before.dropped != 0 {
		t.Errorf("spans dropped: before %d, after %d", before.dropped, after.dropped)
	}
	t.Logf("FAULT SIGKILL with ClickHouse down, restart | requests sent %d answered %d (200) | spans recorded %d spilled %d, replayed after restart %d, in ClickHouse %d | spend before kill %d rebuilt %d ClickHouse %d answers %d nano-USD",
		res.sent, res.ok, before.recorded, before.spilled, after.replayed, inClickHouse, spendBefore, spendAfter, storedCost, res.costNano)
}
