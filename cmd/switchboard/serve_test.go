package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/app"
	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

const serveTestKey = "sk-test-serve-000000000000000000"

// serveConfig is a config file for one model, served by the mock at upstream.
func serveConfig(listen, upstream, dir string, extraModel string) string {
	cfg := fmt.Sprintf(`server: {listen: %q, shutdown_timeout: 20s}
log: {format: text, level: info}
models:
  - name: slow-model
    deployments: [{provider: openai, base_url: "%s/v1", model: gpt-4o-mini}]
%s
governance:
  secret: serve-test-secret-0123456789
  keys: [{name: tester, key: %s}]
storage: {sqlite: {path: %q}}
trace: {spill_dir: %q}
`, listen, upstream, extraModel, serveTestKey, filepath.Join(dir, "sb.db"), filepath.Join(dir, "spill"))
	return cfg
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func chat(base, model string) (int, string, error) {
	body := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"still here"}]}`, model)
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+serveTestKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// The real binary: SIGTERM during a slow upstream call lets the call finish with 200 and then exits 0; a valid
// config change is applied without restart and a broken one is refused while the old config keeps serving.
func TestServeBinaryDrainsOnSIGTERMAndHotReloads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := buildGateway(t, dir)
	up, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{Latency: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	fast, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()

	addr := freeAddr(t)
	g := startGateway(t, bin, dir, addr, serveConfig(addr, up.URL, dir, ""))
	base, logs, cfgPath := g.base, g.logs, filepath.Join(dir, "switchboard.yaml")

	// Hot reload: a new model appears without a restart.
	replace := func(content string) {
		tmp := cfgPath + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	extra := fmt.Sprintf(`  - name: fast-model
    deployments: [{provider: openai, base_url: "%s/v1", model: gpt-4o-mini}]`, fast.URL)
	replace(serveConfig(addr, up.URL, dir, extra))
	waitFor(t, "the reloaded model to answer", func() bool { code, _, _ := chat(base, "fast-model"); return code == 200 })

	// A broken file is refused: the running config (with fast-model) keeps serving.
	replace("models: [{name: broken, deployments: [{provider: nonsense}]}]\n")
	waitFor(t, "the broken reload to be logged", func() bool { return strings.Contains(logs.String(), "config reload rejected") })
	if code, body, err := chat(base, "fast-model"); err != nil || code != 200 {
		t.Fatalf("after a broken reload: %d %s %v", code, body, err)
	}

	type result struct {
		code int
		body string
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		code, body, err := chat(base, "slow-model")
		slow <- result{code, body, err}
	}()
	time.Sleep(400 * time.Millisecond) // the call is now waiting on the upstream
	g.signal(t, syscall.SIGTERM)
	r := <-slow
	if r.err != nil || r.code != 200 || !strings.Contains(r.body, "still here") {
		t.Fatalf("slow call during shutdown: %d %q %v", r.code, r.body, r.err)
	}
	g.exitsCleanly(t)
}

// lockedBuffer is written by the process's output copier and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SIGHUP re-reads the file (systemd's ExecReload sends it): the gateway keeps serving and applies the new config,
// or logs and keeps the old one. The config here is a symlink into a directory the file watch does not see, so
// only the signal can bring the change in.
func TestServeBinaryReloadsOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	dir, elsewhere := t.TempDir(), t.TempDir()
	bin := buildGateway(t, dir)
	up, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()

	addr := freeAddr(t)
	base := "http://" + addr
	target := filepath.Join(elsewhere, "switchboard.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(target, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(serveConfig(addr, up.URL, dir, ""))
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	if err := os.Symlink(target, cfgPath); err != nil {
		t.Fatal(err)
	}
	g := runGateway(t, bin, cfgPath, addr)
	waitFor(t, "the gateway to be ready", func() bool { code, _, _ := chat(base, "slow-model"); return code == 200 })

	extra := fmt.Sprintf(`  - name: fast-model
    deployments: [{provider: openai, base_url: "%s/v1", model: gpt-4o-mini}]`, up.URL)
	write(serveConfig(addr, up.URL, dir, extra))
	time.Sleep(time.Second) // well past the watch's debounce: the change must wait for the signal
	if code, _, _ := chat(base, "fast-model"); code == 200 {
		t.Fatal("the change was applied before SIGHUP; the test no longer shows the signal's work")
	}
	g.signal(t, syscall.SIGHUP)
	waitFor(t, "the model SIGHUP brought in to answer", func() bool { code, _, _ := chat(base, "fast-model"); return code == 200 })

	write("models: [{name: broken, deployments: [{provider: nonsense}]}]\n")
	g.signal(t, syscall.SIGHUP)
	waitFor(t, "the broken reload to be logged", func() bool { return strings.Contains(g.logs.String(), "config reload rejected") })
	if code, body, err := chat(base, "fast-model"); err != nil || code != 200 {
		t.Fatalf("after a broken reload on SIGHUP: %d %s %v", code, body, err)
	}

	g.signal(t, syscall.SIGTERM)
	g.exitsCleanly(t)
}

// Without a config file (the embedded demo) there is nothing to re-read: SIGHUP is logged and the gateway serves on.
func TestServeWithoutConfigFileIgnoresSIGHUP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg, err := config.Parse([]byte(serveConfig(addr, "http://127.0.0.1:1", dir, "")), "demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	log, level := app.NewLogger(cfg.Log, logs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal)
	served := make(chan error, 1)
	go func() { served <- serve(ctx, cfg, "", log, level, hup) }()
	healthy := func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	waitFor(t, "the gateway to answer", healthy)

	hup <- syscall.SIGHUP
	waitFor(t, "the ignored signal to be logged", func() bool { return strings.Contains(logs.String(), "signal=hangup") })
	if !healthy() {
		t.Fatalf("not serving after SIGHUP; logs:\n%s", logs.String())
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
}

// A gateway whose port is taken says so and closes what it opened before it returns: a stdio MCP server it
// started must not be left running beside a process that is about to exit.
func TestServeClosesTheGatewayWhenItCannotListen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	pidFile := filepath.Join(dir, "mcp.pid")
	// The stdio server writes its pid, then reads its stdin until the gateway closes it and never answers; fd 3
	// keeps its stdout open, as a server's is while it runs.
	server := "echo $$ > " + pidFile + "; exec cat 3>&1 1>&2"
	text := serveConfig(taken.Addr().String(), "http://127.0.0.1:1", dir, "") +
		fmt.Sprintf("mcp:\n  servers:\n    - {name: files, command: [sh, -c, %q]}\n", server)
	cfg, err := config.Parse([]byte(text), "sb.yaml")
	if err != nil {
		t.Fatal(err)
	}
	log, level := app.NewLogger(cfg.Log, &lockedBuffer{})
	err = serve(context.Background(), cfg, "", log, level, make(chan os.Signal))
	if err == nil || !strings.Contains(err.Error(), "server.listen: listen tcp "+taken.Addr().String()) {
		t.Fatalf("serve on a taken port: %v, want a server.listen error naming the address", err)
	}
	// The MCP upstream starts its server as soon as the gateway is built; a gateway left open has done so well
	// within this wait, a closed one may have stopped it before it started.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		raw, err := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || pid == 0 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the stdio MCP server (pid %d) still runs after serve returned", pid)
		}
		return
	}
}
