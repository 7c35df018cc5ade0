package llm

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	openai "github.com/sashabaranov/go-openai"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// Keys of the test governance config.
const (
	keyAll     = "sk-test-all-0000000000000000000000"
	keyMini    = "sk-test-mini-000000000000000000000" // may use gpt-4o-mini only
	keyBroke   = "sk-test-broke-00000000000000000000" // budget of one nano-USD
	keyLimited = "sk-test-limited-000000000000000000" // 1 request per minute
	keyPrimary = "sk-test-primary-000000000000000000" // may use the "primary" group only
	keyFifty   = "sk-test-fifty-00000000000000000000" // budget of $0.05 a day
)

func testGovernance() governance.Config {
	return governance.Config{
		Secret: "test-secret-0123456789",
		Keys: []governance.KeyConfig{
			{Name: "all", Key: keyAll},
			{Name: "mini", Key: keyMini, Allow: governance.ACLConfig{Models: []string{"gpt-4o-mini"}}},
			{Name: "broke", Key: keyBroke, Budget: governance.BudgetConfig{USD: "0.000000001", Period: "daily"}},
			{Name: "limited", Key: keyLimited, Limits: governance.LimitsConfig{RPM: 1}},
			{Name: "primary-only", Key: keyPrimary, Allow: governance.ACLConfig{Models: []string{"primary"}}},
			{Name: "fifty", Key: keyFifty, Budget: governance.BudgetConfig{USD: "0.05", Period: "daily"}},
		},
	}
}

// spanSink collects every span the recorder writes.
type spanSink struct {
	mu      sync.Mutex
	spans   []trace.Span
	discard bool // benchmarks: keep nothing
}

func (s *spanSink) WriteSpans(_ context.Context, batch ...[]trace.Span) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, spans := range batch {
		if !s.discard {
			s.spans = append(s.spans, spans...)
		}
	}
	return nil
}

func (s *spanSink) snapshot() []trace.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]trace.Span(nil), s.spans...)
}

// harness is a gateway on a loopback port with real governance and tracing.
type harness struct {
	t    testing.TB
	gw   *Gateway
	url  string
	sink *spanSink
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, func(g Governor) Governor { return g })
}

// newHarnessWith is newHarness with the governor wrap returns in front of the real one.
func newHarnessWith(t testing.TB, cfg Config, wrap func(Governor) Governor) *harness {
	t.Helper()
	real, err := governance.New(testGovernance(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	gov := wrap(real)
	sink := &spanSink{}
	rec, err := trace.NewRecorder(trace.RecorderConfig{FlushInterval: 5 * time.Millisecond, SpillDir: t.TempDir()}, sink, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(cfg, Deps{Governor: gov, Tracer: trace.NewTracer(rec)})
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
		_ = app.ShutdownWithTimeout(5 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rec.Close(ctx)
	})
	return &harness{t: t, gw: gw, url: "http://" + ln.Addr().String(), sink: sink}
}

func (h *harness) client(key string) *openai.Client {
	cfg := openai.DefaultConfig(key)
	cfg.BaseURL = h.url + "/v1"
	return openai.NewClientWithConfig(cfg)
}

// waitSpans waits (bounded) until n spans named name were recorded.
func (h *harness) waitSpans(name string, n int) []trace.Span {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := h.spansNamed(name)
		if len(out) >= n || time.Now().After(deadline) {
			if len(out) < n {
				h.t.Fatalf("want %d spans named %q, got %d", n, name, len(out))
			}
			return out
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// spansNamed is the spans named name the sink holds now.
func (h *harness) spansNamed(name string) []trace.Span {
	var out []trace.Span
	for _, s := range h.sink.snapshot() {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func startMock(t *testing.T, opts mock.LLMOptions) *mock.LLMServer {
	t.Helper()
	m, err := mock.StartLLM("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// oneModel is a config with a single group served by the given deployments.
func oneModel(name string, deps ...DeploymentConfig) Config {
	return Config{
		Models: []ModelConfig{{Name: name, Deployments: deps}},
		Router: RouterConfig{RetryBackoff: time.Millisecond, Cooldown: time.Minute},
	}
}

func openaiDep(m *mock.LLMServer, model string) DeploymentConfig {
	return DeploymentConfig{Provider: ProviderOpenAI, BaseURL: m.URL + "/v1", Model: model, Timeout: 10 * time.Second}
}
