package a2a_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/trace"
)

const (
	agentToken = "agent-token-0123456789abcdef"
	agentAuth  = "Bearer " + agentToken
	bigAnswer  = 17 << 20 // over the default a2a.max_response_bytes
)

// answerSizes are the sizes of the text a tellingAgent answers "big" and
// "medium" with: over the default limit, and under it but over 1 MiB.
var answerSizes = map[string]int{"big": bigAnswer, "medium": 2 << 20}

// tellingAgent is an A2A 1.0 JSON-RPC upstream whose answer the message
// text picks: one that quotes the Authorization header it received, or one
// too large for the gateway. It counts the messages it gets by text.
type tellingAgent struct {
	srv      *httptest.Server
	cardDown atomic.Bool // the card endpoint answers 503

	mu       sync.Mutex
	messages map[string]int
}

func startTellingAgent(t *testing.T) *tellingAgent {
	t.Helper()
	a := &tellingAgent{messages: map[string]int{}}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *tellingAgent) cardURL() string { return a.srv.URL + "/.well-known/agent-card.json" }

func (a *tellingAgent) count(text string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.messages[text]
}

func (a *tellingAgent) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/.well-known/agent-card.json" {
		if a.cardDown.Load() {
			http.Error(w, "card store down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		// The description quotes the credential in escapes, which only decoding the card reveals.
		_, _ = fmt.Fprintf(w, `{"name":"telling","description":"fetched with `+jsonEscapes(r.Header.Get("Authorization"))+`","version":"1",`+
			`"supportedInterfaces":[{"url":%q,"protocolBinding":"JSONRPC","protocolVersion":"1.0"}],`+
			`"capabilities":{"streaming":true},"defaultInputModes":["text/plain"],"defaultOutputModes":["text/plain"],"skills":[]}`,
			a.srv.URL)
		return
	}
	var req struct {
		ID     json.RawMessage        `json:"id"`
		Method string                 `json:"method"`
		Params a2a.SendMessageRequest `json:"params"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Params.Message == nil || len(req.Params.Message.Parts) == 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	text := req.Params.Message.Parts[0].Text()
	a.mu.Lock()
	a.messages[text]++
	a.mu.Unlock()
	told := "your token is " + r.Header.Get("Authorization")
	task := &a2a.Task{ID: a2a.NewTaskID(), ContextID: a2a.NewContextID()}
	result := func(ev a2a.Event) []byte {
		res, _ := json.Marshal(a2a.StreamResponse{Event: ev})
		return fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":%s}`, req.ID, res)
	}
	completed := func(status, artifact string) *a2a.Task {
		done := *task
		done.Status = a2a.TaskStatus{State: a2a.TaskStateCompleted, Message: a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart(status))}
		done.Artifacts = []*a2a.Artifact{{ID: a2a.NewArtifactID(), Parts: a2a.ContentParts{a2a.NewTextPart(artifact)}}}
		return &done
	}
	if req.Method == "SendStreamingMessage" {
		w.Header().Set("Content-Type", "text/event-stream")
		if size, ok := answerSizes[text]; ok {
			// Written raw: encoding 17 MiB under the race detector is slow.
			_, _ = fmt.Fprintf(w, `data: {"jsonrpc":"2.0","id":%s,"result":{"statusUpdate":{"taskId":"t-big","contextId":"c-big",`+
				`"status":{"state":"TASK_STATE_WORKING","message":{"messageId":"m-big","role":"ROLE_AGENT","parts":[{"text":"`, req.ID)
			_, _ = w.Write(bigText()[:size])
			_, _ = io.WriteString(w, `"}]}}}}}`+"\n\n")
			return
		}
		working := "working"
		switch text {
		case "tell":
			working = told
		case "tell-escaped":
			_, _ = fmt.Fprintf(w, `data: {"jsonrpc":"2.0","id":%s,"result":{"statusUpdate":{"taskId":%q,"contextId":%q,`+
				`"status":{"state":"TASK_STATE_WORKING","message":{"messageId":"m-e","role":"ROLE_AGENT","parts":[{"text":"%s"}]}}}}}`+"\n\n",
				req.ID, task.ID, task.ContextID, jsonEscapes(told))
			w.(http.Flusher).Flush()
		}
		for _, ev := range []a2a.Event{
			a2a.NewStatusUpdateEvent(task, a2a.TaskStateWorking, a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart(working))),
			completed("done", "done"),
		} {
			_, _ = fmt.Fprintf(w, "data: %s\n\n", result(ev))
			w.(http.Flusher).Flush()
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch text {
	case "tell-invalid":
		_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"note":%q}}`, req.ID, told)
	case "tell-http":
		http.Error(w, told, http.StatusInternalServerError)
	case "tell-escaped":
		_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":"rejected: %s"}}`, req.ID, jsonEscapes(told))
	case "tell-error":
		_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32603,"message":%q}}`, req.ID, "rejected: "+told)
	case "tell":
		_, _ = w.Write(result(completed(told, "artifact: "+told)))
	case "big", "medium":
		_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"task":{"id":"t-big","contextId":"c-big",`+
			`"status":{"state":"TASK_STATE_COMPLETED"},"artifacts":[{"artifactId":"a-big","parts":[{"text":"`, req.ID)
		_, _ = w.Write(bigText()[:answerSizes[text]])
		_, _ = io.WriteString(w, `"}]}]}}}`)
	default:
		_, _ = w.Write(result(completed("done", "ok")))
	}
}

