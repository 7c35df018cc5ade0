package mcp

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/mark3labs/mcp-go/mcp"
)

// statelessPost sends one 2026-07-28 tools/call as a client does, with its
// Mcp-Name header as given.
func statelessPost(t *testing.T, url, key, mcpName, body string) httpReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Protocol-Version", mcp.ProtocolVersion20260728)
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", mcpName)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpReply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// takenByGateway reports whether statelessCall answers the request itself,
// calling it as Gateway.serve does.
func (e *env) takenByGateway(t *testing.T, server, key, mcpName, body string) bool {
	t.Helper()
	p, err := e.gw.gov.Authenticate(key)
	if err != nil {
		t.Fatal(err)
	}
	taken := false
	app := fiber.New()
	app.Post("/", func(c *fiber.Ctx) error {
		taken = e.gw.view(server).statelessCall(c, p)
		return nil
	})
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Mcp-Protocol-Version", mcp.ProtocolVersion20260728)
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", mcpName)
	if _, err := app.Test(req, 10000); err != nil {
		t.Fatal(err)
	}
	return taken
}

// Trace IDs and retry delays differ from one answer to the next.
var (
	traceIDs    = regexp.MustCompile(`00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]`)
	retryDelays = regexp.MustCompile(`retry after [0-9.]+m?s|"retryAfterMs":[0-9]+`)
)

func sameAs(body string) string {
	return retryDelays.ReplaceAllString(traceIDs.ReplaceAllString(body, "TP"), "RETRY")
}

// TestStatelessCallAnswersLikeMCPGo holds the gateway's own tools/call path
// to mcp-go's: the same request, once as clients send it (answered by
// statelessCall) and once with its Mcp-Name header in the Base64 form the
// protocol allows (which statelessCall leaves to mcp-go), must get the same
// status, content type and body, trace IDs aside.
func TestStatelessCallAnswersLikeMCPGo(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	tests := []struct {
		name, path, key, tool, body string
		wantType                    string
	}{
		{"http upstream", "/mcp", keyAll, "weather__get_forecast",
			`{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"weather__get_forecast","arguments":{"city":"Lisbon"},` + meta + `}}`,
			"application/json"},
		{"numeric id", "/mcp", keyAll, "weather__add",
			`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"weather__add","arguments":{"a":2,"b":40},` + meta + `}}`,
			"application/json"},
		{"tool error result", "/mcp", keyAll, "weather__fail",
			`{"jsonrpc":"2.0","id":"c2","method":"tools/call","params":{"name":"weather__fail",` + meta + `}}`,
			"application/json"},
		{"invalid arguments", "/mcp", keyAll, "weather__add",
			`{"jsonrpc":"2.0","id":"c3","method":"tools/call","params":{"name":"weather__add","arguments":{"a":"x"},` + meta + `}}`,
			"application/json"},
		{"stdio upstream", "/mcp", keyAll, "files__add",
			`{"jsonrpc":"2.0","id":"c4","method":"tools/call","params":{"name":"files__add","arguments":{"a":1,"b":2},` + meta + `}}`,
			"application/json"},
		{"server endpoint", "/mcp/weather", keyAll, "get_forecast",
			`{"jsonrpc":"2.0","id":"c5","method":"tools/call","params":{"name":"get_forecast","arguments":{"city":"Oslo"},` + meta + `}}`,
			"application/json"},
		{"trace context from the caller", "/mcp", keyAll, "weather__get_forecast",
			`{"jsonrpc":"2.0","id":"c6","method":"tools/call","params":{"name":"weather__get_forecast","arguments":{"city":"Rome"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}`,
			"application/json"},
		// A result the gateway makes itself gets the 2026-07-28 fields
		// (resultType, serverInfo) an upstream's result already has. The
		// first call spends the key's one call a minute.
		{"denied", "/mcp", keyLimited, "weather__get_forecast",
			`{"jsonrpc":"2.0","id":"c8","method":"tools/call","params":{"name":"weather__get_forecast","arguments":{"city":"Oslo"},` + meta + `}}`,
			"application/json"},
		// The upstream logs while slow runs: the answer becomes an SSE
		// stream of the log message and the response.
		{"log message", "/mcp", keyAll, "weather__slow",
			`{"jsonrpc":"2.0","id":"c7","method":"tools/call","params":{"name":"weather__slow","arguments":{"ms":20},` + meta + `}}`,
			"text/event-stream"},
	}
	// In sequence: an upstream's log message reaches every call in flight
	// on it.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !e.takenByGateway(t, strings.TrimPrefix(strings.TrimPrefix(tc.path, "/mcp"), "/"), tc.key, tc.tool, tc.body) {
				t.Fatal("statelessCall left the request to mcp-go")
			}
			if tc.key == keyLimited {
				statelessPost(t, e.url+tc.path, tc.key, tc.tool, tc.body)
			}
			own := statelessPost(t, e.url+tc.path, tc.key, tc.tool, tc.body)
			viaMCPGo := statelessPost(t, e.url+tc.path, tc.key, "=?base64?"+base64.StdEncoding.EncodeToString([]byte(tc.tool))+"?=", tc.body)
			if own.status != http.StatusOK || !strings.HasPrefix(own.header.Get("Content-Type"), tc.wantType) {
				t.Fatalf("answer %d %q: %s", own.status, own.header.Get("Content-Type"), own.body)
			}
			if own.status != viaMCPGo.status || own.header.Get("Content-Type") != viaMCPGo.header.Get("Content-Type") {
				t.Fatalf("status, type = %d %q, mcp-go's %d %q", own.status, own.header.Get("Content-Type"),
					viaMCPGo.status, viaMCPGo.header.Get("Content-Type"))
			}
			if a, b := sameAs(own.body), sameAs(viaMCPGo.body); a != b {
				t.Fatalf("body\n%s\nmcp-go's\n%s", a, b)
			}
			if strings.Contains(tc.body, "0af7651916cd43dd8448eb211c80319c") && !strings.Contains(own.body, "0af7651916cd43dd8448eb211c80319c") {
				t.Fatalf("answer lost the caller's trace: %s", own.body)
			}
		})
	}
}

