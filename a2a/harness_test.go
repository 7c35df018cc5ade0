package a2a_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"github.com/gofiber/fiber/v2"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// Keys of the test governance config.
const (
	keyAlice = "sk-test-alice-0123456789"
	keyBob   = "sk-test-bob-0123456789"
	keyCarol = "sk-test-carol-0123456789" // may only call "other"
	keyDave  = "sk-test-dave-0123456789"  // one agent call per minute
)

func governanceConfig() governance.Config {
	all := governance.ACLConfig{Agents: []string{"*"}}
	return governance.Config{
		Secret: "test-secret-0123456789abcdef",
		Keys: []governance.KeyConfig{
			{Name: "alice", Key: keyAlice, Allow: all},
			{Name: "bob", Key: keyBob, Allow: all},
			{Name: "carol", Key: keyCarol, Allow: governance.ACLConfig{Agents: []string{"other"}}},
			{Name: "dave", Key: keyDave, Allow: all, Limits: governance.LimitsConfig{AgentRPM: 1}},
		},
	}
}

// memSink keeps written spans for assertions.
type memSink struct {
	mu    sync.Mutex
	spans []trace.Span
}

func (s *memSink) WriteSpans(_ context.Context, batch ...[]trace.Span) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, spans := range batch {
		s.spans = append(s.spans, spans...)
	}
	return nil
}

// waitSpans polls until match finds enough spans or the deadline passes.
func (s *memSink) waitSpans(t testing.TB, n int, match func(trace.Span) bool) []trace.Span {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		var got []trace.Span
		for _, sp := range s.spans {
			if match(sp) {
				got = append(got, sp)
			}
		}
		s.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) < n {
				t.Fatalf("got %d matching spans, want %d", len(got), n)
			}
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type harness struct {
	t    testing.TB
	URL  string // gateway base, http://127.0.0.1:port
	GW   *sba2a.Gateway
	Sink *memSink
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// startMockAgent starts an in-process A2A agent, closed with the test.
func startMockAgent(t testing.TB, opts mock.A2AOptions) *mock.A2AServer {
	t.Helper()
	s, err := mock.StartA2A("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// startGateway serves the A2A gateway on a loopback port with a real
// governor and a recorder into memory.
func startGateway(t testing.TB, cfg sba2a.Config) *harness {
	t.Helper()
	return startGatewayLogging(t, cfg, quietLogger())
}

// startGatewayLogging is startGateway with the gateway's logs going to log.
func startGatewayLogging(t testing.TB, cfg sba2a.Config, log *slog.Logger) *harness {
	t.Helper()
	gov, err := governance.New(governanceConfig(), nil, quietLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	rec, err := trace.NewRecorder(trace.RecorderConfig{FlushInterval: 5 * time.Millisecond, SpillDir: t.TempDir()}, sink, nil, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	gw, err := sba2a.New(cfg, sba2a.Deps{Governor: gov, Tracer: trace.NewTracer(rec), Logger: log})
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
	return &harness{t: t, URL: "http://" + ln.Addr().String(), GW: gw, Sink: sink}
}

// authTransport adds the gateway key (and optionally a traceparent) to
// every request.
type authTransport struct {
	key, traceparent string
}

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+a.key)
	if a.traceparent != "" {
		r.Header.Set("traceparent", a.traceparent)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func authClient(key string) *http.Client {
	return &http.Client{Transport: authTransport{key: key}}
}

// client connects an a2a-go client to agent through the gateway, in the
// given protocol version, from the card the gateway serves for it.
func (h *harness) client(key, agent string, version a2a.ProtocolVersion) *a2aclient.Client {
	return h.clientWith(authClient(key), agent, version)
}

func (h *harness) clientWith(hc *http.Client, agent string, version a2a.ProtocolVersion) *a2aclient.Client {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resolver := &agentcard.Resolver{Client: hc, CardParser: a2av0.NewAgentCardParser()}
	card, err := resolver.Resolve(ctx, h.URL+"/a2a/"+agent, agentcard.WithRequestHeader(a2a.SvcParamVersion, string(version)))
	if err != nil {
		h.t.Fatalf("resolving card of %s: %v", agent, err)
	}
	var opt a2aclient.FactoryOption
	if version == a2av0.Version {
		opt = a2av0.WithJSONRPCTransport(a2av0.JSONRPCTransportConfig{Client: hc})
	} else {
		opt = a2aclient.WithJSONRPCTransport(hc)
	}
	c, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithDefaultsDisabled(), opt)
	if err != nil {
		h.t.Fatalf("client for %s: %v", agent, err)
	}
	return c
}

// post sends a raw JSON-RPC body and returns status, headers and body.
func (h *harness) post(path, key, version, body string) (int, http.Header, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if version != "" {
		req.Header.Set(a2a.SvcParamVersion, version)
	}
	return h.do(req)
}

func (h *harness) get(path, key, version string) (int, http.Header, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("x-api-key", key)
	}
	if version != "" {
		req.Header.Set(a2a.SvcParamVersion, version)
	}
	return h.do(req)
}

func (h *harness) do(req *http.Request) (int, http.Header, string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		h.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func textMessage(text string) *a2a.SendMessageRequest {
	return &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(text))}
}
