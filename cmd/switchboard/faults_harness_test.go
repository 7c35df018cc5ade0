package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/trace"
)

// The fault tests run the real binary against upstreams that misbehave on purpose. Everything here talks to
// 127.0.0.1 only and every wait is bounded.

const (
	faultKey      = "sk-test-faults-00000000000000000"
	faultAdminKey = "sk-test-faults-admin-0000000000000"
	faultSecret   = "faults-test-secret-0123456789"
)

// buildGateway builds the binary into dir. Each test builds its own: a shared build would need a directory that
// outlives the test that made it.
func buildGateway(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "switchboard")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// gatewayProc is one run of the binary.
type gatewayProc struct {
	base    string
	cmd     *exec.Cmd
	logs    *lockedBuffer
	done    chan struct{} // closed once the process is gone
	waitErr error         // how it ended; read only after done
}

// startGateway writes cfg to dir/switchboard.yaml, starts bin on it and waits until /readyz says ready.
func startGateway(t *testing.T, bin, dir, addr, cfg string) *gatewayProc {
	t.Helper()
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	g := runGateway(t, bin, cfgPath, addr)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(g.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		select {
		case <-g.done:
			t.Fatalf("gateway exited while starting: %v\nlogs:\n%s", g.waitErr, g.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready; logs:\n%s", g.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runGateway starts bin serving cfgPath on addr, without waiting for it. The process is killed when the test
// ends, and its logs are shown if the test failed.
func runGateway(t *testing.T, bin, cfgPath, addr string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{base: "http://" + addr, logs: &lockedBuffer{}, done: make(chan struct{})}
	g.cmd = exec.Command(bin, "serve", "--config", cfgPath)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.waitErr = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() {
		g.kill()
		if t.Failed() {
			t.Logf("gateway %s logs:\n%s", g.base, g.logs.String())
		}
	})
	return g
}

// signal sends sig to the gateway.
func (g *gatewayProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := g.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// exitsCleanly waits (20 s at most) for the process to end, which must be with status 0.
func (g *gatewayProc) exitsCleanly(t *testing.T) {
	t.Helper()
	select {
	case <-g.done:
		if g.waitErr != nil {
			t.Fatalf("exit: %v", g.waitErr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("gateway did not exit after SIGTERM")
	}
}

// kill sends SIGKILL (no drain, no flush) and waits for the process to be gone.
func (g *gatewayProc) kill() {
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGKILL)
	<-g.done
}

// newTraceparent starts a fresh trace the test can look up later.
func newTraceparent() (trace.TraceID, string) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	var id trace.TraceID
	copy(id[:], b[:16])
	return id, "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}

// chatReply is what a client saw of one chat call.
type chatReply struct {
	status  int
	header  http.Header
	body    string
	elapsed time.Duration
}

var faultClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64},
}

func postChat(base, model, traceparent string, stream bool) (chatReply, error) {
	body := fmt.Sprintf(`{"model":%q,"stream":%t,"messages":[{"role":"user","content":"fault injection"}]}`, model, stream)
	req, err := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return chatReply{}, err
	}
	req.Header.Set("Authorization", "Bearer "+faultKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", traceparent)
	start := time.Now()
	resp, err := faultClient.Do(req)
	if err != nil {
		return chatReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return chatReply{status: resp.StatusCode, header: resp.Header, body: string(b), elapsed: time.Since(start)}, err
}

// adminGet decodes a JSON answer of an admin route; it returns the HTTP status.
func adminGet(base, path string, out any) (int, error) {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+faultAdminKey)
	resp, err := faultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
}

// traceNode mirrors one node of GET /admin/traces/<id>.
type traceNode struct {
	Span     trace.Span  `json:"span"`
	Children []traceNode `json:"children"`
}

// storedSpans polls GET /admin/traces/<id> until the trace holds at least want spans and returns them.
func storedSpans(t *testing.T, base string, id trace.TraceID, want int) []trace.Span {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var tr struct {
			Roots []traceNode `json:"roots"`
		}
		status, err := adminGet(base, "/admin/traces/"+id.String(), &tr)
		if err != nil {
			t.Fatal(err)
		}
		var spans []trace.Span
		var walk func([]traceNode)
		walk = func(ns []traceNode) {
			for _, n := range ns {
				spans = append(spans, n.Span)
				walk(n.Children)
			}
		}
		walk(tr.Roots)
		if status == http.StatusOK && len(spans) >= want {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: %d spans stored (HTTP %d), want %d", id, len(spans), status, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// spanNamed returns the stored span called name.
func spanNamed(t *testing.T, spans []trace.Span, name string) trace.Span {
	t.Helper()
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name
	}
	t.Fatalf("no span %q among %q", name, names)
	return trace.Span{}
}

// metrics scrapes the gateway's Prometheus counters (unlabelled series only).
func metrics(base string) (map[string]float64, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+faultAdminKey)
	resp, err := faultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: HTTP %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// traceStats are the recorder's counters as /metrics shows them.
type traceStats struct {
	recorded, written, spilled, replayed, dropped, queued, spillBytes int64
}

func recorderStats(t *testing.T, base string) traceStats {
	t.Helper()
	m, err := metrics(base)
	if err != nil {
		t.Fatal(err)
	}
	return traceStats{
		recorded: int64(m["switchboard_trace_spans_recorded_total"]), written: int64(m["switchboard_trace_spans_written_total"]),
		spilled: int64(m["switchboard_trace_spans_spilled_total"]), replayed: int64(m["switchboard_trace_spans_replayed_total"]),
		dropped: int64(m["switchboard_trace_spans_dropped_total"]), queued: int64(m["switchboard_trace_queue_depth"]),
		spillBytes: int64(m["switchboard_trace_spill_bytes"]),
	}
}

// waitStats polls the recorder's counters until ok accepts them.
func waitStats(t *testing.T, base, what string, ok func(traceStats) bool) traceStats {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := recorderStats(t, base)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; recorder %+v", what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// keySpend is the spend the gateway holds in memory for the fault key (its budget's current period).
func keySpend(t *testing.T, base string) int64 {
	t.Helper()
	var u struct {
		Key struct {
			SpendNanoUSD int64 `json:"spend_nano_usd"`
		} `json:"key"`
	}
	status, err := adminGet(base, "/admin/keys/faults/usage", &u)
	if err != nil || status != http.StatusOK {
		t.Fatalf("usage: HTTP %d %v", status, err)
	}
	return u.Key.SpendNanoUSD
}

// faultProxy is a TCP proxy in front of an upstream that a test can make hang (accept, read, never answer) or
// go down (connections refused).
type faultProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	hang  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { p.down(); p.wg.Wait() })
	return p
}

func (p *faultProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		hang := p.hang
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.forget(c)
			if hang {
				_, _ = io.Copy(io.Discard, c)
				return
			}
			up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[up] = struct{}{}
			p.mu.Unlock()
			defer p.forget(up)
			done := make(chan struct{})
			go func() { p.pipe(up, c); up.Close(); close(done) }()
			p.pipe(c, up)
			c.Close()
			<-done
		}()
	}
}

// pipe copies from src to dst until either side closes; once the proxy hangs it swallows what it reads, so
// connections opened before the fault stall too.
func (p *faultProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.hanging() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *faultProxy) hanging() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hang
}

func (p *faultProxy) forget(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// dropConns closes every open connection, so pooled upstream connections meet the new behaviour.
func (p *faultProxy) dropConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// startHanging makes the upstream hang: it accepts and reads but never answers, on new and open connections.
func (p *faultProxy) startHanging() {
	p.mu.Lock()
	p.hang = true
	p.mu.Unlock()
}

// down closes the listener: the upstream's port refuses connections from now on.
func (p *faultProxy) down() {
	p.ln.Close()
	p.dropConns()
}

// rawListener serves every connection with handle; it stands in for upstreams that do not speak HTTP properly.
func rawListener(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

// closedPort is an address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
