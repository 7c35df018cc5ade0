package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// started is a gateway serving on a loopback port.
type started struct {
	app  *App
	url  string
	stop context.CancelFunc
	done chan error
}

func start(t *testing.T, mutate func(*config.Config), mount func(*App)) *started {
	t.Helper()
	cfg := testConfig(t)
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := New(&cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if mount != nil {
		mount(a)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{app: a, url: "http://" + ln.Addr().String(), stop: cancel, done: make(chan error, 1)}
	go func() { s.done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	return s
}

// waitReady polls /readyz: MCP upstreams load their catalogues after start, and calls before that would find
// no tools.
func (s *started) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway not ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testConfig keeps the embedded store in memory and spills into the test's temp dir.
func testConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.Server.Listen = "127.0.0.1:0"
	cfg.Storage.SQLite.Path = ":memory:"
	cfg.Trace.SpillDir = t.TempDir()
	return cfg
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func TestOperationalRoutes(t *testing.T) {
	t.Parallel()
	const testAdminKey = "sk-ops-admin-0123456789abcdef"
	s := start(t, func(c *config.Config) {
		c.Governance = governance.Config{Secret: "ops-test-secret-0123456789", AdminKey: testAdminKey}
	}, func(a *App) {
		a.Fiber().Get("/boom", func(*fiber.Ctx) error { panic("secret-detail") })
		a.Fiber().Post("/echo", func(c *fiber.Ctx) error { return c.Send(c.Body()) })
	})
	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		contains                 []string
		absent                   []string
	}{
		{name: "healthz", method: "GET", path: "/healthz", status: 200, contains: []string{`"ok"`}},
		{name: "readyz", method: "GET", path: "/readyz", status: 200, contains: []string{`"ready"`}},
		{name: "panic answers JSON 500 without the panic value", method: "GET", path: "/boom", status: 500,
			contains: []string{`"type":"internal_error"`, `"request_id"`}, absent: []string{"secret-detail"}},
		{name: "unknown route answers JSON 404", method: "GET", path: "/nope", status: 404, contains: []string{`"not_found_error"`}},
		{name: "admin API error names the request", method: "GET", path: "/admin/keys", status: 401,
			contains: []string{`"request_id"`}},
		{name: "dashboard API error names the request", method: "GET", path: "/admin/spend?tema=x",
			header: map[string]string{"Authorization": "Bearer " + testAdminKey}, status: 400, contains: []string{`"request_id"`}},
		{name: "body under the limit passes", method: "POST", path: "/echo", body: "hello", status: 200, contains: []string{"hello"}},
		{name: "oversized header refused", method: "GET", path: "/healthz", header: map[string]string{"X-Big": strings.Repeat("a", 40<<10)},
			status: 431},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			send := func() (*http.Response, error) {
				req, _ := http.NewRequest(tc.method, s.url+tc.path, strings.NewReader(tc.body))
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				return http.DefaultClient.Do(req)
			}
			resp, err := send()
			// The server answers an oversized header at once and closes the connection; when that close
			// lands while the client is still writing the header, the client sees a reset instead of the
			// answer. Only a fresh attempt can show the answer.
			for attempt := 1; attempt < 5 && err != nil && (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)); attempt++ {
				resp, err = send()
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			for _, c := range tc.contains {
				if !strings.Contains(string(body), c) {
					t.Errorf("body %s lacks %s", body, c)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(string(body), a) {
					t.Errorf("body %s leaks %s", body, a)
				}
			}
		})
	}

	// After the table: the panic and the 404 must be counted with bounded route labels.
	_, metrics, _ := get(t, s.url+"/metrics")
	for _, want := range []string{
		`switchboard_http_requests_total{method="GET",route="/boom",status="500"} 1`,
		`route="unmatched",status="404"`,
		`switchboard_build_info{version="dev"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, "/nope") {
		t.Error("an unmatched path became a metric label")
	}
}

func TestBodyLimitFromConfig(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *config.Config) { c.Server.MaxBodyBytes = 1024 }, func(a *App) {
		a.Fiber().Post("/echo", func(c *fiber.Ctx) error { return c.Send(c.Body()) })
	})
	resp, err := http.Post(s.url+"/echo", "text/plain", strings.NewReader(strings.Repeat("x", 1025)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), `"request_too_large"`) {
		t.Fatalf("status %d body %s, want a JSON 413", resp.StatusCode, body)
	}
	// fasthttp refuses the body before any middleware runs; the answer still has its request id.
	if id := resp.Header.Get("X-Request-Id"); id == "" || !strings.Contains(string(body), `"request_id":"`+id+`"`) {
		t.Fatalf("413 with request id %q and body %s, want the same id in both", id, body)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	s := start(t, nil, nil)
	cases := []struct{ name, sent string }{
		{"kept when well-formed", "req-123.abc:9"},
		{"replaced when malformed", "bad id<script>"},
		{"replaced when huge", strings.Repeat("a", 500)},
		{"made when absent", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", s.url+"/healthz", nil)
			if tc.sent != "" {
				req.Header.Set("X-Request-ID", tc.sent)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Get("X-Request-ID")
			if validRequestID([]byte(tc.sent)) {
				if got != tc.sent {
					t.Errorf("got %q, want the caller's %q", got, tc.sent)
				}
				return
			}
			if got == "" || got == tc.sent || !validRequestID([]byte(got)) {
				t.Errorf("got %q for sent %q", got, tc.sent)
			}
		})
	}
}

func TestAppendRequestIDIsAUUIDv4(t *testing.T) {
	t.Parallel()
	// Version nibble 4, variant bits 10.
	uuidV4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 10000 {
		id := string(appendRequestID(nil))
		if !uuidV4.MatchString(id) {
			t.Fatalf("%q is not a lowercase version 4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
	}
}

func TestReadinessFollowsChecks(t *testing.T) {
	t.Parallel()
	healthy := make(chan bool, 1)
	healthy <- false
	s := start(t, nil, func(a *App) {
		a.AddReadiness("storage", func(context.Context) error {
			ok := <-healthy
			healthy <- ok
			if !ok {
				return errors.New("clickhouse unreachable")
			}
			return nil
		})
	})
	status, body, _ := get(t, s.url+"/readyz")
	if status != 503 || !strings.Contains(body, "clickhouse unreachable") {
		t.Fatalf("with a failing check: %d %s", status, body)
	}
	<-healthy
	healthy <- true
	if status, body, _ := get(t, s.url+"/readyz"); status != 200 {
		t.Fatalf("with passing checks: %d %s", status, body)
	}
}

// A request in flight when shutdown starts runs to completion; new connections are refused; hooks run after.
func TestShutdownDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	release := make(chan struct{})
	var hookRan bool
	s := start(t, nil, func(a *App) {
		a.Fiber().Get("/slow", func(c *fiber.Ctx) error {
			close(entered)
			<-release
			return c.SendString("finished")
		})
		a.OnShutdown(func(context.Context) error { hookRan = true; return nil })
	})

	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get(s.url + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{resp.StatusCode, string(b), err}
	}()
	<-entered
	s.stop() // what SIGTERM does in serve

	// Readiness flips (or the listener is already closed) while the slow request is still running.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			break
		}
		resp.Body.Close()
		if resp.StatusCode == 503 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	r := <-res
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Fatalf("in-flight request cut by shutdown: %+v", r)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after draining")
	}
	if !hookRan {
		t.Error("shutdown hook did not run")
	}
	s.done <- nil // for the cleanup's wait
}

func TestReloadChangesLogLevel(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	var buf strings.Builder
	log, level := NewLogger(cfg.Log, &buf)
	a, err := New(&cfg, log, level)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	next := cfg
	next.Log.Level = "debug"
	if err := a.Reload(&next); err != nil {
		t.Fatal(err)
	}
	log.Debug("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Fatalf("log level not reloaded: %s", buf.String())
	}
	bad := cfg
	bad.Log.Format = "xml"
	if err := a.Reload(&bad); err == nil {
		t.Fatal("Reload accepted an invalid config")
	}
	if a.Config().Log.Level != "debug" {
		t.Error("a rejected reload replaced the config")
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(buf.String(), "\n", 2)[0]), &line); err != nil {
		t.Errorf("json log format not JSON: %v", err)
	}
}

// A reload applies what it can and names, in the log, each changed setting that waits for a restart.
func TestReloadNamesWhatWaitsForARestart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		base   func(*config.Config) // nil: testConfig as it is
		change func(*config.Config)
		want   string // the section the warning names; "" for none
	}{
		{"log level applies at once", nil, func(c *config.Config) { c.Log.Level = "debug" }, ""},
		{"log format", nil, func(c *config.Config) { c.Log.Format = "text" }, "log.format"},
		{"server", nil, func(c *config.Config) { c.Server.MaxBodyBytes = 1 << 20 }, "server"},
		{"trace", nil, func(c *config.Config) { c.Trace.BatchSize = 100 }, "trace"},
		{"trace.otlp", nil, func(c *config.Config) { c.Trace.OTLP = otlpAt("http://127.0.0.1:19599") }, "trace"},
		// A reload reads the file anew: the same trace.otlp block is a new value, and no change.
		{"trace.otlp read again", func(c *config.Config) { c.Trace.OTLP = otlpAt("http://127.0.0.1:19599") },
			func(c *config.Config) { c.Trace.OTLP = otlpAt("http://127.0.0.1:19599") }, ""},
		{"storage", nil, func(c *config.Config) { c.Storage.SQLite.Path = "other.db" }, "storage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t)
			if tc.base != nil {
				tc.base(&cfg)
			}
			var buf lockedBuffer
			log, level := NewLogger(cfg.Log, &buf)
			a, err := New(&cfg, log, level)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.close(context.Background()) })
			next := cfg
			tc.change(&next)
			if err := a.Reload(&next); err != nil {
				t.Fatal(err)
			}
			var warned []string
			for line := range strings.Lines(buf.String()) {
				var rec struct{ Msg, Section string }
				if json.Unmarshal([]byte(line), &rec) == nil && strings.Contains(rec.Msg, "only on restart") {
					warned = append(warned, rec.Section)
				}
			}
			switch {
			case tc.want == "" && len(warned) > 0:
				t.Errorf("reload warned about %v, want no warning", warned)
			case tc.want != "" && (len(warned) != 1 || warned[0] != tc.want):
				t.Errorf("reload warned about %v, want [%s]", warned, tc.want)
			}
		})
	}
}

func otlpAt(endpoint string) *trace.OTLPConfig {
	return &trace.OTLPConfig{Endpoint: endpoint, Headers: map[string]string{"X-Api-Key": "k"}}
}

func TestProfilingNeedsTheAdminKey(t *testing.T) {
	t.Parallel()
	const admin = "sk-test-admin-000000000000000000"
	s := start(t, func(c *config.Config) {
		c.Governance = governance.Config{Secret: "pprof-test-secret-0123456789", AdminKey: admin,
			Keys: []governance.KeyConfig{{Name: "user", Key: goodKey}}}
	}, nil)
	cases := []struct {
		name, key string
		status    int
	}{
		{"no key", "", 401},
		{"a non-admin key", goodKey, 401},
		{"the admin key", admin, 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", s.url+"/admin/debug/pprof/heap?debug=1", nil)
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status == 200 && !strings.Contains(string(body), "heap profile") {
				t.Fatalf("not a heap profile: %.200s", body)
			}
		})
	}
}

// startUpstreams starts an LLM mock, an MCP mock named weather and an A2A agent named researcher on loopback,
// closed when the test ends.
func startUpstreams(t *testing.T, llmOpts mock.LLMOptions) (*mock.LLMServer, *mock.MCPServer, *mock.A2AServer) {
	t.Helper()
	llmUp, err := mock.StartLLM("127.0.0.1:0", llmOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { llmUp.Close() })
	toolUp, err := mock.StartMCP("127.0.0.1:0", mock.MCPOptions{Name: "weather"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { toolUp.Close() })
	agentUp, err := mock.StartA2A("127.0.0.1:0", mock.A2AOptions{Name: "researcher"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agentUp.Close() })
	return llmUp, toolUp, agentUp
}

// A listener that fails under a serving gateway ends Serve, and Serve closes what New opened on its way out.
func TestServeClosesTheGatewayWhenItsListenerFails(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	a, err := New(&cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(context.Background(), ln) }()
	if code, _, _ := get(t, "http://"+ln.Addr().String()+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d", code)
	}
	_ = ln.Close()
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return when its listener closed")
	}
	if err := a.Store().Ping(context.Background()); err == nil {
		t.Fatal("the store is still open after Serve returned")
	}
}
