package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// upstreamSecret is the provider key every faulty deployment is configured with: no answer or log may show it.
const upstreamSecret = "sk-upstream-secret-do-not-leak-0001"

// faultDeadline bounds every faulty call: the gateway's own timeouts are 1s per attempt, two attempts at most.
const faultDeadline = 10 * time.Second

const streamChunk = `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"partial"},"finish_reason":null}]}`

// misbehavingLLM answers OpenAI chat calls in the ways providers break, chosen by path prefix.
func misbehavingLLM(t *testing.T, rateLimited *atomic.Int64) string {
	t.Helper()
	mux := http.NewServeMux()
	// 429 with Retry-After, as a provider over its quota answers.
	mux.HandleFunc("/limited/", func(w http.ResponseWriter, r *http.Request) {
		rateLimited.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)
	})
	// 200 whose body is not what was promised.
	mux.HandleFunc("/notjson/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", r.Header.Get("Accept"))
		_, _ = io.WriteString(w, "<html><body>502 Bad Gateway (from a captive portal)</body></html>")
	})
	// The connection drops in the middle of the body: a JSON reply shorter than its Content-Length, or a stream
	// that stops after one chunk without [DONE] and without chunked framing's last chunk.
	mux.HandleFunc("/cut/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		if strings.Contains(string(b), `"stream":true`) {
			data := "data: " + streamChunk + "\n\n"
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(data), data)
		} else {
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"id\":\"chatcmpl-1\",\"choices\":[")
		}
		_ = buf.Flush()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// upstreamFaultConfig has one model per LLM fault, an MCP server and an A2A agent behind fault proxies.
func upstreamFaultConfig(t *testing.T, listen, dir string, mcpURL, a2aCard string) string {
	t.Helper()
	var rateLimited atomic.Int64
	bad := misbehavingLLM(t, &rateLimited)
	good, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { good.Close() })
	hang := rawListener(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	garbage := rawListener(t, func(c net.Conn) {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Read(make([]byte, 4096))
		_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n\x00\xff\xfe")
	})
	dep := func(base string, extra string) string {
		return fmt.Sprintf(`{provider: openai, base_url: "%s/v1", model: gpt-4o-mini, api_key: %s%s}`, base, upstreamSecret, extra)
	}
	return fmt.Sprintf(`server: {listen: %q}
log: {format: json, level: info}
router: {strategy: lowest-cost, retries: 1, allowed_fails: 1000, cooldown: 1s, timeout: 1s, stream_idle_timeout: 1s, retry_backoff: 10ms}
models:
  - {name: refused, deployments: [%s]}
  - {name: hang, deployments: [%s]}
  - {name: slow, deployments: [%s]}
  - {name: too-slow, deployments: [%s]}
  - {name: cut, deployments: [%s]}
  - {name: garbage, deployments: [%s]}
  - {name: not-json, deployments: [%s]}
  - {name: limited, deployments: [%s]}
  - {name: limited-stream, deployments: [%s]}
  - name: limited-then-ok
    deployments:
      - %s
      - %s
  - name: limited-then-ok-stream
    deployments:
      - %s
      - %s
mcp:
  servers: [{name: tools, url: "%s/mcp", timeout: 1s, cost_per_call_usd: "0.001"}]
a2a:
  agents: [{name: agent, card: %s, timeout: 1s, cost_per_call_usd: "0.01"}]
governance:
  secret: %s
  admin_key: %s
  keys: [{name: faults, key: %s, budget: {usd: 1000, period: daily}}]
storage: {sqlite: {path: %q}}
trace: {spill_dir: %q, flush_interval: 100ms}
`, listen,
		dep("http://"+closedPort(t), ""), dep(hang, ""),
		dep(good.URL, `, headers: {x-mock-latency: 300ms}`), dep(good.URL, `, headers: {x-mock-latency: 5s}`),
		dep(bad+"/cut", ""), dep(garbage, ""), dep(bad+"/notjson", ""), dep(bad+"/limited", ""), dep(bad+"/limited", ""),
		dep(bad+"/limited", `, pricing: {input_per_mtok: "0.01", output_per_mtok: "0.01"}`),
		dep(good.URL, `, pricing: {input_per_mtok: "1", output_per_mtok: "1"}`),
		dep(bad+"/limited", `, pricing: {input_per_mtok: "0.01", output_per_mtok: "0.01"}`),
		dep(good.URL, `, pricing: {input_per_mtok: "1", output_per_mtok: "1"}`),
		mcpURL, strconv.Quote(a2aCard), faultSecret, faultAdminKey, faultKey,
		dir+"/sb.db", dir+"/spill")
}

