package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// FuzzEdge posts arbitrary JSON-RPC messages to /mcp of a gateway in front
// of an HTTP mock on loopback, through the whole edge (size check,
// authentication, the cancellation and resource interception, mcp-go).
// Properties: every message gets an answer in bounded time, never a 5xx
// (the gateway did not fail), and a JSON answer is a JSON-RPC 2.0 message.
func FuzzEdge(f *testing.F) {
	url := startFuzzGateway(f)
	client := &http.Client{Timeout: 10 * time.Second}
	seeds := []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"weather__add","arguments":{"a":1,"b":2}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"weather__get_forecast","arguments":{"city":"Paris"},"_meta":{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///etc/passwd"}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"x"}}`,
		`{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"weather__nope"}}`,
		`{"jsonrpc":"2.0","id":5,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"f","version":"1"}}}`,
		`[{"jsonrpc":"2.0","id":6,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":{"x":1},"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"weather__fail"}}`,
		`not json`,
	}
	for i, s := range seeds {
		f.Add([]byte(s), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, body []byte, stateless bool) {
		req, err := http.NewRequest(http.MethodPost, url+"/mcp", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+keyAll)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if stateless {
			req.Header.Set(mcp.HeaderProtocolVersion, mcp.ProtocolVersion20260728)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		defer resp.Body.Close()
		reply, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%q: reading the answer: %v", body, err)
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("%q answered %d: %s", body, resp.StatusCode, reply)
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || len(bytes.TrimSpace(reply)) == 0 {
			return
		}
		var msg struct {
			JSONRPC string `json:"jsonrpc"`
		}
		if err := json.Unmarshal(reply, &msg); err != nil {
			var batch []json.RawMessage
			if json.Unmarshal(reply, &batch) != nil {
				t.Fatalf("%q answered non-JSON %q", body, reply)
			}
			return
		}
		if msg.JSONRPC != "2.0" {
			t.Fatalf("%q answered %q", body, reply)
		}
	})
}

// startFuzzGateway serves /mcp in front of an HTTP mock whose tools all
// answer at once (no "slow"), so every fuzzed call is bounded.
func startFuzzGateway(tb testing.TB) string {
	tb.Helper()
	weather, err := mock.StartMCP("127.0.0.1:0", mock.MCPOptions{Name: "weather", Tools: []string{"get_forecast", "add", "fail"}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = weather.Close() })
	rec, err := trace.NewRecorder(trace.RecorderConfig{FlushInterval: 50 * time.Millisecond, SpillDir: tb.TempDir()}, &spanSink{}, nil, quietLogger())
	if err != nil {
		tb.Fatal(err)
	}
	cfg := Config{Servers: []ServerConfig{{Name: "weather", URL: weather.URL + "/mcp", CostPerCallUSD: "0.001", Timeout: 5 * time.Second}}}
	gw, err := New(cfg, Deps{Governor: newGovernor(tb), Tracer: trace.NewTracer(rec), Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	gw.Register(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	tb.Cleanup(func() {
		_ = app.ShutdownWithTimeout(2 * time.Second)
		_ = gw.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = rec.Close(ctx)
	})
	e := &env{gw: gw}
	e.waitTools(tb, func(names []string) bool { return len(names) >= 3 })
	return "http://" + ln.Addr().String()
}
