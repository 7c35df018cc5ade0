package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestOpenLoop(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer k1" || r.Method != http.MethodPost {
			http.Error(w, "bad", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(ok.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	out := filepath.Join(t.TempDir(), "s.json")

	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"answers", []string{"--url", ok.URL, "--key", "k1", "--rate", "200", "--duration", "250ms", "--json", out, "--phase", "100ms"}, ""},
		{"failures are reported", []string{"--url", failing.URL, "--rate", "100", "--duration", "50ms"}, "5 of 5 calls failed (first: HTTP 500"},
		{"url required", []string{"--rate", "10"}, "--url is required"},
		{"rate must be positive", []string{"--url", ok.URL, "--rate", "0"}, "must be positive"},
	}
	for _, tc := range tests {
		var stdout strings.Builder
		err := run(tc.args, &stdout)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Fatalf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	if calls.Load() != 50 {
		t.Fatalf("server saw %d calls, want 50 (200/s for 250 ms)", calls.Load())
	}
	var s summary
	b, err := os.ReadFile(out)
	if err != nil || json.Unmarshal(b, &s) != nil {
		t.Fatalf("summary %s: %v", b, err)
	}
	if s.Calls != 50 || s.Errors != 0 || s.Rate != 200 || s.P50 <= 0 || s.P50 > s.P99 || s.P99 > s.Max {
		t.Fatalf("summary %+v", s)
	}
}

// serve starts h on 127.0.0.1 for the test's lifetime and returns its URL.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// runSummary runs openloop with args plus --json and returns the summary and run's error.
func runSummary(t *testing.T, args ...string) (summary, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "s.json")
	var stdout strings.Builder
	err := run(append(args, "--json", out), &stdout)
	var s summary
	if b, rerr := os.ReadFile(out); rerr == nil {
		if jerr := json.Unmarshal(b, &s); jerr != nil {
			t.Fatalf("summary %s: %v", b, jerr)
		}
	}
	return s, err
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "application/json, text/event-stream" || r.Header.Get("A2A-Version") != "1.0" {
			http.Error(w, "missing headers: "+r.Header.Get("Accept"), http.StatusBadRequest)
			return
		}
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	})
	tests := []struct {
		name    string
		headers []string
		wantErr string
	}{
		{"sent", []string{"--header", "Accept: application/json, text/event-stream", "--header", "A2A-Version:1.0"}, ""},
		{"missing", []string{"--header", "Accept: application/json, text/event-stream"}, "2 of 2 calls failed (first: HTTP 400"},
		{"not name: value", []string{"--header", "A2A-Version 1.0"}, `"A2A-Version 1.0" is not 'Name: value'`},
		{"no name", []string{"--header", ": 1.0"}, "is not 'Name: value'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := runSummary(t, append([]string{"--url", url, "--rate", "20", "--duration", "100ms"}, tc.headers...)...)
			wantErr(t, err, tc.wantErr)
		})
	}
}

// streamHandler answers with one SSE event at once and the rest, tail, after a delay.
func streamHandler(status int, delay time.Duration, tail string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(status)
		_, _ = w.Write([]byte("data: {\"choices\":[]}\n\n"))
		w.(http.Flusher).Flush()
		time.Sleep(delay)
		_, _ = w.Write([]byte(tail))
	}
}

func TestTTFB(t *testing.T) {
	t.Parallel()
	const delay = 300 * time.Millisecond
	slowRest := serve(t, streamHandler(http.StatusOK, delay, "data: [DONE]\n\n"))
	errorInRest := serve(t, streamHandler(http.StatusOK, 10*time.Millisecond, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32000}}\n\n"))
	unavailable := serve(t, streamHandler(http.StatusServiceUnavailable, 10*time.Millisecond, "data: down\n\n"))
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(summary) bool
	}{
		{"first byte before the delayed rest", []string{"--url", slowRest, "--ttfb"}, "", func(s summary) bool { return s.Max < 150 }},
		{"whole answer without --ttfb", []string{"--url", slowRest}, "", func(s summary) bool { return s.P50 >= 300 }},
		{"the rest is read and checked", []string{"--url", errorInRest, "--ttfb"}, "2 of 2 calls failed (first: JSON-RPC error", nil},
		{"status other than 200", []string{"--url", unavailable, "--ttfb"}, "2 of 2 calls failed (first: HTTP 503: data: {\"choices\":[]}", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := runSummary(t, append(tc.args, "--rate", "20", "--duration", "100ms")...)
			wantErr(t, err, tc.wantErr)
			if s.Calls != 2 || tc.check != nil && !tc.check(s) {
				t.Fatalf("summary %+v", s)
			}
		})
	}
}

// mcpSession is an MCP server that opens one session at /init and requires it on every later message: the
// handshake's notification at /init, calls at /mcp.
type mcpSession struct {
	id                  string // answered to initialize; none when empty
	inits, notes, calls atomic.Int64
}