// TestStatelessCallLeavesTheRestToMCPGo: requests mcp-go must reject or
// treat apart reach it and get its errors.
func TestStatelessCallLeavesTheRestToMCPGo(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	call := func(name, meta string) string {
		return `{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"` + name + `","arguments":{"city":"Oslo"},"_meta":{` + meta + `}}}`
	}
	full := `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}`
	tests := []struct {
		name, mcpName, body string
		wantStatus          int
		wantBody            string
	}{
		{"name header mismatch", "weather__add", call("weather__get_forecast", full), http.StatusBadRequest, `header mismatch`},
		{"no client capabilities", "weather__get_forecast", call("weather__get_forecast", `"io.modelcontextprotocol/protocolVersion":"2026-07-28"`), http.StatusBadRequest, `clientCapabilities`},
		{"unknown tool", "nope__tool", call("nope__tool", full), http.StatusBadRequest, `not found`},
		{"null id", "weather__get_forecast", strings.Replace(call("weather__get_forecast", full), `"id":"x"`, `"id":null`, 1), http.StatusAccepted, ``},
		// Its progress must stream while the call runs.
		{"progress token", "weather__get_forecast", call("weather__get_forecast", full+`,"progressToken":"p1"`), http.StatusOK, `Forecast for Oslo`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if e.takenByGateway(t, "", keyAll, tc.mcpName, tc.body) {
				t.Fatal("statelessCall answered it")
			}
			r := statelessPost(t, e.url+"/mcp", keyAll, tc.mcpName, tc.body)
			if r.status != tc.wantStatus || !strings.Contains(r.body, tc.wantBody) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestRunToolRecoversLikeMCPGo(t *testing.T) {
	t.Parallel()
	req := mcp.CallToolRequest{}
	req.Params.Name = "weather__add"
	tests := []struct {
		name    string
		handler func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error)
		wantErr string
	}{
		{"panic", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) { panic("boom") },
			"panic recovered in weather__add tool handler: boom"},
		{"no result", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) { return nil, nil },
			"tool 'weather__add' handler returned no result"},
		{"error", func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return nil, errors.New("down")
		},
			"down"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := runTool(context.Background(), tc.handler, req); err == nil || err.Error() != tc.wantErr {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
