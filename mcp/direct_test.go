package mcp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
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

// toolCall is one tools/call as a client sends it over Streamable HTTP.
type toolCall struct {
	key, version, session string
	mcpName               string // Mcp-Name (2026-07-28)
	body                  string
	// viaMCPGo adds what makes directCall leave the call to mcp-go and
	// mcp-go ignore: the Base64 form of Mcp-Name (2026-07-28), a
	// Last-Event-ID (2025-11-25).
	viaMCPGo bool
}

func (tc toolCall) request(url string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, url, strings.NewReader(tc.body))
	req.RequestURI = ""
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+tc.key)
	req.Header.Set("Mcp-Protocol-Version", tc.version)
	if mcp.IsModernProtocol(tc.version) {
		req.Header.Set("Mcp-Method", "tools/call")
		req.Header.Set("Mcp-Name", tc.mcpName)
		if tc.viaMCPGo {
			req.Header.Set("Mcp-Name", "=?base64?"+base64.StdEncoding.EncodeToString([]byte(tc.mcpName))+"?=")
		}
	} else {
		req.Header.Set("Mcp-Session-Id", tc.session)
		if tc.viaMCPGo {
			req.Header.Set("Last-Event-ID", "0")
		}
	}
	return req
}

func (tc toolCall) post(t *testing.T, url string) httpReply {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(tc.request(url))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpReply{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// takenByGateway reports whether directCall answers the call itself,
// calling it as Gateway.serve does.
func (e *env) takenByGateway(t *testing.T, server string, tc toolCall) bool {
	t.Helper()
	p, err := e.gw.gov.Authenticate(tc.key)
	if err != nil {
		t.Fatal(err)
	}
	taken := false
	app := fiber.New()
	app.Post("/", func(c *fiber.Ctx) error {
		taken = e.gw.view(server).directCall(c, p)
		return nil
	})
	if _, err := app.Test(tc.request("/"), 10000); err != nil {
		t.Fatal(err)
	}
	return taken
}

// openSession opens a 2025-11-25 session for key.
func (e *env) openSession(t *testing.T, key string) string {
	t.Helper()
	r := post(t, e.url+"/mcp", key, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`)
	session := r.header.Get("Mcp-Session-Id")
	if r.status != http.StatusOK || session == "" {
		t.Fatalf("initialize: %d %s", r.status, r.body)
	}
	return session
}

// Trace IDs and retry delays differ from one answer to the next;
// withoutVaryingParts masks them.
var (
	traceIDs    = regexp.MustCompile(`00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]`)
	retryDelays = regexp.MustCompile(`retry after [0-9.hmsµn]+|"retryAfterMs":[0-9]+`)
)

func withoutVaryingParts(body string) string {
	return retryDelays.ReplaceAllString(traceIDs.ReplaceAllString(body, "TP"), "RETRY")
}

// TestDirectCallAnswersLikeMCPGo holds the gateway's own tools/call path to
// mcp-go's: the same call, once as clients send it (answered by directCall)
// and once with what leaves it to mcp-go (see toolCall.viaMCPGo), must get
// the same status, content type and body, trace IDs aside, in both
// protocol versions.
func TestDirectCallAnswersLikeMCPGo(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	sessions := map[string]string{keyAll: e.openSession(t, keyAll), keyLimited: e.openSession(t, keyLimited)}
	// Log messages reach a session that asked for them.
	setLevel := toolCall{key: keyAll, version: mcp.ProtocolVersion20251125, session: sessions[keyAll],
		body: `{"jsonrpc":"2.0","id":"l","method":"logging/setLevel","params":{"level":"info"}}`}
	if r := setLevel.post(t, e.url+"/mcp"); r.status != http.StatusOK || strings.Contains(r.body, `"error"`) {
		t.Fatalf("logging/setLevel: %d %s", r.status, r.body)
	}
	tests := []struct {
		name, path, key, tool, args string
		meta                        string // more _meta fields
		wantType                    string
	}{
		{"http upstream", "/mcp", keyAll, "weather__get_forecast", `{"city":"Lisbon"}`, "", "application/json"},
		{"numeric id", "/mcp", keyAll, "weather__add", `{"a":2,"b":40}`, "", "application/json"},
		{"no arguments, tool error result", "/mcp", keyAll, "weather__fail", ``, "", "application/json"},
		{"invalid arguments", "/mcp", keyAll, "weather__add", `{"a":"x"}`, "", "application/json"},
		{"stdio upstream", "/mcp", keyAll, "files__add", `{"a":1,"b":2}`, "", "application/json"},
		{"server endpoint", "/mcp/weather", keyAll, "get_forecast", `{"city":"Oslo"}`, "", "application/json"},
		{"trace context from the caller", "/mcp", keyAll, "weather__get_forecast", `{"city":"Rome"}`,
			`"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"`, "application/json"},
		// A result the gateway makes itself gets the 2026-07-28 fields
		// (resultType, serverInfo) an upstream's result already has. The
		// first call spends the key's one call a minute.
		{"denied", "/mcp", keyLimited, "weather__get_forecast", `{"city":"Oslo"}`, "", "application/json"},
		// The upstream logs while slow runs: the answer becomes an SSE
		// stream of the log message and the response. A 2026-07-28 caller
		// asks for log messages in the request, a session did above.
		{"log message", "/mcp", keyAll, "weather__slow", `{"ms":20}`, `"io.modelcontextprotocol/logLevel":"info"`, "text/event-stream"},
	}
	// In sequence: an upstream's log message reaches every call in flight
	// on it.
	for i, tc := range tests {
		for _, p := range protocols {
			t.Run(tc.name+"/"+p.name, func(t *testing.T) {
				id := `"c` + fmt.Sprint(i) + `"`
				if tc.name == "numeric id" {
					id = fmt.Sprint(i)
				}
				var meta []string
				if mcp.IsModernProtocol(p.version) {
					meta = append(meta, `"io.modelcontextprotocol/protocolVersion":"2026-07-28"`, `"io.modelcontextprotocol/clientCapabilities":{}`)
				}
				if tc.meta != "" {
					meta = append(meta, tc.meta)
				}
				args := ""
				if tc.args != "" {
					args = `"arguments":` + tc.args + `,`
				}
				call := toolCall{key: tc.key, version: p.version, session: sessions[tc.key], mcpName: tc.tool,
					body: `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + tc.tool + `",` + args +
						`"_meta":{` + strings.Join(meta, ",") + `}}}`}
				if !e.takenByGateway(t, strings.TrimPrefix(strings.TrimPrefix(tc.path, "/mcp"), "/"), call) {
					t.Fatal("directCall left the call to mcp-go")
				}
				own := call.post(t, e.url+tc.path)
				call.viaMCPGo = true
				viaMCPGo := call.post(t, e.url+tc.path)
				if own.status != http.StatusOK || !strings.HasPrefix(own.header.Get("Content-Type"), tc.wantType) {
					t.Fatalf("answer %d %q: %s", own.status, own.header.Get("Content-Type"), own.body)
				}
				if own.status != viaMCPGo.status || own.header.Get("Content-Type") != viaMCPGo.header.Get("Content-Type") {
					t.Fatalf("status, type = %d %q, mcp-go's %d %q", own.status, own.header.Get("Content-Type"),
						viaMCPGo.status, viaMCPGo.header.Get("Content-Type"))
				}
				if a, b := withoutVaryingParts(own.body), withoutVaryingParts(viaMCPGo.body); a != b {
					t.Fatalf("body\n%s\nmcp-go's\n%s", a, b)
				}
				if strings.Contains(tc.meta, "traceparent") && !strings.Contains(own.body, "0af7651916cd43dd8448eb211c80319c") {
					t.Fatalf("answer lost the caller's trace: %s", own.body)
				}
			})
		}
	}
}

