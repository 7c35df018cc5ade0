package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	openai "github.com/sashabaranov/go-openai"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/llm"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	sbmcp "github.com/switchboard-gw/switchboard/mcp"
	"github.com/switchboard-gw/switchboard/storage"
	"github.com/switchboard-gw/switchboard/trace"
)

const drainKey = "sk-drain-test-0123456789abcdef"

// serveDone waits for Serve's result, failing after within.
func serveDone(t *testing.T, s *started, within time.Duration) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- nil // for the cleanup's wait
		return err
	case <-time.After(within):
		t.Fatalf("Serve did not return within %s of the shutdown", within)
		return nil
	}
}

// Streams still running when a shutdown is about to run out of server.shutdown_timeout end with their final
// error event, are recorded and billed (with estimated usage), and the spans reach the store; streams that end
// earlier are left alone.
func TestShutdownEndsLongStreamsAndBillsThem(t *testing.T) {
	t.Parallel()
	// 20 tokens a second: 200 words stream for ten seconds, 4 words in a fifth of a second.
	llmUp, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{TokensPerSecond: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { llmUp.Close() })
	s, client, storeCfg := startDrainLLM(t, llmUp.URL, nil)
	type outcome struct {
		text string
		err  error // io.EOF: the stream ended with [DONE]
	}
	run := func(words int, started *sync.WaitGroup, out chan<- outcome) {
		st, err := client.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
			Model: "oa", Stream: true,
			Messages: []openai.ChatCompletionMessage{{Role: "user", Content: strings.Repeat("word ", words)}},
		})
		started.Done()
		if err != nil {
			out <- outcome{err: err}
			return
		}
		defer st.Close()
		var text strings.Builder
		for {
			chunk, err := st.Recv()
			if err != nil {
				out <- outcome{text.String(), err}
				return
			}
			if len(chunk.Choices) > 0 {
				text.WriteString(chunk.Choices[0].Delta.Content)
			}
		}
	}
	const long = 3
	longs, short := make(chan outcome, long), make(chan outcome, 1)
	var started sync.WaitGroup
	started.Add(long + 1)
	for range long {
		go run(200, &started, longs)
	}
	go run(4, &started, short)
	started.Wait() // every stream has its first event
	shutdownAt := time.Now()
	s.stop()

	if r := <-short; !errors.Is(r.err, io.EOF) || r.text == "" {
		t.Errorf("a stream that ends before the shutdown's margin: text %.40q, end %v; want it complete with [DONE]", r.text, r.err)
	}
	for range long {
		r := <-longs
		var apiErr *openai.APIError
		if !errors.As(r.err, &apiErr) || !strings.Contains(apiErr.Message, "shutting down") || r.text == "" {
			t.Errorf("a stream cut by the shutdown: text %.40q, end %v; want events, then an error event saying the gateway shuts down",
				r.text, r.err)
		}
	}
	if err := serveDone(t, s, 5*time.Second); err != nil {
		t.Fatalf("Serve: %v, want nil: every stream was ended cleanly", err)
	}
	if took := time.Since(shutdownAt); took > 2*time.Second+500*time.Millisecond {
		t.Errorf("shutdown took %s, server.shutdown_timeout is 2s", took)
	}

	// What the store holds after the shutdown is what a restart rebuilds budgets from.
	store, spans := storedCalls(t, storeCfg, "chat oa")
	var cut, complete int
	var cost int64
	var keyID string
	for _, sp := range spans {
		cost += sp.CostNanoUSD
		keyID = sp.KeyID
		switch sp.Status {
		case trace.StatusOK:
			complete++
		case trace.StatusError:
			cut++
			if !hasAttr(sp, "usage", "estimated") || sp.CostNanoUSD <= 0 || !strings.Contains(sp.Error, "shutting down") {
				t.Errorf("span of a cut stream: attrs %v cost %d error %q; want usage=estimated, a cost, the shutdown as error",
					sp.Attrs, sp.CostNanoUSD, sp.Error)
			}
		}
	}
	if cut != long || complete != 1 {
		t.Fatalf("stored %d cut and %d complete stream spans, want %d and 1", cut, complete, long)
	}
	spent, err := store.SpendSince(context.Background(), storage.ScopeKey, keyID, shutdownAt.Add(-time.Minute))
	if err != nil || spent != cost || spent <= 0 {
		t.Fatalf("spend after restart %d (%v), want the spans' %d", spent, err, cost)
	}
}

