package mock

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// MCPOptions configure the MCP mock.
type MCPOptions struct {
	Name    string        // server name in the initialize/discover result; "mock-mcp" when empty
	Latency time.Duration // added to every tool call (honours cancellation)
	Tools   []string      // tools to register, from MCPToolNames and MCPOptInToolNames; MCPToolNames when empty
	Logger  *slog.Logger  // nil discards
}

// MCPToolNames lists the tools the MCP mock serves by default.
var MCPToolNames = []string{"get_forecast", "add", "slow", "fail"}

// MCPOptInToolNames lists the tools the mock serves only when named in
// MCPOptions.Tools.
var MCPOptInToolNames = []string{"pad"}

// maxPadBytes bounds the pad tool's answer.
const maxPadBytes = 256 << 20

// Validate reports tool names the mock does not know.
func (o MCPOptions) Validate() error {
	for i, name := range o.Tools {
		if !slices.Contains(MCPToolNames, name) && !slices.Contains(MCPOptInToolNames, name) {
			return fmt.Errorf("tools[%d]: unknown tool %q (known: %s)", i, name,
				strings.Join(slices.Concat(MCPToolNames, MCPOptInToolNames), ", "))
		}
	}
	return nil
}

// MCPServer is a running MCP mock served over Streamable HTTP.
type MCPServer struct {
	Server

	core  *server.MCPServer
	state *mcpState
}

// mcpState is what tests can read back from a mock MCP server.
type mcpState struct {
	latency time.Duration
	calls   atomic.Int64

	mu              sync.Mutex
	lastTraceparent string
}

// NewMCPServer builds the mock's MCP server for stdio or any transport.
// Unknown names in opts.Tools are skipped; call opts.Validate first to
// reject them.
func NewMCPServer(opts MCPOptions) *server.MCPServer {
	core, _ := newMCP(opts)
	return core
}

func newMCP(opts MCPOptions) (*server.MCPServer, *mcpState) {
	name := opts.Name
	if name == "" {
		name = "mock-mcp"
	}
	st := &mcpState{latency: opts.Latency}
	core := server.NewMCPServer(name, "1.0.0",
		server.WithToolCapabilities(true),
		server.WithResourceCapabilities(false, true),
		server.WithPromptCapabilities(true),
		server.WithLogging(),
		server.WithRecovery(),
	)
	names := opts.Tools
	if len(names) == 0 {
		names = MCPToolNames
	}
	for _, n := range names {
		if t, ok := st.tool(n); ok {
			core.AddTools(t)
		}
	}

	core.AddResource(
		mcp.NewResource("weather://cities", "cities",
			mcp.WithResourceDescription("Cities the forecast tool knows"),
			mcp.WithMIMEType("application/json")),
		func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			b, _ := json.Marshal(mockCities)
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: "application/json", Text: string(b)}}, nil
		})
	core.AddResourceTemplate(
		mcp.NewResourceTemplate("weather://forecast/{city}", "forecast",
			mcp.WithTemplateDescription("Today's forecast for a city"),
			mcp.WithTemplateMIMEType("text/plain")),
		func(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
			city := strings.TrimPrefix(req.Params.URI, "weather://forecast/")
			return []mcp.ResourceContents{mcp.TextResourceContents{URI: req.Params.URI, MIMEType: "text/plain", Text: forecast(city)}}, nil
		})
	core.AddPrompt(
		mcp.NewPrompt("weather_report",
			mcp.WithPromptDescription("Ask for a short weather report"),
			mcp.WithArgument("city", mcp.RequiredArgument(), mcp.ArgumentDescription("City to report on"))),
		func(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			city := req.Params.Arguments["city"]
			if city == "" {
				return nil, errors.New("argument city is required")
			}
			return mcp.NewGetPromptResult("Weather report for "+city, []mcp.PromptMessage{
				mcp.NewPromptMessage(mcp.RoleUser, mcp.NewTextContent("Write a two-line weather report for "+city+".")),
			}), nil
		})
	return core, st
}

var mockCities = []string{"Amsterdam", "Berlin", "Lisbon", "Paris", "Tokyo"}

