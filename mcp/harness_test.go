package mcp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// mockBin is the mock MCP binary, run as a stdio upstream.
var mockBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mcp-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mockBin = filepath.Join(dir, "mock")
	build := exec.Command("go", "build", "-o", mockBin, "github.com/switchboard-gw/switchboard/loadtest/cmd/mock")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the mock:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Test keys.
const (
	keyAll     = "sk-sb-test-all-0123456789abcdefABCDEF"
	keyWeather = "sk-sb-test-weather-0123456789abcdefAB"
	keyLimited = "sk-sb-test-limited-0123456789abcdefAB"
)

// spanSink keeps recorded spans for assertions.
type spanSink struct {
	mu    sync.Mutex
	spans []trace.Span
}

func (s *spanSink) WriteSpans(_ context.Context, batch ...[]trace.Span) error {
	s.mu.Lock()
	for _, spans := range batch {
		s.spans = append(s.spans, spans...)
	}
	s.mu.Unlock()
	return nil
}

func (s *spanSink) find(pred func(trace.Span) bool) (trace.Span, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.spans {
		if pred(sp) {
			return sp, true
		}
	}
	return trace.Span{}, false
}

// env is a running gateway with its upstreams.
type env struct {
	gw      *Gateway
	url     string // http://127.0.0.1:port
	weather *mock.MCPServer
	spans   *spanSink
	cfg     Config
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newGovernor(t testing.TB) *governance.Governor {
	t.Helper()
	gov, err := governance.New(governance.Config{
		Secret: "mcp-test-secret-0123456789abcdef",
		Keys: []governance.KeyConfig{
			{Name: "all", Key: keyAll},
			{Name: "weather", Key: keyWeather, Allow: governance.ACLConfig{Tools: []string{"weather__*"}}},
			{Name: "limited", Key: keyLimited, Limits: governance.LimitsConfig{ToolRPM: 1}},
		},
	}, nil, quietLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return gov
}

// start runs a gateway federating an HTTP mock ("weather") and a stdio mock
// ("files"), and waits until both catalogues are listed.
func start(t testing.TB, mutate func(*Config)) *env {
	t.Helper()
	return startLogged(t, mutate, quietLogger())
}

// startLogged is start with the gateway logging to log.
func startLogged(t testing.TB, mutate func(*Config), log *slog.Logger) *env {
	t.Helper()
	return startWith(t, mutate, log, nil)
}

// testSessionSecret keys the session IDs of every test gateway, as
// governance.secret does those of replicas.
var testSessionSecret = []byte("mcp-test-session-secret")

// startWith is startLogged with deps, when not nil, changing the gateway's
// collaborators (a governor in front of the real one, another session secret).
func startWith(t testing.TB, mutate func(*Config), log *slog.Logger, deps func(*Deps)) *env {
	t.Helper()
	weather, err := mock.StartMCP("127.0.0.1:0", mock.MCPOptions{Name: "weather"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = weather.Close() })
	cfg := Config{Servers: []ServerConfig{
		{Name: "weather", URL: weather.URL + "/mcp", CostPerCallUSD: "0.001", ToolCostsUSD: map[string]string{"add": "0.000000002"}, Timeout: 5 * time.Second},
		{Name: "files", Command: []string{mockBin, "mcp", "--stdio"}, Timeout: 5 * time.Second},
	}}
	if mutate != nil {
		mutate(&cfg)
	}
	sink := &spanSink{}
	rec, err := trace.NewRecorder(trace.RecorderConfig{FlushInterval: 10 * time.Millisecond, SpillDir: t.TempDir()}, sink, nil, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	d := Deps{Governor: newGovernor(t), Tracer: trace.NewTracer(rec), Logger: log, SessionSecret: testSessionSecret}
	if deps != nil {
		deps(&d)
	}
	gw, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	gw.Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() {
		_ = app.ShutdownWithTimeout(2 * time.Second)
		_ = gw.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = rec.Close(ctx)
	})
	e := &env{gw: gw, url: "http://" + ln.Addr().String(), weather: weather, spans: sink, cfg: cfg}
	want := make([]string, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		want = append(want, s.Name+"__add")
	}
	e.waitTools(t, func(names []string) bool {
		for _, w := range want {
			if !slices.Contains(names, w) {
				return false
			}
		}
		return true
	})
	return e
}

// federatedTools are the tool names the federated view holds (no ACL).
func (e *env) federatedTools() []string {
	var names []string
	for name := range e.gw.federated.srv.ListTools() {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// waitTools polls the federated catalogue (bounded) until ok holds.
func (e *env) waitTools(t testing.TB, ok func([]string) bool) {
	t.Helper()
	eventually(t, 15*time.Second, func() bool { return ok(e.federatedTools()) }, "federated tools")
}

func eventually(t testing.TB, within time.Duration, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Protocol versions the tests speak.
var protocols = []struct {
	name    string
	version string
}{
	{"stateless-2026-07-28", mcp.ProtocolVersion20260728},
	{"sessions-2025-11-25", mcp.ProtocolVersion20251125},
}

// connect opens an initialised mcp-go client on path with key.
func (e *env) connect(t testing.TB, path, key, version string, opts ...transport.StreamableHTTPCOption) *client.Client {
	t.Helper()
	cli, err := e.dial(path, key, version, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func (e *env) dial(path, key, version string, opts ...transport.StreamableHTTPCOption) (*client.Client, error) {
	opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + key}),
		transport.WithHTTPLogger(quietLogger()))
	tr, err := transport.NewStreamableHTTP(e.url+path, opts...)
	if err != nil {
		return nil, err
	}
	cli := client.NewClient(tr, client.WithProtocolVersion(version))
	// Start's context bounds the client's listening GET stream for its whole
	// life (Close ends it), not only the handshake.
	if err := cli.Start(context.Background()); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = version
	req.Params.ClientInfo = mcp.Implementation{Name: "test", Version: "1"}
	if _, err := cli.Initialize(ctx, req); err != nil {
		_ = cli.Close()
		return nil, err
	}
	return cli, nil
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func callTool(ctx context.Context, cli *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	return cli.CallTool(ctx, req)
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

func toolNames(tools []mcp.Tool) []string {
	out := make([]string, len(tools))
	for i, t := range tools {
		out[i] = t.Name
	}
	slices.Sort(out)
	return out
}