// A stream whose upstream has not sent its headers yet when the shutdown's margin comes ends then too, with the
// error in OpenAI's shape, and its span reaches the store: before, it held the drain until
// server.shutdown_timeout (Serve failed with the drain's deadline) and its span came after the store closed.
func TestShutdownEndsLLMStreamWaitingForHeaders(t *testing.T) {
	t.Parallel()
	llmUp, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{Latency: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { llmUp.Close() })
	s, client, storeCfg := startDrainLLM(t, llmUp.URL, func(c *config.Config) { c.Router.Timeout = time.Minute })
	ended := make(chan error, 1)
	go func() {
		st, err := client.CreateChatCompletionStream(context.Background(), openai.ChatCompletionRequest{
			Model: "oa", Stream: true, Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hello"}},
		})
		if err == nil {
			st.Close()
		}
		ended <- err
	}()
	for llmUp.Requests() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	shutdownAt := time.Now()
	s.stop()

	var apiErr *openai.APIError
	if err := <-ended; !errors.As(err, &apiErr) || apiErr.HTTPStatusCode != http.StatusServiceUnavailable ||
		!strings.Contains(apiErr.Message, "shutting down") || apiErr.Code != "stream_ended" {
		t.Errorf("stream waiting for its upstream at the shutdown: %v; want OpenAI's error, 503 stream_ended, the gateway shutting down", err)
	}
	if err := serveDone(t, s, 5*time.Second); err != nil {
		t.Fatalf("Serve: %v, want nil: the stream was ended at the margin", err)
	}
	if took := time.Since(shutdownAt); took > 2*time.Second+500*time.Millisecond {
		t.Errorf("shutdown took %s, server.shutdown_timeout is 2s", took)
	}
	_, spans := storedCalls(t, storeCfg, "chat oa")
	if len(spans) != 1 || spans[0].Status != trace.StatusError || spans[0].HTTPStatus != http.StatusServiceUnavailable ||
		!strings.Contains(spans[0].Error, "shutting down") {
		t.Fatalf("stored spans %+v; want the stream's, an error naming the shutdown", spans)
	}
}

func hasAttr(sp trace.Span, key, value string) bool {
	for _, a := range sp.Attrs {
		if a.Key == key && a.Value == value {
			return true
		}
	}
	return false
}

// An MCP 2025-11-25 GET listening stream never ends by itself: a shutdown ends it at once rather than waiting
// out server.shutdown_timeout for it.
func TestShutdownEndsMCPListeningStreamAtOnce(t *testing.T) {
	t.Parallel()
	s := startWithWeather(t, nil)

	post := func(session, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, s.url+"/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+drainKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if session != "" {
			req.Header.Set("Mcp-Session-Id", session)
			req.Header.Set("MCP-Protocol-Version", "2025-11-25")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	init := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",`+
		`"capabilities":{},"clientInfo":{"name":"drain","version":"1"}}}`)
	session := init.Header.Get("Mcp-Session-Id")
	if init.StatusCode != http.StatusOK || session == "" {
		t.Fatalf("initialize: %d, session %q", init.StatusCode, session)
	}
	post(session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	req, _ := http.NewRequest(http.MethodGet, s.url+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer "+drainKey)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", session)
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	listen, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer listen.Body.Close()
	if listen.StatusCode != http.StatusOK || !strings.HasPrefix(listen.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET stream: %d %s", listen.StatusCode, listen.Header.Get("Content-Type"))
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, bufio.NewReader(listen.Body))
		ended <- err
	}()

	shutdownAt := time.Now()
	s.stop()
	if err := serveDone(t, s, 5*time.Second); err != nil {
		t.Fatalf("Serve: %v, want nil", err)
	}
	if took := time.Since(shutdownAt); took > 2*time.Second {
		t.Errorf("shutdown took %s with a listening stream open: it waited for the stream", took)
	}
	select {
	case err := <-ended:
		if err != nil {
			t.Errorf("the listening stream was cut (%v), want it ended cleanly", err)
		}
	case <-time.After(2 * time.Second):
		t.Error("the client's listening stream did not end")
	}
}

