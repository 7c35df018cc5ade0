package mcp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// watchedUpstream serves the mock's MCP server over Streamable HTTP and
// reports when a tools/call request starts and when it ends.
func watchedUpstream(t *testing.T) (url string, started, ended <-chan struct{}) {
	t.Helper()
	core := mock.NewMCPServer(mock.MCPOptions{Name: "watched"})
	stream := server.NewStreamableHTTPServer(core, server.WithDisableLocalhostProtection(true))
	start, end := make(chan struct{}, 4), make(chan struct{}, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		isCall := strings.Contains(string(body), `"method":"tools/call"`)
		if isCall {
			start <- struct{}{}
			defer func() { end <- struct{}{} }()
		}
		stream.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/mcp", start, end
}

// rawClient speaks JSON-RPC over plain HTTP, to send what the mcp-go
// client does not (it cancels HTTP requests by ending them).
type rawClient struct {
	url, key, version, session string
}

// newRawClient opens a 2025-11-25 session, or nothing on 2026-07-28.
func newRawClient(t *testing.T, url, key, version string) *rawClient {
	t.Helper()
	c := &rawClient{url: url, key: key, version: version}
	if mcp.IsModernProtocol(version) {
		return c
	}
	r, err := c.send(1, "initialize", "", map[string]any{
		"protocolVersion": version, "capabilities": map[string]any{},
		"clientInfo": map[string]any{"name": "raw", "version": "1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Body.Close()
	c.session = r.Header.Get("Mcp-Session-Id")
	if r.StatusCode != http.StatusOK || c.session == "" {
		t.Fatalf("initialize: %d, session %q", r.StatusCode, c.session)
	}
	if r, err := c.send(nil, "notifications/initialized", "", nil); err == nil {
		_ = r.Body.Close()
	}
	return c
}

// send posts a request (id != nil) or a notification; name is the tool of
// a tools/call (2026-07-28 mirrors it in a header).
func (c *rawClient) send(id any, method, name string, params map[string]any) (*http.Response, error) {
	if params == nil {
		params = map[string]any{}
	}
	modern := mcp.IsModernProtocol(c.version)
	if modern {
		meta, _ := params["_meta"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
		}
		meta["io.modelcontextprotocol/protocolVersion"] = c.version
		if id != nil {
			meta["io.modelcontextprotocol/clientInfo"] = map[string]any{"name": "raw", "version": "1"}
			meta["io.modelcontextprotocol/clientCapabilities"] = map[string]any{}
		}
		params["_meta"] = meta
	}
	msg := map[string]any{"jsonrpc": "2.0", "method": method, "params": params}
	if id != nil {
		msg["id"] = id
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequest(http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Mcp-Protocol-Version", c.version)
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
	}
	if modern {
		req.Header.Set("Mcp-Method", method)
		if name != "" {
			req.Header.Set("Mcp-Name", name)
		}
	}
	return (&http.Client{Timeout: 20 * time.Second}).Do(req)
}

// call runs a tools/call of watched__slow in the background and delivers
// the answer's body, and a signal when its first line came. With a progress
// token the answer is a stream of the upstream's progress notifications,
// then the response.
func (c *rawClient) call(id any, ms int, progressToken string) (answered <-chan string, began <-chan struct{}) {
	body, first := make(chan string, 1), make(chan struct{})
	params := map[string]any{"name": "watched__slow", "arguments": map[string]any{"ms": ms}}
	if progressToken != "" {
		params["_meta"] = map[string]any{"progressToken": progressToken}
	}
	go func() {
		r, err := c.send(id, "tools/call", "watched__slow", params)
		if err != nil {
			body <- err.Error()
			return
		}
		defer r.Body.Close()
		var text strings.Builder
		lines := bufio.NewScanner(r.Body)
		for lines.Scan() {
			if text.Len() == 0 {
				close(first)
			}
			text.WriteString(lines.Text() + "\n")
		}
		body <- text.String()
	}()
	return body, first
}

func (c *rawClient) cancel(t *testing.T, id any) {
	t.Helper()
	r, err := c.send(nil, "notifications/cancelled", "", map[string]any{"requestId": id, "reason": "user gave up"})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Body.Close()
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("notifications/cancelled answered %d", r.StatusCode)
	}
}

func waitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for " + what)
	}
}

func waitAnswer(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case body := <-ch:
		return body
	case <-time.After(15 * time.Second):
		t.Fatal("the call's HTTP request never ended")
		return ""
	}
}

// A client's notifications/cancelled stops the upstream's work: the gateway
// cancels its own upstream request for the call (the mock's slow tool honours
// cancellation, so the upstream request ends long before its 60s), and sends
// no response for it (receivers SHOULD NOT answer a cancelled request). The
// span records the call as cancelled. Another key cannot cancel it by
// guessing the request ID.
func TestCancellationReachesUpstream(t *testing.T) {
	t.Parallel()
	upURL, started, ended := watchedUpstream(t)
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers, ServerConfig{Name: "watched", URL: upURL, Timeout: 2 * time.Minute})
	})
	e.waitTools(t, func(names []string) bool { return slices.Contains(names, "watched__slow") })
	// Subtests share the upstream's start/end signals: run in sequence.
	for _, p := range protocols {
		for _, progress := range []string{"", "p-1"} {
			t.Run(fmt.Sprintf("%s/progress=%q", p.name, progress), func(t *testing.T) {
				owner := newRawClient(t, e.url+"/mcp", keyAll, p.version)
				answered, began := owner.call(42, 60000, progress)
				waitSignal(t, started, "the call to reach the upstream")
				if progress != "" {
					waitSignal(t, began, "the call's progress stream")
				}
				owner.cancel(t, 42)
				waitSignal(t, ended, "the upstream to stop the cancelled call")
				body := waitAnswer(t, answered)
				if strings.Contains(body, `"id":42`) {
					t.Fatalf("the cancelled call was answered: %s", body)
				}
				if progress != "" && !strings.Contains(body, "notifications/progress") {
					t.Fatalf("the call's answer was no stream of its progress: %s", body)
				}
			})
		}
		t.Run(p.name+"/other key", func(t *testing.T) {
			owner := newRawClient(t, e.url+"/mcp", keyAll, p.version)
			// Same request ID, other key: the call runs to its end.
			answered, _ := owner.call(43, 1500, "")
			waitSignal(t, started, "the second call to reach the upstream")
			newRawClient(t, e.url+"/mcp", keyLimited, p.version).cancel(t, 43)
			waitSignal(t, ended, "the second call to end")
			if body := waitAnswer(t, answered); !strings.Contains(body, "waited 1500ms") {
				t.Fatalf("another key cancelled the call: %s", body)
			}
		})
	}
	var span trace.Span
	eventually(t, 5*time.Second, func() bool {
		var ok bool
		span, ok = e.spans.find(func(s trace.Span) bool { return s.ToolServer == "watched" && s.Status == trace.StatusError })
		return ok
	}, "span of the cancelled call")
	if span.Error != "cancelled by the client" || span.CostNanoUSD != 0 {
		t.Fatalf("span = %+v", span)
	}
}
