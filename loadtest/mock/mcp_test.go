package mock

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

const otherTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func startMCP(t *testing.T, opts MCPOptions) *MCPServer {
	t.Helper()
	s, err := StartMCP("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// notifications collects what the server pushed to a client.
type notifications struct {
	mu  sync.Mutex
	got []mcp.JSONRPCNotification
}

func newNotifications() *notifications { return &notifications{} }

func (n *notifications) handle(note mcp.JSONRPCNotification) {
	n.mu.Lock()
	n.got = append(n.got, note)
	n.mu.Unlock()
}

func (n *notifications) count(method string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, note := range n.got {
		if note.Method == method {
			c++
		}
	}
	return c
}

// waitFor polls cond until it holds, failing the test after a generous bound.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func connectMCP(t *testing.T, tr transport.Interface, version string) (*client.Client, *notifications, *mcp.InitializeResult) {
	t.Helper()
	var opts []client.ClientOption
	if version != "" {
		opts = append(opts, client.WithProtocolVersion(version))
	}
	c := client.NewClient(tr, opts...)
	notes := newNotifications()
	c.OnNotification(notes.handle)
	if err := c.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	init, err := c.Initialize(testCtx(t), mcp.InitializeRequest{Params: mcp.InitializeParams{
		ClientInfo: mcp.Implementation{Name: "mock-test", Version: "1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c, notes, init
}

func callTool(t *testing.T, ctx context.Context, c *client.Client, name string, args map[string]any, meta *mcp.Meta) (*mcp.CallToolResult, error) {
	t.Helper()
	return c.CallTool(ctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: name, Arguments: args, Meta: meta}})
}

func texts(res *mcp.CallToolResult) []string {
	var out []string
	for _, c := range res.Content {
		if tc, ok := mcp.AsTextContent(c); ok {
			out = append(out, tc.Text)
		}
	}
	return out
}

// exerciseMCP runs the same checks over any transport; withHTTP says
// whether the HTTP traceparent header is expected back.
func exerciseMCP(t *testing.T, c *client.Client, notes *notifications, withHTTP bool) {
	tools, err := c.ListTools(testCtx(t), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if want := []string{"add", "fail", "get_forecast", "slow"}; !slices.Equal(names, want) {
		t.Fatalf("tools %v, want %v", names, want)
	}

	meta := &mcp.Meta{AdditionalFields: map[string]any{"traceparent": testTraceparent}}
	res, err := callTool(t, testCtx(t), c, "get_forecast", map[string]any{"city": "Paris"}, meta)
	if err != nil {
		t.Fatal(err)
	}
	got := texts(res)
	if res.IsError || len(got) != 2 || got[0] != forecast("Paris") || !strings.Contains(got[1], "traceparent="+testTraceparent) {
		t.Fatalf("get_forecast: %v", got)
	}
	if res.Meta == nil || res.Meta.AdditionalFields["traceparent"] != testTraceparent {
		t.Fatalf("result _meta %+v", res.Meta)
	}
	if withHTTP && (res.Meta.AdditionalFields["http_traceparent"] != otherTraceparent || !strings.Contains(got[1], "http_traceparent="+otherTraceparent)) {
		t.Fatalf("HTTP traceparent not echoed: %v %+v", got, res.Meta)
	}

	res, err = callTool(t, testCtx(t), c, "add", map[string]any{"a": 2, "b": 3.5}, nil)
	if err != nil || res.IsError || texts(res)[0] != "5.5" {
		t.Fatalf("add: %v %v", err, res)
	}
	res, err = callTool(t, testCtx(t), c, "fail", nil, nil)
	if err != nil || !res.IsError {
		t.Fatalf("fail: %v %+v", err, res)
	}

	res, err = callTool(t, testCtx(t), c, "slow", map[string]any{"ms": 200}, &mcp.Meta{ProgressToken: "p-1"})
	if err != nil || res.IsError {
		t.Fatalf("slow: %v %+v", err, res)
	}
	waitFor(t, func() bool { return notes.count(string(mcp.MethodNotificationProgress)) >= slowProgressSteps })
	if n := notes.count(string(mcp.MethodNotificationProgress)); n != slowProgressSteps {
		t.Fatalf("progress notifications %d, want %d", n, slowProgressSteps)
	}

	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	if _, err := callTool(t, ctx, c, "slow", map[string]any{"ms": 60000}, nil); err == nil {
		t.Fatal("cancelled slow call returned a result")
	}

	rr, err := c.ReadResource(testCtx(t), mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "weather://cities"}})
	if err != nil || len(rr.Contents) != 1 || !strings.Contains(rr.Contents[0].(mcp.TextResourceContents).Text, "Lisbon") {
		t.Fatalf("cities: %v %+v", err, rr)
	}
	rr, err = c.ReadResource(testCtx(t), mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "weather://forecast/Tokyo"}})
	if err != nil || rr.Contents[0].(mcp.TextResourceContents).Text != forecast("Tokyo") {
		t.Fatalf("template: %v %+v", err, rr)
	}
	templates, err := c.ListResourceTemplates(testCtx(t), mcp.ListResourceTemplatesRequest{})
	if err != nil || len(templates.ResourceTemplates) != 1 {
		t.Fatalf("templates: %v %+v", err, templates)
	}
	p, err := c.GetPrompt(testCtx(t), mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: "weather_report", Arguments: map[string]string{"city": "Berlin"}}})
	if err != nil || len(p.Messages) != 1 || !strings.Contains(p.Messages[0].Content.(mcp.TextContent).Text, "Berlin") {
		t.Fatalf("prompt: %v %+v", err, p)
	}
}

func TestMCPOverStreamableHTTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		version string
	}{
		{"stateless 2026-07-28", mcp.ProtocolVersion20260728},
		{"sessions 2025-11-25", mcp.ProtocolVersion20251125},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startMCP(t, MCPOptions{Name: "weather"})
			tr, err := transport.NewStreamableHTTP(s.URL+"/mcp", transport.WithHTTPHeaders(map[string]string{"traceparent": otherTraceparent}))
			if err != nil {
				t.Fatal(err)
			}
			c, notes, init := connectMCP(t, tr, tt.version)
			if init.ProtocolVersion != tt.version || init.ServerInfo.Name != "weather" {
				t.Fatalf("negotiated %q with %q", init.ProtocolVersion, init.ServerInfo.Name)
			}
			if hasSession := c.GetSessionId() != ""; hasSession != (tt.version == mcp.ProtocolVersion20251125) {
				t.Fatalf("session id %q for %s", c.GetSessionId(), tt.version)
			}
			exerciseMCP(t, c, notes, true)
			if s.LastTraceparent() == "" || s.Calls() < 5 {
				t.Fatalf("LastTraceparent %q Calls %d", s.LastTraceparent(), s.Calls())
			}
		})
	}
}

func TestMCPOverStdioPipe(t *testing.T) {
	t.Parallel()
	core := NewMCPServer(MCPOptions{})
	clientToServer, serverIn := io.Pipe()
	serverOut, serverToClient := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- server.NewStdioServer(core).Listen(ctx, clientToServer, serverToClient) }()
	t.Cleanup(func() {
		cancel()
		_ = serverIn.Close()
		_ = serverToClient.Close()
		<-done
	})
	c, notes, _ := connectMCP(t, transport.NewIO(serverOut, serverIn, io.NopCloser(strings.NewReader(""))), "")
	exerciseMCP(t, c, notes, false)
}

func TestMCPToolListChanged(t *testing.T) {
	t.Parallel()
	s := startMCP(t, MCPOptions{Tools: []string{"add", "fail"}})
	tr, err := transport.NewStreamableHTTP(s.URL+"/mcp",
		//lint:ignore SA1019 the 2025-11-25 session protocol delivers list_changed on this GET stream, which is what is tested
		transport.WithContinuousListening(),
		transport.WithHTTPLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	c, notes, _ := connectMCP(t, tr, mcp.ProtocolVersion20251125)
	toolNames := func() []string {
		res, err := c.ListTools(testCtx(t), mcp.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		slices.Sort(names)
		return names
	}
	if got := toolNames(); !slices.Equal(got, []string{"add", "fail"}) {
		t.Fatalf("tools %v", got)
	}
	// The GET stream opens asynchronously: toggle until a change arrives
	// rather than guess how long the stream takes to open.
	waitFor(t, func() bool {
		s.RemoveTool("fail")
		if err := s.AddTool("fail"); err != nil {
			t.Fatal(err)
		}
		return notes.count(string(mcp.MethodNotificationToolsListChanged)) > 0
	})
	s.RemoveTool("fail")
	if got := toolNames(); !slices.Equal(got, []string{"add"}) {
		t.Fatalf("after RemoveTool: %v", got)
	}
	if err := s.AddTool("get_forecast"); err != nil {
		t.Fatal(err)
	}
	if got := toolNames(); !slices.Equal(got, []string{"add", "get_forecast"}) {
		t.Fatalf("after AddTool: %v", got)
	}
	if err := s.AddTool("nope"); err == nil {
		t.Fatal("unknown tool accepted")
	}
}

func TestMCPOptionsValidate(t *testing.T) {
	t.Parallel()
	if err := (MCPOptions{Tools: []string{"add", "bogus"}}).Validate(); err == nil || !strings.Contains(err.Error(), "tools[1]") {
		t.Fatalf("got %v", err)
	}
	if _, err := StartMCP("127.0.0.1:0", MCPOptions{Tools: []string{"bogus"}}); err == nil {
		t.Fatal("StartMCP accepted an unknown tool")
	}
}