// A tools/call answered as an SSE stream (the upstream reports progress before its result) is a stream like an
// LLM one: still running when the shutdown is about to run out of server.shutdown_timeout, its client gets the
// JSON-RPC error for its request as the stream's last event, and the call is recorded and billed, in both
// protocol versions; the process does not wait for the tool's own timeout.
func TestShutdownEndsLongMCPToolCalls(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "spans.db")
	var storeCfg storage.Config
	s := startWithWeather(t, func(c *config.Config, server *sbmcp.ServerConfig) {
		// Over the 5 s a connection that has not sent a request yet takes to count as idle (fasthttp, as
		// net/http): a spare connection an HTTP client dialled would hold a shorter drain.
		c.Server.ShutdownTimeout = 6 * time.Second
		c.Storage.SQLite.Path = dbPath
		storeCfg = c.Storage
		server.Timeout, server.CostPerCallUSD = time.Minute, "0.002"
	})

	versions := []string{mcp.ProtocolVersion20260728, mcp.ProtocolVersion20251125}
	ended := make(chan error, len(versions))
	var progressed sync.WaitGroup
	for _, version := range versions {
		cli := dialMCP(t, s.url+"/mcp", drainKey, version)
		var once sync.Once
		progressed.Add(1)
		cli.OnNotification(func(n mcp.JSONRPCNotification) {
			if n.Method == string(mcp.MethodNotificationProgress) {
				once.Do(progressed.Done)
			}
		})
		go func() {
			req := mcp.CallToolRequest{}
			req.Params.Name = "weather__slow"
			req.Params.Arguments = map[string]any{"ms": 50000}
			req.Params.Meta = &mcp.Meta{ProgressToken: "p-" + version}
			res, err := cli.CallTool(context.Background(), req)
			if err == nil {
				err = fmt.Errorf("answered with a result (isError %v): %+v", res.IsError, res.Content)
			}
			ended <- err
		}()
	}
	progressed.Wait() // both calls are streams now
	shutdownAt := time.Now()
	s.stop()
	for range versions {
		select {
		case err := <-ended:
			if err == nil || !strings.Contains(err.Error(), "shutting down") {
				t.Errorf("a tool call cut by the shutdown ended with %v; want the JSON-RPC error saying the gateway shuts down", err)
			}
		case <-time.After(8 * time.Second):
			t.Fatal("a tool call was still running 8s after the shutdown began (server.shutdown_timeout is 6s)")
		}
	}
	if err := serveDone(t, s, 8*time.Second); err != nil {
		t.Fatalf("Serve: %v, want nil: every call was ended cleanly", err)
	}
	if took := time.Since(shutdownAt); took > 6*time.Second+500*time.Millisecond {
		t.Errorf("shutdown took %s, server.shutdown_timeout is 6s", took)
	}

	store, spans := storedCalls(t, storeCfg, "tools/call weather__slow")
	var cut int
	var keyID string
	for _, sp := range spans {
		cut++
		keyID = sp.KeyID
		if sp.Status != trace.StatusError || !strings.Contains(sp.Error, "shutting down") || sp.CostNanoUSD != 2_000_000 {
			t.Errorf("span of a cut tool call: status %s error %q cost %d; want an error span saying the gateway shuts down, costing the call",
				sp.Status, sp.Error, sp.CostNanoUSD)
		}
	}
	if cut != len(versions) {
		t.Fatalf("stored %d tool call spans, want %d", cut, len(versions))
	}
	spent, err := store.SpendSince(context.Background(), storage.ScopeKey, keyID, shutdownAt.Add(-time.Minute))
	if err != nil || spent != 2*2_000_000 {
		t.Fatalf("spend after restart %d (%v), want both calls' 4000000", spent, err)
	}
}