// TestFaultUpstream: every way an upstream can fail — refused, hanging, slow, cut mid-body or mid-stream,
// garbage, 429 — gives the client the protocol's error in time, and leaves an error span.
func TestFaultUpstream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	dir := t.TempDir()
	bin := buildGateway(t, dir)

	tools, err := mock.StartMCP("127.0.0.1:0", mock.MCPOptions{Name: "tools"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tools.Close() })
	toolProxy := startFaultProxy(t, strings.TrimPrefix(tools.URL, "http://"))
	agent, err := mock.StartA2A("127.0.0.1:0", mock.A2AOptions{Name: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	agentProxy := startFaultProxy(t, strings.TrimPrefix(agent.URL, "http://"))
	card := agentCard(t, agent.URL)
	card = strings.ReplaceAll(card, agent.URL, agentProxy.url())

	addr := freeAddr(t)
	g := startGateway(t, bin, dir, addr, upstreamFaultConfig(t, addr, dir, toolProxy.url(), card))

	t.Run("LLM", func(t *testing.T) { llmFaults(t, g) })
	t.Run("MCP", func(t *testing.T) { mcpFaults(t, g, toolProxy) })
	t.Run("A2A", func(t *testing.T) { a2aFaults(t, g, agentProxy) })

	if logs := g.logs.String(); strings.Contains(logs, upstreamSecret) {
		t.Errorf("the upstream key appears in the gateway's logs")
	}
}

func llmFaults(t *testing.T, g *gatewayProc) {
	for _, tc := range []struct {
		model      string
		stream     bool
		status     int    // what the client gets
		code       string // error.code of the OpenAI error body; "" on success
		retryAfter string
		spanStatus trace.Status
		spanHTTP   int // the chat span's http_status
		retries    int32
	}{
		{model: "refused", status: 502, code: "upstream_unavailable", spanStatus: trace.StatusError, spanHTTP: 502, retries: 1},
		{model: "refused", stream: true, status: 502, code: "upstream_unavailable", spanStatus: trace.StatusError, spanHTTP: 502, retries: 1},
		{model: "hang", status: 504, code: "upstream_timeout", spanStatus: trace.StatusError, spanHTTP: 504, retries: 1},
		{model: "hang", stream: true, status: 504, code: "upstream_timeout", spanStatus: trace.StatusError, spanHTTP: 504, retries: 1},
		{model: "slow", status: 200, spanStatus: trace.StatusOK, spanHTTP: 200},
		{model: "slow", stream: true, status: 200, spanStatus: trace.StatusOK, spanHTTP: 200},
		{model: "too-slow", status: 504, code: "upstream_timeout", spanStatus: trace.StatusError, spanHTTP: 504, retries: 1},
		{model: "too-slow", stream: true, status: 504, code: "upstream_timeout", spanStatus: trace.StatusError, spanHTTP: 504, retries: 1},
		{model: "cut", status: 502, code: "upstream_unavailable", spanStatus: trace.StatusError, spanHTTP: 502, retries: 1},
		// The stream had begun, so the status line is 200 and the failure is an SSE error event after the chunk.
		{model: "cut", stream: true, status: 200, code: "upstream_error", spanStatus: trace.StatusError, spanHTTP: 502},
		{model: "garbage", status: 502, code: "upstream_unavailable", spanStatus: trace.StatusError, spanHTTP: 502, retries: 1},
		{model: "garbage", stream: true, status: 502, code: "upstream_unavailable", spanStatus: trace.StatusError, spanHTTP: 502, retries: 1},
		{model: "not-json", status: 502, code: "upstream_unavailable", spanStatus: trace.StatusError, spanHTTP: 502, retries: 1},
		{model: "not-json", stream: true, status: 502, code: "upstream_unavailable", spanStatus: trace.StatusError, spanHTTP: 502, retries: 1},
		// A 429 with Retry-After pauses its deployment (each case has its own) rather than being retried on it.
		{model: "limited", status: 429, code: "upstream_rate_limited", retryAfter: "7", spanStatus: trace.StatusError, spanHTTP: 429},
		{model: "limited-stream", stream: true, status: 429, code: "upstream_rate_limited", retryAfter: "7", spanStatus: trace.StatusError, spanHTTP: 429},
		{model: "limited-then-ok", status: 200, spanStatus: trace.StatusOK, spanHTTP: 200, retries: 1},
		{model: "limited-then-ok-stream", stream: true, status: 200, spanStatus: trace.StatusOK, spanHTTP: 200, retries: 1},
	} {
		t.Run(fmt.Sprintf("%s/stream=%t", tc.model, tc.stream), func(t *testing.T) {
			id, tp := newTraceparent()
			r, err := postChat(g.base, tc.model, tp, tc.stream)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != tc.status {
				t.Fatalf("HTTP %d, want %d: %s", r.status, tc.status, r.body)
			}
			if r.elapsed > faultDeadline {
				t.Errorf("answered after %s, beyond the gateway's timeouts", r.elapsed)
			}
			if strings.Contains(r.body, upstreamSecret) {
				t.Errorf("the answer shows the upstream key: %s", r.body)
			}
			if got := r.header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if tc.stream && tc.status == 200 {
				checkStream(t, r.body, tc.code)
			} else if tc.code != "" {
				checkOpenAIError(t, r.body, tc.code)
			}
			// The call span, and one attempt span per try when a try failed (a call its first try answered writes
			// none): waiting for fewer could return the attempts before the call span, which ends last.
			spans := 1
			if tc.retries > 0 || tc.status != 200 {
				spans = 2 + int(tc.retries)
			}
			chat := spanNamed(t, storedSpans(t, g.base, id, spans), "chat "+tc.model)
			if chat.Status != tc.spanStatus || chat.HTTPStatus != tc.spanHTTP || chat.Retries != tc.retries {
				t.Errorf("chat span: status %q http %d retries %d, want %q %d %d (error %q)",
					chat.Status, chat.HTTPStatus, chat.Retries, tc.spanStatus, tc.spanHTTP, tc.retries, chat.Error)
			}
			if tc.spanStatus == trace.StatusError && chat.Error == "" {
				t.Errorf("error span without an error message")
			}
		})
	}
}

// checkOpenAIError wants OpenAI's error body with the given code.
func checkOpenAIError(t *testing.T, body, code string) {
	t.Helper()
	var e struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("not an OpenAI error body (%v): %s", err, body)
	}
	if e.Error.Code != code {
		t.Errorf("error code %q, want %q: %s", e.Error.Code, code, body)
	}
}