func (m *mcpSession) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	session := r.Header.Get("Mcp-Session-Id")
	switch {
	case strings.Contains(string(body), `"method":"initialize"`):
		if r.URL.Path != "/init" || session != "" {
			http.Error(w, "initialize at "+r.URL.Path+" with session "+session, http.StatusBadRequest)
			return
		}
		m.inits.Add(1)
		if m.id != "" {
			w.Header().Set("Mcp-Session-Id", m.id)
		}
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25"}}`))
	case session != m.id || m.id == "":
		http.Error(w, "session "+session+" unknown", http.StatusNotFound)
	case strings.Contains(string(body), `"method":"notifications/initialized"`) && r.URL.Path == "/init":
		m.notes.Add(1)
		w.WriteHeader(http.StatusAccepted)
	case r.URL.Path != "/mcp":
		http.Error(w, "call at "+r.URL.Path, http.StatusBadRequest)
	default:
		m.calls.Add(1)
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{"content":[]}}`))
	}
}

func TestSession(t *testing.T) {
	t.Parallel()
	const initBody = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}`
	tests := []struct {
		name                string
		id                  string
		init                bool
		wantErr             string
		inits, notes, calls int64
	}{
		{"captured and sent", "s-42", true, "", 1, 1, 4},
		{"no session answered", "", true, "initialize: the answer has no Mcp-Session-Id header", 1, 0, 0},
		{"none without --init-body", "s-42", false, "4 of 4 calls failed (first: HTTP 404: session  unknown", 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := &mcpSession{id: tc.id}
			url := serve(t, m.ServeHTTP)
			args := []string{"--url", url + "/mcp", "--rate", "40", "--duration", "100ms"}
			if tc.init {
				args = append(args, "--init-url", url+"/init", "--init-body", initBody)
			}
			_, err := runSummary(t, args...)
			wantErr(t, err, tc.wantErr)
			if m.inits.Load() != tc.inits || m.notes.Load() != tc.notes || m.calls.Load() != tc.calls {
				t.Fatalf("initialize %d, notifications/initialized %d, calls %d in the session; want %d, %d, %d",
					m.inits.Load(), m.notes.Load(), m.calls.Load(), tc.inits, tc.notes, tc.calls)
			}
		})
	}
}

func TestInitURLNeedsInitBody(t *testing.T) {
	t.Parallel()
	wantErr(t, run([]string{"--url", "http://127.0.0.1:1/mcp", "--init-url", "http://127.0.0.1:1/init"}, io.Discard),
		"--init-url needs --init-body")
}

func TestJSONRPCErrorsCount(t *testing.T) {
	t.Parallel()
	url := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"unknown tool"}}`))
	})
	s, err := runSummary(t, "--url", url, "--rate", "50", "--duration", "100ms")
	wantErr(t, err, `5 of 5 calls failed (first: JSON-RPC error: {"code":-32602,"message":"unknown tool"})`)
	if s.Errors != 5 {
		t.Fatalf("summary %+v, want 5 errors", s)
	}
}

func TestAnswerError(t *testing.T) {
	t.Parallel()
	const sse = "text/event-stream; charset=utf-8"
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		wantErr     string
	}{
		{"result", 200, "application/json", `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}`, ""},
		{"error at the top level", 200, "application/json", `{"jsonrpc":"2.0","id":1,"error":{"code":-32601}}`, `JSON-RPC error: {"code":-32601}`},
		{"error null", 200, "application/json", `{"jsonrpc":"2.0","id":1,"error":null,"result":{}}`, ""},
		{"error nested in the result", 200, "application/json", `{"jsonrpc":"2.0","id":1,"result":{"structuredContent":{"error":"none"}}}`, ""},
		{"error quoted in a text", 200, "application/json", `{"jsonrpc":"2.0","id":1,"result":{"content":[{"text":"\"error\": 1"}]}}`, ""},
		{"tool error", 200, "application/json", `{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}`, "tool result isError"},
		{"tool success", 200, "application/json", `{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}`, ""},
		{"not JSON", 200, "text/plain", `"error"`, ""},
		{"status", 502, "application/json", `{"error":"bad gateway"}`, `HTTP 502: {"error":"bad gateway"}`},
		{"SSE result", 200, sse, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n", ""},
		{"SSE error after a notification", 200, sse,
			"data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"data\":\"\\\"error\\\"\"}}\r\n\r\n" +
				"event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1}}\r\n\r\n", `JSON-RPC error: {"code":1}`},
		{"SSE error split over data lines", 200, sse, "data: {\"jsonrpc\":\"2.0\",\ndata: \"error\":{\"code\":2}}\n", `JSON-RPC error: {"code":2}`},
		{"SSE chat chunks", 200, sse, "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"error\\\"\"}}]}\n\ndata: [DONE]\n\n", ""},
	}
	for _, tc := range tests {
		err := answerError(tc.status, []byte(tc.contentType), []byte(tc.body))
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestWorkersSendBackToBack(t *testing.T) {
	t.Parallel()
	var inFlight, most, calls atomic.Int64
	url := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(10 * time.Millisecond)
		_, _ = w.Write([]byte(`{}`))
	})
	s, err := runSummary(t, "--url", url, "--workers", "4", "--duration", "300ms")
	wantErr(t, err, "")
	// Each worker waits for its answer, so at most 4 calls are in flight, and 4 workers at 10 ms a call
	// make at most 120 calls in 300 ms; on a slow machine fewer, but not a handful.
	if most.Load() != 4 || s.Calls != int(calls.Load()) || s.Calls > 4*31 || s.Calls < 20 {
		t.Fatalf("in flight at most %d, calls %d (server saw %d)", most.Load(), s.Calls, calls.Load())
	}
	if s.Rate != 0 || s.RPS > float64(s.Calls)/0.3 || s.RPS < float64(s.Calls)/1.5 {
		t.Fatalf("rate %d, rps %.1f for %d calls in about 300 ms", s.Rate, s.RPS, s.Calls)
	}

	failing := serve(t, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusBadGateway) })
	s, err = runSummary(t, "--url", failing, "--workers", "2", "--duration", "50ms")
	wantErr(t, err, "calls failed (first: HTTP 502")
	if s.Errors == 0 || s.Errors != s.Calls {
		t.Fatalf("errors %d of %d calls", s.Errors, s.Calls)
	}
}