// dialMCP opens an initialised mcp-go client on url.
func dialMCP(t *testing.T, url, key, version string) *client.Client {
	t.Helper()
	tr, err := transport.NewStreamableHTTP(url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + key}))
	if err != nil {
		t.Fatal(err)
	}
	cli := client.NewClient(tr, client.WithProtocolVersion(version))
	if err := cli.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = version
	req.Params.ClientInfo = mcp.Implementation{Name: "drain", Version: "1"}
	if _, err := cli.Initialize(ctx, req); err != nil {
		t.Fatal(err)
	}
	return cli
}

// A 2026-07-28 subscriptions/listen stream never ends by itself, as a 2025-11-25 GET stream: a shutdown closes
// it at once (the transport's way for a server to end a subscription) rather than waiting out
// server.shutdown_timeout for it.
func TestShutdownEndsMCPSubscriptionAtOnce(t *testing.T) {
	t.Parallel()
	s := startWithWeather(t, nil)

	cli := dialMCP(t, s.url+"/mcp", drainKey, mcp.ProtocolVersion20260728)
	acknowledged := make(chan struct{})
	var once sync.Once
	cli.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationSubscriptionsAcknowledged) {
			once.Do(func() { close(acknowledged) })
		}
	})
	listening := make(chan error, 1)
	go func() { listening <- cli.Listen(context.Background(), mcp.SubscriptionFilter{ToolsListChanged: true}) }()
	select {
	case <-acknowledged:
	case err := <-listening:
		t.Fatalf("subscriptions/listen ended before the shutdown: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("subscriptions/listen was never acknowledged")
	}

	shutdownAt := time.Now()
	s.stop()
	if err := serveDone(t, s, 12*time.Second); err != nil {
		t.Fatalf("Serve: %v, want nil", err)
	}
	if took := time.Since(shutdownAt); took > 2*time.Second {
		t.Errorf("shutdown took %s with a subscription open: it waited for the stream", took)
	}
	select {
	case <-listening:
	case <-time.After(2 * time.Second):
		t.Error("the client's subscription did not end")
	}
}

