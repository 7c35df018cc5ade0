package a2a_test

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

// scriptedAgent is an A2A 1.0 JSON-RPC upstream that records the bytes it
// receives and answers with whatever its case scripts, so tests see exactly
// what the gateway forwards and how it treats odd answers.
type scriptedAgent struct {
	srv *httptest.Server

	mu       sync.Mutex
	received map[string][]string // path → request bodies
	reply    map[string]func(w http.ResponseWriter, id json.RawMessage)
}

func startScriptedAgent(t *testing.T) *scriptedAgent {
	t.Helper()
	a := &scriptedAgent{received: map[string][]string{}, reply: map[string]func(http.ResponseWriter, json.RawMessage){}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

// script registers an agent at /name and returns its card URL.
func (a *scriptedAgent) script(name string, reply func(w http.ResponseWriter, id json.RawMessage)) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reply["/"+name] = reply
	return a.srv.URL + "/" + name + "/.well-known/agent-card.json"
}

func (a *scriptedAgent) bodies(name string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.received["/"+name]...)
}

func (a *scriptedAgent) serve(w http.ResponseWriter, r *http.Request) {
	if name, ok := strings.CutSuffix(r.URL.Path, "/.well-known/agent-card.json"); ok {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"name":"scripted","description":"d","version":"1",`+
			`"supportedInterfaces":[{"url":%q,"protocolBinding":"JSONRPC","protocolVersion":"1.0"}],`+
			`"capabilities":{},"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[]}`,
			a.srv.URL+name)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req struct {
		ID json.RawMessage `json:"id"`
	}
	_ = json.Unmarshal(body, &req)
	a.mu.Lock()
	a.received[r.URL.Path] = append(a.received[r.URL.Path], string(body))
	reply := a.reply[r.URL.Path]
	a.mu.Unlock()
	if reply == nil {
		http.NotFound(w, r)
		return
	}
	reply(w, req.ID)
}