// forecast is deterministic so tests can compare results across calls.
func forecast(city string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(strings.ToLower(city)))
	temp := int(h.Sum32()%30) + 5
	sky := []string{"sunny", "cloudy", "rainy", "windy"}[h.Sum32()%4]
	return fmt.Sprintf("Forecast for %s: %s, %d°C", city, sky, temp)
}

func (st *mcpState) tool(name string) (server.ServerTool, bool) {
	switch name {
	case "get_forecast":
		return server.ServerTool{
			Tool: mcp.NewTool("get_forecast",
				mcp.WithDescription("Today's forecast for a city"),
				mcp.WithString("city", mcp.Required(), mcp.Description("City name"))),
			Handler: st.handler(func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				city, err := req.RequireString("city")
				if err != nil {
					return mcp.NewToolResultError(err.Error()), nil
				}
				return mcp.NewToolResultText(forecast(city)), nil
			}),
		}, true
	case "add":
		return server.ServerTool{
			Tool: mcp.NewTool("add",
				mcp.WithDescription("Add two numbers"),
				mcp.WithNumber("a", mcp.Required()),
				mcp.WithNumber("b", mcp.Required())),
			Handler: st.handler(func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				a, errA := req.RequireFloat("a")
				b, errB := req.RequireFloat("b")
				if err := errors.Join(errA, errB); err != nil {
					return mcp.NewToolResultError(err.Error()), nil
				}
				return mcp.NewToolResultText(fmt.Sprint(a + b)), nil
			}),
		}, true
	case "slow":
		return server.ServerTool{
			Tool: mcp.NewTool("slow",
				mcp.WithDescription("Wait ms milliseconds, reporting progress when asked"),
				mcp.WithNumber("ms", mcp.Required(), mcp.Description("How long to wait"))),
			Handler: st.handler(slowTool),
		}, true
	case "pad":
		return server.ServerTool{
			Tool: mcp.NewTool("pad",
				mcp.WithDescription("Answer with a text of the given size, for answer-size tests"),
				mcp.WithNumber("bytes", mcp.Required(), mcp.Description("Size of the text, at most 256 MiB"))),
			Handler: st.handler(func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				n, err := req.RequireFloat("bytes")
				if err != nil || n < 0 || n > maxPadBytes {
					return mcp.NewToolResultError(fmt.Sprintf("bytes must be a number from 0 to %d", maxPadBytes)), nil
				}
				return mcp.NewToolResultText(strings.Repeat("x", int(n))), nil
			}),
		}, true
	case "fail":
		return server.ServerTool{
			Tool: mcp.NewTool("fail", mcp.WithDescription("Always returns a tool error")),
			Handler: st.handler(func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultError("mock tool failure"), nil
			}),
		}, true
	}
	return server.ServerTool{}, false
}

// slowProgressSteps is how many progress notifications slow sends.
const slowProgressSteps = 4

func slowTool(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	ms, err := req.RequireFloat("ms")
	if err != nil || ms < 0 {
		return mcp.NewToolResultError("ms must be a non-negative number"), nil
	}
	var token mcp.ProgressToken
	if req.Params.Meta != nil {
		token = req.Params.Meta.ProgressToken
	}
	step := time.Duration(ms*float64(time.Millisecond)) / slowProgressSteps
	srv := server.ServerFromContext(ctx)
	// Each notification goes out at the start of its step: mcp-go drops a
	// notification queued in the instant before the result is written.
	for i := range slowProgressSteps {
		if token != nil && srv != nil {
			// Best effort, like a real server: a client without a stream
			// to receive notifications still gets its result.
			_ = srv.SendNotificationToClient(ctx, string(mcp.MethodNotificationProgress), map[string]any{
				"progressToken": token,
				"progress":      i,
				"total":         slowProgressSteps,
				"message":       fmt.Sprintf("step %d of %d", i+1, slowProgressSteps),
			})
		}
		if i == 0 && srv != nil {
			// A log message, so that gateways can be tested for relaying
			// what a server logs while it works on a call. mcp-go sends it
			// only to a client that asked for info: in the request's _meta
			// (2026-07-28) or with logging/setLevel (2025-11-25).
			_ = srv.SendLogMessageToClient(ctx, mcp.NewLoggingMessageNotification(mcp.LoggingLevelInfo, "slow", fmt.Sprintf("waiting %gms", ms)))
		}
		if !sleepCtx(ctx.Done(), step) {
			return nil, ctx.Err()
		}
	}
	return mcp.NewToolResultText(fmt.Sprintf("waited %gms", ms)), nil
}