// A client that closes a tool call's stream cancels the call (2026-07-28's way to cancel over HTTP): once the
// gateway's next write to the stream fails, the upstream request is cancelled and the span says so, instead of the
// call running to its end for nobody.
func TestMCPToolCallStreamClosedByClientIsCancelled(t *testing.T) {
	t.Parallel()
	dbPath := filepath.Join(t.TempDir(), "spans.db")
	var storeCfg storage.Config
	s := startWithWeather(t, func(c *config.Config, server *sbmcp.ServerConfig) {
		c.Storage.SQLite.Path = dbPath
		storeCfg = c.Storage
		server.Timeout = time.Minute
	})

	// Four progress steps of 1.5 s: the call would take 6 s.
	body := `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"weather__slow","arguments":{"ms":6000},` +
		`"_meta":{"progressToken":"t","io.modelcontextprotocol/protocolVersion":"2026-07-28",` +
		`"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}}}}`
	req, _ := http.NewRequest(http.MethodPost, s.url+"/mcp", strings.NewReader(body))
	for k, v := range map[string]string{"Authorization": "Bearer " + drainKey, "Content-Type": "application/json",
		"Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2026-07-28",
		"Mcp-Method": "tools/call", "Mcp-Name": "weather__slow"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("the call's stream: %s %q, %v", resp.Header.Get("Content-Type"), first, err)
	}
	resp.Body.Close()
	closedAt := time.Now()

	var sp trace.Span
	deadline := time.Now().Add(10 * time.Second)
	for {
		store, err := storage.Open(context.Background(), storeCfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		recent, _ := store.RecentTraces(context.Background(), storage.TraceFilter{Limit: 5})
		for _, sum := range recent {
			if nodes, err := store.Trace(context.Background(), sum.TraceID); err == nil && len(nodes) == 1 {
				sp = nodes[0].Span
			}
		}
		store.Close()
		if sp.Name != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if sp.Name != "tools/call weather__slow" || sp.Status != trace.StatusError || sp.Error != "cancelled by the client" ||
		sp.CostNanoUSD != 0 {
		t.Fatalf("span of the call whose stream the client closed: %+v", sp)
	}
	if ended := sp.Start.Add(sp.Duration); ended.Sub(closedAt) > 4*time.Second {
		t.Errorf("the call ran %s after its client closed the stream: it was not cancelled", ended.Sub(closedAt))
	}
}

// startWithWeather starts the mock MCP server weather and a gateway that federates it for drainKey; tune, when
// set, adjusts the server's entry and the rest of the config.
func startWithWeather(t *testing.T, tune func(*config.Config, *sbmcp.ServerConfig)) *started {
	t.Helper()
	toolUp, err := mock.StartMCP("127.0.0.1:0", mock.MCPOptions{Name: "weather"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { toolUp.Close() })
	s := start(t, func(c *config.Config) {
		c.Server.ShutdownTimeout = 10 * time.Second
		server := sbmcp.ServerConfig{Name: "weather", URL: toolUp.URL + "/mcp"}
		c.Governance = governance.Config{Secret: "drain-governance-secret-0123456789", Keys: []governance.KeyConfig{{Name: "k", Key: drainKey}}}
		if tune != nil {
			tune(c, &server)
		}
		c.MCP = sbmcp.Config{Servers: []sbmcp.ServerConfig{server}}
	}, nil)
	s.waitReady(t)
	return s
}

// storedCalls opens the store a stopped gateway wrote (closed at the test's end) and returns it with the spans
// named name among its recent traces, each of which must be a single call.
func storedCalls(t *testing.T, cfg storage.Config, name string) (storage.Store, []trace.Span) {
	t.Helper()
	store, err := storage.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	recent, err := store.RecentTraces(context.Background(), storage.TraceFilter{Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	var out []trace.Span
	for _, sum := range recent {
		nodes, err := store.Trace(context.Background(), sum.TraceID)
		if err != nil || len(nodes) != 1 {
			t.Fatalf("trace %s: %d roots, %v", sum.TraceID, len(nodes), err)
		}
		if nodes[0].Span.Name == name {
			out = append(out, nodes[0].Span)
		}
	}
	return store, out
}

// startDrainLLM runs a gateway with a 2 s shutdown timeout, one model "oa" on upstream and its spans in SQLite, with
// tweak's changes, and returns it, a go-openai client with its key and its store's config.
func startDrainLLM(t *testing.T, upstream string, tweak func(*config.Config)) (*started, *openai.Client, storage.Config) {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "spans.db")
	var storeCfg storage.Config
	s := start(t, func(c *config.Config) {
		c.Server.ShutdownTimeout = 2 * time.Second
		c.Storage.SQLite.Path = dbPath
		storeCfg = c.Storage
		c.Models = []llm.ModelConfig{{Name: "oa", Deployments: []llm.DeploymentConfig{{
			Provider: llm.ProviderOpenAI, BaseURL: upstream + "/v1", Model: "gpt-4o-mini"}}}}
		c.Governance = governance.Config{Secret: "drain-governance-secret-0123456789", Keys: []governance.KeyConfig{{Name: "k", Key: drainKey}}}
		if tweak != nil {
			tweak(c)
		}
	}, nil)
	s.waitReady(t)
	cc := openai.DefaultConfig(drainKey)
	cc.BaseURL = s.url + "/v1"
	return s, openai.NewClientWithConfig(cc), storeCfg
}