// checkStream checks an SSE reply: complete with [DONE] when code is empty, else cut short by an error event
// carrying code after the content that did arrive.
func checkStream(t *testing.T, body, code string) {
	t.Helper()
	var events []string
	for line := range strings.SplitSeq(body, "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			events = append(events, data)
		}
	}
	if len(events) == 0 {
		t.Fatalf("no SSE events: %q", body)
	}
	last := events[len(events)-1]
	if code == "" {
		if last != "[DONE]" {
			t.Errorf("stream does not end with [DONE]: %q", body)
		}
		return
	}
	if !strings.Contains(body, "partial") {
		t.Errorf("the chunk sent before the cut did not reach the client: %q", body)
	}
	if strings.Contains(body, "[DONE]") {
		t.Errorf("a cut stream claims completion: %q", body)
	}
	checkOpenAIError(t, last, code)
}

// agentCard fetches the mock agent's A2A 1.0 card as JSON.
func agentCard(t *testing.T, base string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/.well-known/agent-card.json", nil)
	req.Header.Set("A2A-Version", "1.0")
	resp, err := faultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("agent card: HTTP %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// rpcPost sends one JSON-RPC request and returns the HTTP status and the JSON-RPC response (the data of the
// first SSE event when the server chose to stream).
func rpcPost(t *testing.T, url, traceparent string, headers map[string]string, body string) (int, map[string]any, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+faultKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", traceparent)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := faultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(b)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		for line := range strings.SplitSeq(raw, "\n") {
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				raw = data
				break
			}
		}
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		t.Fatalf("HTTP %d, not JSON-RPC: %s", resp.StatusCode, b)
	}
	if out["jsonrpc"] != "2.0" {
		t.Fatalf("not a JSON-RPC response: %s", b)
	}
	return resp.StatusCode, out, elapsed
}

