package storage_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

// clickHouseScript finds the project's ClickHouse script, falling back to the
// shared one this workspace started with.
func clickHouseScript(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"../deploy/clickhouse.sh", "../../shared/scripts/clickhouse-up.sh"} {
		if abs, err := filepath.Abs(p); err == nil {
			if _, err := os.Stat(abs); err == nil {
				return abs
			}
		}
	}
	t.Fatal("no ClickHouse script: expected ../deploy/clickhouse.sh")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ownClickHouse runs a private server this test may stop and restart.
type ownClickHouse struct {
	t      *testing.T
	script string
	env    []string
}

func (c *ownClickHouse) run(action string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", c.script, action)
	cmd.Env = append(os.Environ(), c.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("clickhouse %s: %v\n%s", action, err, out)
	}
}

// TestClickHouseOutageSpillsAndReplays stops ClickHouse while spans flow,
// and checks that every recorded span arrives once it is back.
func TestClickHouseOutageSpillsAndReplays(t *testing.T) {
	t.Parallel()
	clickHouseAddr(t) // same gate as the other ClickHouse tests; the server is our own
	port, httpPort := freePort(t), freePort(t)
	for httpPort == port {
		httpPort = freePort(t)
	}
	ch := &ownClickHouse{t: t, script: clickHouseScript(t), env: []string{
		"CLICKHOUSE_PORT=" + strconv.Itoa(port), "CLICKHOUSE_HTTP_PORT=" + strconv.Itoa(httpPort),
		"CLICKHOUSE_DIR=" + filepath.Join(t.TempDir(), "clickhouse"),
	}}
	ch.run("start")
	t.Cleanup(func() { ch.run("stop") })
	addr := "127.0.0.1:" + strconv.Itoa(port)

	store, _ := openClickHouse(t, addr)
	rec, err := trace.NewRecorder(trace.RecorderConfig{
		BatchSize: 1000, FlushInterval: 20 * time.Millisecond, WriteTimeout: 3 * time.Second,
		RetryInterval: 200 * time.Millisecond, SpillDir: t.TempDir(),
	}, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tracer := trace.NewTracer(rec)

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			s := tracer.Start(trace.SpanContext{}, trace.LayerLLM, "chat m")
			s.CostNanoUSD = int64(i%1000) + 1
			s.End()
			// At most ~10,000 spans a second: an outage as long as a slow restart on a busy machine then
			// spills tens of thousands of spans, not the hundreds of thousands that took the replay past the
			// test's waits.
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	waitUntil(t, "spans written before the outage", func() bool { return rec.Stats().Written > 1000 })
	ch.run("stop")
	waitUntil(t, "spans spilled during the outage", func() bool { return rec.Stats().Spilled > 1000 })
	ch.run("start")
	waitUntil(t, "replay after restart", func() bool { return rec.Stats().Replayed > 0 })
	stop.Store(true)
	wg.Wait()

	waitUntil(t, "every span written", func() bool { st := rec.Stats(); return st.Written == st.Recorded })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rec.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	st := rec.Stats()
	rows, err := store.Spend(ctx, storage.SpendQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, r := range rows {
		stored += r.Requests
	}
	t.Logf("recorded %d, spilled %d, replayed %d, stored %d", st.Recorded, st.Spilled, st.Replayed, stored)
	if stored != st.Recorded || st.Dropped != 0 {
		t.Fatalf("stored %d spans, recorded %d (dropped %d)", stored, st.Recorded, st.Dropped)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