// handler wraps a tool with the mock's common behaviour: count the call,
// apply latency, and report the trace context it received.
func (st *mcpState) handler(h server.ToolHandlerFunc) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		st.calls.Add(1)
		metaTP := ""
		if req.Params.Meta != nil {
			metaTP, _ = req.Params.Meta.AdditionalFields["traceparent"].(string)
		}
		headerTP := req.Header.Get("traceparent")
		if tp := cmp.Or(metaTP, headerTP); tp != "" {
			st.mu.Lock()
			st.lastTraceparent = tp
			st.mu.Unlock()
		}
		if !sleepCtx(ctx.Done(), st.latency) {
			return nil, ctx.Err()
		}
		res, err := h(ctx, req)
		if err != nil || res == nil {
			return res, err
		}
		return withTraceparent(res, metaTP, headerTP), nil
	}
}

// withTraceparent records the received trace context in the result twice:
// in _meta for clients that read it, and as a last text line that survives
// proxies which rebuild _meta.
func withTraceparent(res *mcp.CallToolResult, metaTP, headerTP string) *mcp.CallToolResult {
	if metaTP == "" && headerTP == "" {
		return res
	}
	fields := map[string]any{}
	var lines []string
	if metaTP != "" {
		fields["traceparent"] = metaTP
		lines = append(lines, "traceparent="+metaTP)
	}
	if headerTP != "" {
		fields["http_traceparent"] = headerTP
		lines = append(lines, "http_traceparent="+headerTP)
	}
	res.Meta = mcp.NewMetaFromMap(fields)
	res.Content = append(res.Content, mcp.NewTextContent(strings.Join(lines, "\n")))
	return res
}

// StartMCP serves the MCP mock over Streamable HTTP at URL+"/mcp", speaking
// both the stateless 2026-07-28 protocol and 2025-11-25 sessions.
func StartMCP(addr string, opts MCPOptions) (*MCPServer, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("mock: mcp options: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mock: mcp listen: %w", err)
	}
	log := orDiscard(opts.Logger)
	core, st := newMCP(opts)
	streamable := server.NewStreamableHTTPServer(core,
		server.WithStateful(true),
		server.WithDisableLocalhostProtection(true),
		server.WithStreamableHTTPLogger(log),
	)
	mux := http.NewServeMux()
	mux.Handle("/mcp", streamable)
	m := &MCPServer{core: core, state: st}
	// Sessions hold GET streams open and a listening client may open a new
	// one while the server drains, so sessions are closed until it is idle.
	m.init(ln, serveHTTP(ln, mux, log, streamable.CloseSessions))
	return m, nil
}

// Calls counts tool calls the mock received.
func (m *MCPServer) Calls() int64 { return m.state.calls.Load() }

// LastTraceparent is the trace context of the latest tool call, from
// params._meta or else the HTTP header ("" if none).
func (m *MCPServer) LastTraceparent() string {
	m.state.mu.Lock()
	defer m.state.mu.Unlock()
	return m.state.lastTraceparent
}

// AddTool registers one of MCPToolNames; connected clients receive
// notifications/tools/list_changed.
func (m *MCPServer) AddTool(name string) error {
	t, ok := m.state.tool(name)
	if !ok {
		return fmt.Errorf("mock: unknown tool %q", name)
	}
	m.core.AddTools(t)
	return nil
}

// RemoveTool unregisters a tool; connected clients receive
// notifications/tools/list_changed.
func (m *MCPServer) RemoveTool(name string) {
	m.core.DeleteTools(name)
}