func mcpCall(t *testing.T, g *gatewayProc) (trace.TraceID, int, map[string]any, time.Duration) {
	t.Helper()
	id, tp := newTraceparent()
	status, out, elapsed := rpcPost(t, g.base+"/mcp", tp, map[string]string{
		"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
		"Mcp-Method": "tools/call", "Mcp-Name": "tools__get_forecast",
	}, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tools__get_forecast","arguments":{"city":"Paris"},
		"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`)
	return id, status, out, elapsed
}

// mcpFaults: a tool server that hangs or goes down gives the caller a tool error it can read (isError), in time.
func mcpFaults(t *testing.T, g *gatewayProc, p *faultProxy) {
	check := func(t *testing.T, wantError, wantText string) {
		t.Helper()
		id, status, out, elapsed := mcpCall(t, g)
		if status != http.StatusOK || elapsed > faultDeadline {
			t.Fatalf("HTTP %d after %s: %v", status, elapsed, out)
		}
		res, _ := out["result"].(map[string]any)
		if res == nil {
			t.Fatalf("no result: %v", out)
		}
		isError, _ := res["isError"].(bool)
		text := fmt.Sprint(res["content"])
		if isError != (wantError != "") || !strings.Contains(text, wantText) {
			t.Fatalf("isError %t content %s; want error %q, text %q", isError, text, wantError, wantText)
		}
		span := spanNamed(t, storedSpans(t, g.base, id, 1), "tools/call tools__get_forecast")
		if wantError == "" {
			if span.Status != trace.StatusOK || span.CostNanoUSD != 1_000_000 {
				t.Errorf("span %+v", span)
			}
			return
		}
		if span.Status != trace.StatusError || !strings.Contains(span.Error, wantError) || span.CostNanoUSD != 0 {
			t.Errorf("span status %q error %q cost %d, want error %q at no cost", span.Status, span.Error, span.CostNanoUSD, wantError)
		}
	}
	t.Run("healthy", func(t *testing.T) { check(t, "", "Paris") })
	t.Run("hang", func(t *testing.T) {
		p.startHanging()
		check(t, "timed out", "timed out")
	})
	t.Run("down", func(t *testing.T) {
		p.down()
		check(t, "unavailable", "unavailable")
	})
}

func a2aSend(t *testing.T, g *gatewayProc) (trace.TraceID, int, map[string]any, time.Duration) {
	t.Helper()
	id, tp := newTraceparent()
	status, out, elapsed := rpcPost(t, g.base+"/a2a/agent", tp, map[string]string{"A2A-Version": "1.0"},
		`{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hello"}]}}}`)
	return id, status, out, elapsed
}

// a2aFaults: an agent that hangs or goes down gives the caller a JSON-RPC error, in time.
func a2aFaults(t *testing.T, g *gatewayProc, p *faultProxy) {
	// Like a2a-go's own handlers, the gateway answers a failed proxied call with HTTP 200 and a JSON-RPC error.
	check := func(t *testing.T, wantCode int) {
		t.Helper()
		wantError := wantCode != 0
		id, status, out, elapsed := a2aSend(t, g)
		if status != http.StatusOK || elapsed > faultDeadline {
			t.Fatalf("HTTP %d after %s: %v", status, elapsed, out)
		}
		rpcErr, _ := out["error"].(map[string]any)
		if wantError != (rpcErr != nil) {
			t.Fatalf("JSON-RPC answer %v; want an error: %t", out, wantError)
		}
		if wantError {
			if code, _ := rpcErr["code"].(float64); int(code) != wantCode || rpcErr["message"] == "" {
				t.Errorf("JSON-RPC error %v, want code %d", rpcErr, wantCode)
			}
		}
		span := spanNamed(t, storedSpans(t, g.base, id, 1), "invoke_agent agent")
		if wantError && (span.Status != trace.StatusError || span.Error == "" || span.CostNanoUSD != 0) {
			t.Errorf("span status %q error %q cost %d, want an error at no cost", span.Status, span.Error, span.CostNanoUSD)
		}
		if !wantError && span.Status != trace.StatusOK {
			t.Errorf("span status %q error %q", span.Status, span.Error)
		}
	}
	t.Run("healthy", func(t *testing.T) { check(t, 0) })
	t.Run("hang", func(t *testing.T) {
		p.startHanging()
		check(t, -32603) // internal error: the upstream call's deadline passed
	})
	t.Run("down", func(t *testing.T) {
		p.down()
		check(t, -32000) // server error: upstream agent unavailable
	})
}
