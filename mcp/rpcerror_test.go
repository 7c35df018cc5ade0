package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// rpcErrorUpstream is a 2025-11-25 server that lists one tool, one
// resource template and one prompt, and refuses every use of them with a
// JSON-RPC error of its own code and data.
func rpcErrorUpstream(t *testing.T) string {
	t.Helper()
	url, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request, msg map[string]json.RawMessage) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		var method string
		_ = json.Unmarshal(msg["method"], &method)
		id := msg["id"]
		refuse := func(code int, message, data string) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":%d,"message":%q,"data":%s}}`, id, code, message, data)
		}
		switch method {
		case "initialize":
			w.Header().Set("Mcp-Session-Id", "raw-session")
			jsonResult(w, id, `{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"resources":{},"prompts":{}},"serverInfo":{"name":"raw","version":"1"}}`)
		case "tools/list":
			jsonResult(w, id, `{"tools":[{"name":"add","inputSchema":{"type":"object"}}]}`)
		case "resources/list":
			jsonResult(w, id, `{"resources":[]}`)
		case "resources/templates/list":
			jsonResult(w, id, `{"resourceTemplates":[{"uriTemplate":"raw://{id}","name":"item"}]}`)
		case "prompts/list":
			jsonResult(w, id, `{"prompts":[{"name":"greet"}]}`)
		case "ping":
			jsonResult(w, id, `{}`)
		case "tools/call":
			refuse(mcp.INVALID_PARAMS, "a must be a number", `{"field":"a"}`)
		case "resources/read":
			refuse(mcp.RESOURCE_NOT_FOUND, "no such item", `{"uri":"raw://42"}`)
		case "prompts/get":
			refuse(mcp.INVALID_PARAMS, "missing argument name", `null`)
		default:
			if len(id) == 0 {
				w.WriteHeader(http.StatusAccepted)
				return
			}
			refuse(mcp.METHOD_NOT_FOUND, "method not found", `null`)
		}
	})
	return url
}

// A JSON-RPC error from the upstream reaches the client with the upstream's
// code and data, not as mcp-go's -32603 for a failed handler: tools/call,
// resources/read and prompts/get, in both protocol versions.
func TestUpstreamRPCErrorsKeepTheirCode(t *testing.T) {
	t.Parallel()
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers, ServerConfig{Name: "raw", URL: rpcErrorUpstream(t), Timeout: 5 * time.Second})
	})
	e.waitTools(t, func(names []string) bool { return slices.Contains(names, "raw__add") })
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := ctxT(t)
			cli := e.connect(t, "/mcp", keyAll, p.version)
			_, err := callTool(ctx, cli, "raw__add", map[string]any{"a": "x"})
			if !errors.Is(err, mcp.ErrInvalidParams) || !strings.Contains(err.Error(), "a must be a number") {
				t.Errorf("tools/call: %v, want the upstream's invalid params", err)
			}
			_, err = cli.ReadResource(ctx, mcp.ReadResourceRequest{Params: mcp.ReadResourceParams{URI: "raw://42"}})
			if !errors.Is(err, mcp.ErrResourceNotFound) || !strings.Contains(err.Error(), "no such item") {
				t.Errorf("resources/read: %v, want the upstream's resource not found", err)
			}
			_, err = cli.GetPrompt(ctx, mcp.GetPromptRequest{Params: mcp.GetPromptParams{Name: "raw__greet"}})
			if !errors.Is(err, mcp.ErrInvalidParams) || !strings.Contains(err.Error(), "missing argument name") {
				t.Errorf("prompts/get: %v, want the upstream's invalid params", err)
			}
		})
	}
	// The data comes along, byte for byte the upstream's.
	session := []string{server.HeaderKeySessionID, e.openSession(t, keyAll)}
	for _, tc := range []struct{ body, want string }{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"raw__add","arguments":{"a":"x"}}}`,
			`"error":{"code":-32602,"message":"a must be a number","data":{"field":"a"}}`},
		{`{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"raw://42"}}`,
			`"error":{"code":-32002,"message":"no such item","data":{"uri":"raw://42"}}`},
	} {
		if r := post(t, e.url+"/mcp", keyAll, tc.body, session...); r.status != http.StatusOK || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %d %s, want %s", tc.body, r.status, r.body, tc.want)
		}
	}
}