var bigText = sync.OnceValue(func() []byte { return bytes.Repeat([]byte("x"), bigAnswer) })

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func leaks(s string) bool { return strings.Contains(s, agentToken) }

// jsonEscapes writes s as JSON \u escapes only, which a JSON decoder turns back into s.
func jsonEscapes(s string) string {
	var b strings.Builder
	for _, r := range s {
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

// spanOf waits for the span of one call to agent whose method is method.
func spanOf(t *testing.T, h *harness, agent, method string, match func(trace.Span) bool) trace.Span {
	t.Helper()
	return h.Sink.waitSpans(t, 1, func(s trace.Span) bool {
		return s.Agent == agent && attr(s, "a2a.method") == method && match(s)
	})[0]
}

// TestAgentSecretsNeverReachTheClient: whatever an agent quotes of its
// credentials comes back as [redacted] on both paths, and the span does
// not record it either.
func TestAgentSecretsNeverReachTheClient(t *testing.T) {
	t.Parallel()
	up := startTellingAgent(t)
	logs := &lockedBuffer{}
	h := startGatewayLogging(t, sba2a.Config{Agents: []sba2a.AgentConfig{
		{Name: "telling", CardURL: up.cardURL(), Headers: map[string]string{"Authorization": agentAuth}},
	}}, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() {
		if leaks(logs.String()) {
			t.Errorf("logs carry the agent's token:\n%s", logs.String())
		}
	})

	t.Run("JSON-RPC error", func(t *testing.T) {
		t.Parallel()
		_, err := h.client(keyAlice, "telling", a2a.Version).SendMessage(testCtx(t), textMessage("tell-error"))
		if err == nil || leaks(err.Error()) || !strings.Contains(err.Error(), "[redacted]") {
			t.Fatalf("err = %v", err)
		}
		s := spanOf(t, h, "telling", "SendMessage", func(s trace.Span) bool { return strings.HasPrefix(s.Error, "rejected") })
		if leaks(s.Error) || !strings.Contains(s.Error, "[redacted]") {
			t.Errorf("span error = %q", s.Error)
		}
		if n := up.count("tell-error"); n != 1 {
			t.Errorf("agent got the message %d times, want 1", n)
		}
	})
	t.Run("HTTP error body", func(t *testing.T) {
		t.Parallel()
		_, err := h.client(keyAlice, "telling", a2a.Version).SendMessage(testCtx(t), textMessage("tell-http"))
		if err == nil || leaks(err.Error()) {
			t.Fatalf("err = %v", err)
		}
		if n := up.count("tell-http"); n != 1 {
			t.Errorf("agent got the message %d times, want 1", n)
		}
	})
	// a2a-go quotes a result it cannot read in its error, which the gateway logs.
	t.Run("unreadable result", func(t *testing.T) {
		t.Parallel()
		_, err := h.client(keyAlice, "telling", a2a.Version).SendMessage(testCtx(t), textMessage("tell-invalid"))
		if err == nil || leaks(err.Error()) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("completed task on the fast path", func(t *testing.T) {
		t.Parallel()
		status, _, body := h.post("/a2a/telling", keyAlice, "1.0",
			`{"jsonrpc":"2.0","id":"r1","method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"tell"}]}}}`)
		if status != http.StatusOK || leaks(body) || strings.Count(body, "your token is [redacted]") != 2 {
			t.Fatalf("status %d: %s", status, body)
		}
		res, err := h.client(keyAlice, "telling", a2a.Version).SendMessage(testCtx(t), textMessage("tell"))
		if err != nil {
			t.Fatal(err)
		}
		task := res.(*a2a.Task)
		if got := task.Status.Message.Parts[0].Text(); got != "your token is [redacted]" {
			t.Errorf("status message = %q", got)
		}
		if got := artifactText(t, task); got != "artifact: your token is [redacted]" {
			t.Errorf("artifact = %q", got)
		}
	})
	t.Run("completed task on the slow path", func(t *testing.T) {
		t.Parallel()
		res, err := h.client(keyAlice, "telling", a2av0.Version).SendMessage(testCtx(t), textMessage("tell"))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(res)
		if leaks(string(raw)) || !strings.Contains(string(raw), "your token is [redacted]") {
			t.Errorf("result = %s", raw)
		}
	})
	// Quoted in JSON escapes, the credential passes the agent's bytes unseen
	// and appears once a2a-go has decoded them: in the error, the card and
	// stream events the gateway writes, and the error a2a-go's client reads.
	t.Run("escaped in a JSON-RPC error", func(t *testing.T) {
		t.Parallel()
		for _, v := range versions {
			_, err := h.client(keyAlice, "telling", v).SendMessage(testCtx(t), textMessage("tell-escaped"))
			if err == nil || leaks(err.Error()) || !strings.Contains(err.Error(), "[redacted]") {
				t.Errorf("%s: err = %v", v, err)
			}
		}
		status, _, body := h.post("/a2a/telling", keyAlice, "1.0",
			`{"jsonrpc":"2.0","id":"r1","method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"tell-escaped"}]}}}`)
		if leaks(body) || !strings.Contains(body, "[redacted]") {
			t.Errorf("status %d: %s", status, body)
		}
	})
	t.Run("escaped in a streamed event", func(t *testing.T) {
		t.Parallel()
		var seen []string
		for ev, err := range h.client(keyAlice, "telling", a2a.Version).SendStreamingMessage(testCtx(t), textMessage("tell-escaped")) {
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(ev)
			seen = append(seen, string(raw))
		}
		if all := strings.Join(seen, "\n"); leaks(all) || !strings.Contains(all, "your token is [redacted]") {
			t.Errorf("events: %s", all)
		}
	})
	t.Run("escaped in the card", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/a2a/telling/.well-known/agent-card.json", "/a2a"} {
			req, _ := http.NewRequest(http.MethodGet, h.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+keyAlice)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if leaks(string(body)) || !strings.Contains(string(body), "fetched with [redacted]") {
				t.Errorf("%s: %s", path, body)
			}
		}
	})
	t.Run("streamed event", func(t *testing.T) {
		t.Parallel()
		var seen []string
		for ev, err := range h.client(keyAlice, "telling", a2a.Version).SendStreamingMessage(testCtx(t), textMessage("tell")) {
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(ev)
			seen = append(seen, string(raw))
		}
		all := strings.Join(seen, "\n")
		if leaks(all) || !strings.Contains(all, "your token is [redacted]") {
			t.Errorf("events: %s", all)
		}
	})
}

// TestOversizeAnswerFailsTheCallOnce: an answer over a2a.max_response_bytes
// fails the call with a clear error on either path and in a stream, the
// agent got the message once, and the gateway goes on serving.
func TestOversizeAnswerFailsTheCallOnce(t *testing.T) {
	t.Parallel()
	const wantMsg = "upstream agent's answer is larger than the gateway accepts"
	tests := []struct {
		name    string
		version a2a.ProtocolVersion
		method  string // the span's
		stream  bool
		limit   int64  // a2a.max_response_bytes; 0: the default
		text    string // what the agent answers: "big" 17 MiB, "medium" 2 MiB
	}{
		{"fast path", a2a.Version, "SendMessage", false, 0, "big"},
		{"slow path", a2av0.Version, "message/send", false, 0, "big"},
		// a2a-go's SSE reader refuses a 10 MiB line itself, so the gateway's
		// own per-event limit shows below that.
		{"stream event", a2a.Version, "SendStreamingMessage", true, 0, "big"},
		{"stream event over a lower limit", a2a.Version, "SendStreamingMessage", true, 1 << 20, "medium"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := startTellingAgent(t)
			h := startGateway(t, sba2a.Config{MaxResponseBytes: tt.limit, Agents: []sba2a.AgentConfig{{Name: "big", CardURL: up.cardURL(), CostPerCallUSD: "0.01"}}})
			c := h.client(keyAlice, "big", tt.version)
			// Moving 17 MiB takes seconds under the race detector on a shared machine.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var err error
			if tt.stream {
				for _, err = range c.SendStreamingMessage(ctx, textMessage(tt.text)) {
					if err != nil {
						break
					}
				}
			} else {
				_, err = c.SendMessage(ctx, textMessage(tt.text))
			}
			if err == nil || !strings.Contains(err.Error(), wantMsg) {
				t.Fatalf("err = %v, want %q", err, wantMsg)
			}
			if n := up.count(tt.text); n != 1 {
				t.Errorf("agent got the message %d times, want 1", n)
			}
			s := spanOf(t, h, "big", tt.method, func(s trace.Span) bool { return s.Status == trace.StatusError })
			// Settled as other upstream failures are: nothing charged.
			if s.Error != wantMsg || s.CostNanoUSD != 0 {
				t.Errorf("span error = %q, cost %d; want %q, 0", s.Error, s.CostNanoUSD, wantMsg)
			}
			if _, err := c.SendMessage(ctx, textMessage("small")); err != nil {
				t.Errorf("next call: %v", err)
			}
		})
	}
}

// TestReloadChangesTheAnswerLimit: a2a.max_response_bytes applies from the
// next call after a reload, on the fast path (1.0 SendMessage) and the slow
// one (0.3 message/send), lowered and raised again.
func TestReloadChangesTheAnswerLimit(t *testing.T) {
	t.Parallel()
	const wantMsg = "upstream agent's answer is larger than the gateway accepts"
	for _, version := range []a2a.ProtocolVersion{a2a.Version, a2av0.Version} {
		t.Run(string(version), func(t *testing.T) {
			t.Parallel()
			up := startTellingAgent(t)
			cfg := func(limit int64) sba2a.Config {
				return sba2a.Config{MaxResponseBytes: limit, Agents: []sba2a.AgentConfig{{Name: "telling", CardURL: up.cardURL()}}}
			}
			h := startGateway(t, cfg(0))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, step := range []struct {
				limit   int64
				tooLong bool
			}{{0, false}, {1 << 20, true}, {0, false}} {
				if err := h.GW.Reload(cfg(step.limit)); err != nil {
					t.Fatal(err)
				}
				// The card is fetched anew with the agent's new clients.
				_, err := h.client(keyAlice, "telling", version).SendMessage(ctx, textMessage("medium"))
				if gotTooLong := err != nil && strings.Contains(err.Error(), wantMsg); gotTooLong != step.tooLong || (err != nil && !gotTooLong) {
					t.Fatalf("limit %d: a 2 MiB answer gave %v, want too long: %v", step.limit, err, step.tooLong)
				}
			}
		})
	}
}

// TestLimitReloadKeepsTheCard: an agent renewed for a new
// max_response_bytes keeps the card it had when fetching it again fails.
func TestLimitReloadKeepsTheCard(t *testing.T) {
	t.Parallel()
	up := startTellingAgent(t)
	cfg := func(limit int64) sba2a.Config {
		return sba2a.Config{MaxResponseBytes: limit, Agents: []sba2a.AgentConfig{{Name: "telling", CardURL: up.cardURL()}}}
	}
	h := startGateway(t, cfg(0))
	up.cardDown.Store(true)
	if err := h.GW.Reload(cfg(1 << 20)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client(keyAlice, "telling", a2a.Version).SendMessage(testCtx(t), textMessage("hello")); err != nil {
		t.Fatalf("call after the reload: %v", err)
	}
}

// TestReloadRedactsTheNewHeaders: the secrets are the headers in use,
// including after a reload changed them.
func TestReloadRedactsTheNewHeaders(t *testing.T) {
	t.Parallel()
	up := startTellingAgent(t)
	cfg := func(auth string) sba2a.Config {
		return sba2a.Config{Agents: []sba2a.AgentConfig{
			{Name: "telling", CardURL: up.cardURL(), Headers: map[string]string{"Authorization": auth}},
		}}
	}
	h := startGateway(t, cfg("Bearer old-token-0123456789"))
	const rotated = "rotated-token-0123456789"
	if err := h.GW.Reload(cfg("Bearer " + rotated)); err != nil {
		t.Fatal(err)
	}
	res, err := h.client(keyAlice, "telling", a2a.Version).SendMessage(testCtx(t), textMessage("tell"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.(*a2a.Task).Status.Message.Parts[0].Text(); got != "your token is [redacted]" {
		t.Errorf("status message = %q", got)
	}
}