func taskResult(task string) func(http.ResponseWriter, json.RawMessage) {
	return func(w http.ResponseWriter, id json.RawMessage) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"task":%s}}`, id, task)
	}
}

const completedTask = `{"id":"t-1","contextId":"c-1","status":{"state":"TASK_STATE_COMPLETED"}}`

func sendBody(message string) string {
	return `{"jsonrpc":"2.0","id":"r1","method":"SendMessage","params":{"message":` + message + `}}`
}

const plainMessage = `{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}`

// TestSendFastPathForwardsBytesOnlyWhenAllParsersAgree checks the fast path
// against what the slow path would have done: clean calls travel byte for
// byte; a body or answer with a doubled or case-variant deciding field is
// re-encoded from what the gateway decided; answers the fast path does not
// pass through are answered from the one upstream exchange, never a second.
func TestSendFastPathForwardsBytesOnlyWhenAllParsersAgree(t *testing.T) {
	t.Parallel()
	up := startScriptedAgent(t)
	type outcome struct {
		status int
		body   string
	}
	tests := []struct {
		name    string
		body    string
		timeout time.Duration // the agent's; 0: the default
		reply   func(http.ResponseWriter, json.RawMessage)
		// check gets what the upstream received and what the client got.
		check func(t *testing.T, received []string, got outcome)
	}{
		{
			name: "clean call travels byte for byte", body: sendBody(plainMessage), reply: taskResult(completedTask),
			check: func(t *testing.T, received []string, got outcome) {
				want := `{"jsonrpc":"2.0","id":"r1","result":{"task":` + completedTask + `}}`
				if len(received) != 1 || received[0] != sendBody(plainMessage) || got.body != want {
					t.Errorf("upstream got %q, client got %q", received, got.body)
				}
			},
		},
		{
			name:  "case-variant contextId is re-encoded with the value the gateway checked",
			body:  sendBody(`{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}],"contextId":"c-a","contextID":"c-b"}`),
			reply: taskResult(completedTask),
			check: func(t *testing.T, received []string, got outcome) {
				if len(received) != 1 {
					t.Fatalf("upstream got %d requests", len(received))
				}
				var req struct {
					Params struct {
						Message map[string]json.RawMessage `json:"message"`
					} `json:"params"`
				}
				if err := json.Unmarshal([]byte(received[0]), &req); err != nil {
					t.Fatal(err)
				}
				for k, v := range req.Params.Message {
					if strings.EqualFold(k, "contextId") && (k != "contextId" || string(v) != `"c-b"`) {
						t.Errorf("upstream got %s: %s in %s", k, v, received[0])
					}
				}
			},
		},
		{
			// An agent that reads JSON-RPC with a protobuf JSON parser (ProtoJSON, as A2A 1.0's proto defines the
			// JSON) takes a field under its proto name as well: the gateway must not forward one it did not check.
			name: "a push config under its proto name does not reach an agent that does not allow push",
			body: `{"jsonrpc":"2.0","id":"r1","method":"SendMessage","params":{"message":` + plainMessage +
				`,"configuration":{"task_push_notification_config":{"url":"http://169.254.169.254/hook","token":"t"}}}}`,
			reply: taskResult(completedTask),
			check: func(t *testing.T, received []string, got outcome) {
				for _, r := range received {
					if strings.Contains(r, "169.254.169.254") {
						t.Errorf("upstream got the webhook: %s", r)
					}
				}
			},
		},
		{
			name:  "a task id under its proto name is not forwarded unchecked",
			body:  sendBody(`{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}],"task_id":"t-of-another-key"}`),
			reply: taskResult(completedTask),
			check: func(t *testing.T, received []string, got outcome) {
				for _, r := range received {
					if strings.Contains(r, "t-of-another-key") {
						t.Errorf("upstream got the unchecked task id: %s", r)
					}
				}
			},
		},
		{
			name:  "duplicate params are re-encoded",
			body:  `{"jsonrpc":"2.0","id":"r1","method":"SendMessage","params":{"message":` + plainMessage + `},"params":{"message":` + plainMessage + `}}`,
			reply: taskResult(completedTask),
			check: func(t *testing.T, received []string, got outcome) {
				if len(received) != 1 || strings.Count(received[0], `"params"`) != 1 || strings.Contains(received[0], `"r1"`) {
					t.Errorf("upstream got %q", received)
				}
			},
		},
		{
			name:  "case-variant task id in the answer is re-encoded",
			body:  sendBody(plainMessage),
			reply: taskResult(`{"id":"t-1","ID":"t-2","contextId":"c-1","status":{"state":"TASK_STATE_COMPLETED"}}`),
			check: func(t *testing.T, received []string, got outcome) {
				var resp struct {
					Result struct {
						Task map[string]json.RawMessage `json:"task"`
					} `json:"result"`
				}
				if err := json.Unmarshal([]byte(got.body), &resp); err != nil {
					t.Fatal(err)
				}
				for k, v := range resp.Result.Task {
					if strings.EqualFold(k, "id") && (k != "id" || string(v) != `"t-2"`) {
						t.Errorf("client got %s: %s in %s", k, v, got.body)
					}
				}
			},
		},
		{
			name: "agent's JSON-RPC error is answered from the one exchange",
			body: sendBody(plainMessage),
			reply: func(w http.ResponseWriter, id json.RawMessage) {
				_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32001,"message":"task not found"}}`, id)
			},
			check: func(t *testing.T, received []string, got outcome) {
				if len(received) != 1 {
					t.Errorf("upstream got %d requests, want 1", len(received))
				}
				if e := rpcErr(t, got.body); e.Code != -32001 {
					t.Errorf("error = %+v", e)
				}
			},
		},
		{
			name: "answer for another id is re-encoded for the client's",
			body: sendBody(plainMessage),
			reply: func(w http.ResponseWriter, _ json.RawMessage) {
				taskResult(completedTask)(w, json.RawMessage(`"someone-else"`))
			},
			check: func(t *testing.T, received []string, got outcome) {
				if len(received) != 1 || !strings.Contains(got.body, `"id":"r1"`) || !strings.Contains(got.body, `"t-1"`) {
					t.Errorf("upstream got %d requests; client got %s", len(received), got.body)
				}
			},
		},
		{
			name: "HTTP 500 is an unavailable upstream, not a second try",
			body: sendBody(plainMessage),
			reply: func(w http.ResponseWriter, _ json.RawMessage) {
				http.Error(w, "boom", http.StatusInternalServerError)
			},
			check: func(t *testing.T, received []string, got outcome) {
				if len(received) != 1 {
					t.Errorf("upstream got %d requests, want 1", len(received))
				}
				if e := rpcErr(t, got.body); e.Message != "upstream agent unavailable" || strings.Contains(got.body, "boom") {
					t.Errorf("client got %s", got.body)
				}
			},
		},
		{
			name: "an agent past its timeout is not asked twice",
			body: sendBody(plainMessage), timeout: 100 * time.Millisecond,
			reply: func(w http.ResponseWriter, id json.RawMessage) {
				time.Sleep(300 * time.Millisecond)
				taskResult(completedTask)(w, id)
			},
			check: func(t *testing.T, received []string, got outcome) {
				if len(received) != 1 {
					t.Errorf("upstream got %d requests, want 1", len(received))
				}
				if e := rpcErr(t, got.body); e.Code != -32603 {
					t.Errorf("client got %s", got.body)
				}
			},
		},
		{
			name: "a gzipped answer reads as net/http reads it",
			body: sendBody(plainMessage),
			reply: func(w http.ResponseWriter, id json.RawMessage) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Encoding", "gzip")
				zw := gzip.NewWriter(w)
				_, _ = fmt.Fprintf(zw, `{"jsonrpc":"2.0","id":%s,"result":{"task":%s}}`, id, completedTask)
				_ = zw.Close()
			},
			check: func(t *testing.T, received []string, got outcome) {
				if len(received) != 1 || got.status != http.StatusOK || !strings.Contains(got.body, `"t-1"`) {
					t.Errorf("upstream got %d requests; client got %d %s", len(received), got.status, got.body)
				}
			},
		},
		{
			name: "a redirect is followed, as net/http does",
			body: sendBody(plainMessage),
			reply: func(w http.ResponseWriter, _ json.RawMessage) {
				w.Header().Set("Location", "/redirect-target")
				w.WriteHeader(http.StatusTemporaryRedirect)
			},
			check: func(t *testing.T, received []string, got outcome) {
				if got.status != http.StatusOK || !strings.Contains(got.body, `"t-1"`) {
					t.Errorf("client got %d %s", got.status, got.body)
				}
			},
		},
	}
	up.script("redirect-target", taskResult(completedTask))
	cfg := sba2a.Config{}
	for i, tt := range tests {
		cfg.Agents = append(cfg.Agents, sba2a.AgentConfig{
			Name: fmt.Sprintf("case%d", i), CardURL: up.script(fmt.Sprintf("case%d", i), tt.reply), Timeout: tt.timeout,
		})
	}
	h := startGateway(t, cfg)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, hdr, body := h.post(fmt.Sprintf("/a2a/case%d", i), keyAlice, "1.0", tt.body)
			if tp := hdr.Values("traceparent"); len(tp) != 1 {
				t.Errorf("traceparent headers = %q, want one", tp)
			}
			tt.check(t, up.bodies(fmt.Sprintf("case%d", i)), outcome{status: status, body: body})
		})
	}
}