// TestDirectCallLeavesTheRestToMCPGo: requests mcp-go must reject or treat
// apart reach it and get its errors.
func TestDirectCallLeavesTheRestToMCPGo(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	session := e.openSession(t, keyAll)
	call := func(name, meta string) string {
		return `{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"` + name + `","arguments":{"city":"Oslo"},"_meta":{` + meta + `}}}`
	}
	full := `"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}`
	modern, legacy := mcp.ProtocolVersion20260728, mcp.ProtocolVersion20251125
	tests := []struct {
		name       string
		call       toolCall
		wantStatus int
		wantBody   string
	}{
		{"name header mismatch", toolCall{version: modern, mcpName: "weather__add", body: call("weather__get_forecast", full)},
			http.StatusBadRequest, `header mismatch`},
		{"no client capabilities", toolCall{version: modern, mcpName: "weather__get_forecast",
			body: call("weather__get_forecast", `"io.modelcontextprotocol/protocolVersion":"2026-07-28"`)},
			http.StatusBadRequest, `clientCapabilities`},
		{"unknown tool", toolCall{version: modern, mcpName: "nope__tool", body: call("nope__tool", full)},
			http.StatusBadRequest, `not found`},
		{"null id", toolCall{version: modern, mcpName: "weather__get_forecast",
			body: strings.Replace(call("weather__get_forecast", full), `"id":"x"`, `"id":null`, 1)},
			http.StatusAccepted, ``},
		// Its progress must stream while the call runs.
		{"progress token", toolCall{version: modern, mcpName: "weather__get_forecast",
			body: call("weather__get_forecast", full+`,"progressToken":"p1"`)},
			http.StatusOK, `Forecast for Oslo`},
		{"no session", toolCall{version: legacy, body: call("weather__get_forecast", "")},
			http.StatusBadRequest, `Mcp-Session-Id header is required`},
		{"malformed session", toolCall{version: legacy, session: "mcp-session-nope", body: call("weather__get_forecast", "")},
			http.StatusNotFound, `Invalid session ID`},
		{"unsupported version", toolCall{version: "2020-01-01", session: session, body: call("weather__get_forecast", "")},
			http.StatusBadRequest, `Unsupported protocol version`},
		{"modern body on a session", toolCall{version: legacy, session: session, body: call("weather__get_forecast", full)},
			http.StatusBadRequest, `header`},
		{"unknown tool on a session", toolCall{version: legacy, session: session, body: call("nope__tool", "")},
			http.StatusOK, `not found`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.call.key = keyAll
			if e.takenByGateway(t, "", tc.call) {
				t.Fatal("directCall answered it")
			}
			r := tc.call.post(t, e.url+"/mcp")
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