// TestClientIDComesBackAsSent checks that every path answers with the
// client's own JSON-RPC id, of its own type (the official JS SDK sends
// numbers), and passes the agent's error on instead of losing it: the fast
// path forwards the client's id, and an answer it hands to the slow path
// must still read as an answer to a2a-go's client.
func TestClientIDComesBackAsSent(t *testing.T) {
	t.Parallel()
	echo := startMockAgent(t, mock.A2AOptions{Name: "echo-upstream"})
	up := startScriptedAgent(t)
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{
		{Name: "echo", CardURL: cardURL(echo)},
		// An answer the fast path does not pass through (a case-variant task
		// id) goes to the slow path with the agent's id in it.
		{Name: "variant", CardURL: up.script("variant",
			taskResult(`{"id":"t-1","ID":"t-2","contextId":"c-1","status":{"state":"TASK_STATE_COMPLETED"}}`))},
	}})
	const (
		noParts  = `{"messageId":"m1","role":"ROLE_USER","parts":[]}`
		noParts0 = `{"messageId":"m1","kind":"message","role":"user","parts":[]}`
		hi0      = `{"messageId":"m1","kind":"message","role":"user","parts":[{"kind":"text","text":"hi"}]}`
	)
	call := func(method, params string) func(id string) string {
		return func(id string) string {
			return `{"jsonrpc":"2.0","id":` + id + `,"method":"` + method + `","params":` + params + `}`
		}
	}
	paths := []struct {
		name, agent, version string
		body                 func(id string) string
		code                 int    // the JSON-RPC error code expected; 0: a result
		want                 string // in the answer: the error message or a result's text
	}{
		{"1.0 SendMessage, agent's error", "echo", "1.0", call("SendMessage", `{"message":`+noParts+`}`), -32602, "message parts is required"},
		{"1.0 SendMessage, result", "echo", "1.0", call("SendMessage", `{"message":`+plainMessage+`}`), 0, "echo: hi"},
		{"1.0 SendMessage, result the slow path re-encodes", "variant", "1.0", call("SendMessage", `{"message":`+plainMessage+`}`), 0, `"t-2"`},
		{"1.0 SendStreamingMessage, agent's error", "echo", "1.0", call("SendStreamingMessage", `{"message":`+noParts+`}`), -32602, "message parts is required"},
		{"1.0 CancelTask, unknown task", "echo", "1.0", call("CancelTask", `{"id":"no-such-task"}`), -32001, ""},
		{"0.3 message/send, agent's error", "echo", "0.3", call("message/send", `{"message":`+noParts0+`}`), -32602, "message parts is required"},
		{"0.3 message/send, result", "echo", "0.3", call("message/send", `{"message":`+hi0+`}`), 0, "echo: hi"},
	}
	ids := []string{`7`, `0`, `123456789012345`, `1.5`, `-3`, `"abc"`, `""`}
	for _, p := range paths {
		for _, id := range ids {
			t.Run(p.name+" id "+id, func(t *testing.T) {
				t.Parallel()
				status, _, body := h.post("/a2a/"+p.agent, keyAlice, p.version, p.body(id))
				if strings.HasPrefix(p.name, "1.0 SendStreamingMessage") {
					var events []string
					for line := range strings.Lines(body) {
						if data, ok := strings.CutPrefix(line, "data:"); ok {
							events = append(events, strings.TrimSpace(data))
						}
					}
					if len(events) != 1 {
						t.Fatalf("stream answer %q, want one event", body)
					}
					body = events[0]
				}
				var resp struct {
					ID     json.RawMessage `json:"id"`
					Result json.RawMessage `json:"result"`
					Error  *wireError      `json:"error"`
				}
				if err := json.Unmarshal([]byte(body), &resp); err != nil {
					t.Fatalf("status %d, answer %s: %v", status, body, err)
				}
				if string(resp.ID) != id {
					t.Errorf("id = %s, want %s: %s", resp.ID, id, body)
				}
				switch {
				case p.code == 0 && (resp.Error != nil || resp.Result == nil):
					t.Errorf("status %d, want a result: %s", status, body)
				case p.code != 0 && (resp.Error == nil || resp.Error.Code != p.code):
					t.Errorf("status %d, want error %d: %s", status, p.code, body)
				case !strings.Contains(body, p.want):
					t.Errorf("answer %s, want %q in it", body, p.want)
				}
			})
		}
	}
}
