package a2a_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

var versions = []a2a.ProtocolVersion{a2a.Version, a2av0.Version}

func cardURL(s *mock.A2AServer) string { return s.URL + "/.well-known/agent-card.json" }

// twoAgents starts an instant echo agent and a slow one (a task stays
// "working" for a minute unless canceled) behind one gateway. echo takes
// push-config calls, so that ownership, not their refusal, answers them.
func twoAgents(t *testing.T) (*harness, *mock.A2AServer, *mock.A2AServer) {
	t.Helper()
	echo := startMockAgent(t, mock.A2AOptions{Name: "echo-upstream"})
	slow := startMockAgent(t, mock.A2AOptions{Name: "slow-upstream", Latency: time.Minute})
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{
		{Name: "echo", CardURL: cardURL(echo), CostPerCallUSD: "0.01", PushNotifications: true},
		{Name: "slow", CardURL: cardURL(slow)},
	}})
	return h, echo, slow
}

func artifactText(t *testing.T, task *a2a.Task) string {
	t.Helper()
	if len(task.Artifacts) == 0 || len(task.Artifacts[0].Parts) == 0 {
		t.Fatalf("task %s has no artifact", task.ID)
	}
	return task.Artifacts[0].Parts[0].Text()
}

func TestSendAndGetTaskInBothVersions(t *testing.T) {
	t.Parallel()
	h, _, _ := twoAgents(t)
	for _, v := range versions {
		t.Run(string(v), func(t *testing.T) {
			ctx := testCtx(t)
			c := h.client(keyAlice, "echo", v)
			res, err := c.SendMessage(ctx, textMessage("hi "+string(v)))
			if err != nil {
				t.Fatal(err)
			}
			task, ok := res.(*a2a.Task)
			if !ok {
				t.Fatalf("result is %T, want a task", res)
			}
			if task.Status.State != a2a.TaskStateCompleted || artifactText(t, task) != "echo: hi "+string(v) {
				t.Fatalf("task state %s, artifact %q", task.Status.State, artifactText(t, task))
			}
			got, err := c.GetTask(ctx, &a2a.GetTaskRequest{ID: task.ID})
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != task.ID || got.Status.State != a2a.TaskStateCompleted {
				t.Fatalf("GetTask = %s %s", got.ID, got.Status.State)
			}
		})
	}
}

func TestStreamRelaysStatusAndArtifacts(t *testing.T) {
	t.Parallel()
	h, _, _ := twoAgents(t)
	for _, v := range versions {
		t.Run(string(v), func(t *testing.T) {
			ctx := testCtx(t)
			c := h.client(keyAlice, "echo", v)
			var states []a2a.TaskState
			var artifact string
			for ev, err := range c.SendStreamingMessage(ctx, textMessage("streamed")) {
				if err != nil {
					t.Fatal(err)
				}
				switch e := ev.(type) {
				case *a2a.Task:
					states = append(states, e.Status.State)
				case *a2a.TaskStatusUpdateEvent:
					states = append(states, e.Status.State)
				case *a2a.TaskArtifactUpdateEvent:
					artifact = e.Artifact.Parts[0].Text()
				}
			}
			if artifact != "echo: streamed" {
				t.Fatalf("artifact = %q", artifact)
			}
			if len(states) < 2 || states[len(states)-1] != a2a.TaskStateCompleted {
				t.Fatalf("states = %v, want working... completed", states)
			}
		})
	}
}

// startSlowTask streams a message to the slow agent and returns the task id
// once the first event arrives; stop disconnects the stream.
func startSlowTask(t *testing.T, h *harness, key string, v a2a.ProtocolVersion) (id a2a.TaskID, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	c := h.client(key, "slow", v)
	ids := make(chan a2a.TaskID, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range c.SendStreamingMessage(ctx, textMessage("take your time")) {
			if err != nil {
				return
			}
			select {
			case ids <- ev.TaskInfo().TaskID:
			default:
			}
		}
	}()
	select {
	case id = <-ids:
	case <-ctx.Done():
		t.Fatal("no event from the slow agent")
	}
	return id, func() { cancel(); <-done }
}

func TestCancelAndSubscribe(t *testing.T) {
	t.Parallel()
	h, _, _ := twoAgents(t)
	for _, v := range versions {
		t.Run(string(v), func(t *testing.T) {
			ctx := testCtx(t)
			id, stop := startSlowTask(t, h, keyAlice, v)
			defer stop()
			c := h.client(keyAlice, "slow", v)

			for ev, err := range c.SubscribeToTask(ctx, &a2a.SubscribeToTaskRequest{ID: id}) {
				if err != nil {
					t.Fatalf("subscribe: %v", err)
				}
				if ev.TaskInfo().TaskID != id {
					t.Fatalf("subscribed event for task %s, want %s", ev.TaskInfo().TaskID, id)
				}
				break
			}

			task, err := c.CancelTask(ctx, &a2a.CancelTaskRequest{ID: id})
			if err != nil {
				t.Fatal(err)
			}
			if task.Status.State != a2a.TaskStateCanceled {
				t.Fatalf("state after cancel = %s", task.Status.State)
			}
		})
	}
}

// Another key gets "task not found" for every task call, exactly like for a
// task that does not exist.
func TestTasksAreIsolatedBetweenKeys(t *testing.T) {
	t.Parallel()
	h, _, _ := twoAgents(t)
	ctx := testCtx(t)
	alice := h.client(keyAlice, "echo", a2a.Version)
	res, err := alice.SendMessage(ctx, textMessage("mine"))
	if err != nil {
		t.Fatal(err)
	}
	id := res.(*a2a.Task).ID
	bob := h.client(keyBob, "echo", a2a.Version)

	calls := map[string]func(a2a.TaskID) error{
		"get":    func(id a2a.TaskID) error { _, err := bob.GetTask(ctx, &a2a.GetTaskRequest{ID: id}); return err },
		"cancel": func(id a2a.TaskID) error { _, err := bob.CancelTask(ctx, &a2a.CancelTaskRequest{ID: id}); return err },
		"subscribe": func(id a2a.TaskID) error {
			for _, err := range bob.SubscribeToTask(ctx, &a2a.SubscribeToTaskRequest{ID: id}) {
				return err
			}
			return nil
		},
		"continue": func(id a2a.TaskID) error {
			req := textMessage("hijack")
			req.Message.TaskID = id
			_, err := bob.SendMessage(ctx, req)
			return err
		},
		// An agent may read a referenced task to the caller as context.
		"refer to": func(id a2a.TaskID) error {
			req := textMessage("what did alice get?")
			req.Message.ReferenceTasks = []a2a.TaskID{id}
			_, err := bob.SendMessage(ctx, req)
			return err
		},
		"refer to, streaming": func(id a2a.TaskID) error {
			req := textMessage("what did alice get?")
			req.Message.ReferenceTasks = []a2a.TaskID{id}
			for _, err := range bob.SendStreamingMessage(ctx, req) {
				return err
			}
			return nil
		},
		"get push config": func(id a2a.TaskID) error {
			_, err := bob.GetTaskPushConfig(ctx, &a2a.GetTaskPushConfigRequest{TaskID: id, ID: "x"})
			return err
		},
		"list push configs": func(id a2a.TaskID) error {
			_, err := bob.ListTaskPushConfigs(ctx, &a2a.ListTaskPushConfigRequest{TaskID: id})
			return err
		},
		"create push config": func(id a2a.TaskID) error {
			_, err := bob.CreateTaskPushConfig(ctx, &a2a.PushConfig{TaskID: id, URL: "http://127.0.0.1:1/hook"})
			return err
		},
		"delete push config": func(id a2a.TaskID) error {
			return bob.DeleteTaskPushConfig(ctx, &a2a.DeleteTaskPushConfigRequest{TaskID: id, ID: "x"})
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			for _, target := range []a2a.TaskID{id, "no-such-task"} {
				if err := call(target); !errors.Is(err, a2a.ErrTaskNotFound) {
					t.Errorf("bob %s %s: err = %v, want task not found", name, target, err)
				}
			}
		})
	}

	t.Run("own reference", func(t *testing.T) {
		req := textMessage("and now?")
		req.Message.ReferenceTasks = []a2a.TaskID{id}
		if _, err := alice.SendMessage(ctx, req); err != nil {
			t.Fatalf("alice referring to her own task: %v", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		mine, err := alice.ListTasks(ctx, &a2a.ListTasksRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !hasTask(mine.Tasks, id) {
			t.Errorf("alice's list misses her task")
		}
		theirs, err := bob.ListTasks(ctx, &a2a.ListTasksRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if hasTask(theirs.Tasks, id) {
			t.Errorf("bob's list shows alice's task")
		}
		// A page that is not the last must not carry the agent's count of every key's tasks either.
		page, err := bob.ListTasks(ctx, &a2a.ListTasksRequest{PageSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		if page.NextPageToken == "" || page.TotalSize != len(page.Tasks) {
			t.Errorf("bob's first page of one: %d tasks, total %d, next page %q; want a next page and no other key's count",
				len(page.Tasks), page.TotalSize, page.NextPageToken)
		}
	})

	t.Run("same wire answer as a missing task", func(t *testing.T) {
		body := `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":%q}}`
		_, _, owned := h.post("/a2a/echo", keyBob, "1.0", fmt.Sprintf(body, id))
		_, _, missing := h.post("/a2a/echo", keyBob, "1.0", fmt.Sprintf(body, "no-such-task"))
		if a, b := rpcErr(t, owned), rpcErr(t, missing); a != b {
			t.Errorf("owned task answers %+v, missing task %+v", a, b)
		}
	})
}

func hasTask(tasks []*a2a.Task, id a2a.TaskID) bool {
	for _, task := range tasks {
		if task.ID == id {
			return true
		}
	}
	return false
}

type wireError struct {
	Code    int
	Message string
}

func rpcErr(t *testing.T, body string) wireError {
	t.Helper()
	var resp struct {
		Error *wireError `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Error == nil {
		t.Fatalf("not a JSON-RPC error: %s", body)
	}
	return *resp.Error
}

func TestRPCErrors(t *testing.T) {
	t.Parallel()
	h, _, _ := twoAgents(t)
	send := `{"jsonrpc":"2.0","id":"r1","method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`
	tests := []struct {
		name, path, key, version, body string
		status, code                   int
	}{
		{"no key", "/a2a/echo", "", "1.0", send, 401, -31401},
		{"wrong key", "/a2a/echo", "sk-wrong-0123456789", "1.0", send, 401, -31401},
		{"agent not allowed, answered as unknown", "/a2a/echo", keyCarol, "1.0", send, 404, -32000},
		{"unknown agent, not allowed", "/a2a/nope", keyCarol, "1.0", send, 404, -32000},
		{"unknown agent", "/a2a/nope", keyAlice, "1.0", send, 404, -32000},
		{"malformed JSON", "/a2a/echo", keyAlice, "1.0", `{"jsonrpc":`, 200, -32700},
		{"not JSON-RPC 2.0", "/a2a/echo", keyAlice, "1.0", `{"id":1,"method":"SendMessage"}`, 200, -32600},
		{"unknown method", "/a2a/echo", keyAlice, "1.0", `{"jsonrpc":"2.0","id":1,"method":"Nope"}`, 200, -32601},
		{"0.3 method on 1.0", "/a2a/echo", keyAlice, "1.0", `{"jsonrpc":"2.0","id":1,"method":"message/send"}`, 200, -32601},
		{"unsupported version", "/a2a/echo", keyAlice, "2.0", send, 200, -32009},
		{"bad params", "/a2a/echo", keyAlice, "1.0", `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":7}}`, 200, -32602},
		{"no params", "/a2a/echo", keyAlice, "1.0", `{"jsonrpc":"2.0","id":1,"method":"GetTask"}`, 200, -32602},
		{"null params, 0.3", "/a2a/echo", keyAlice, "0.3", `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":null}`, 200, -32602},
		{"no params, stream", "/a2a/echo", keyAlice, "1.0", `{"jsonrpc":"2.0","id":1,"method":"SendStreamingMessage"}`, 200, -32602},
		{"batch", "/a2a/echo", keyAlice, "1.0", `[` + send + `]`, 200, -32600},
	}
	// a2a-go refuses these params after the gateway admitted the call: it
	// has its span, as a call the upstream refused would.
	admitted := map[string]bool{"bad params": true}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, hdr, body := h.post(tt.path, tt.key, tt.version, tt.body)
			if status != tt.status {
				t.Errorf("status = %d, want %d (%s)", status, tt.status, body)
			}
			if got := rpcErr(t, body); got.Code != tt.code {
				t.Errorf("code = %d (%s), want %d", got.Code, got.Message, tt.code)
			}
			if strings.Contains(body, keyAlice) || strings.Contains(body, keyCarol) {
				t.Errorf("error body leaks the key: %s", body)
			}
			if joined := hdr.Get("traceparent") != ""; joined != admitted[tt.name] {
				t.Errorf("traceparent %q on the answer, want one: %v", hdr.Get("traceparent"), admitted[tt.name])
			}
		})
	}
	// Like the model and tool layers, refused calls leave no span: a call
	// without a key must not count as a request or join anyone's trace.
	t.Cleanup(func() {
		time.Sleep(100 * time.Millisecond) // several of the recorder's 5 ms flushes
		h.Sink.mu.Lock()
		defer h.Sink.mu.Unlock()
		for _, s := range h.Sink.spans {
			if s.Error == "invalid params" {
				continue // the admitted "bad params" call
			}
			t.Errorf("refused call left a span: %s status %q http %d error %q", s.Name, s.Status, s.HTTPStatus, s.Error)
		}
	})
}

func TestSendWithoutVersionHeaderUses1_0MethodNames(t *testing.T) {
	t.Parallel()
	h, _, _ := twoAgents(t)
	body := `{"jsonrpc":"2.0","id":"r1","method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"plain"}]}}}`
	status, hdr, resp := h.post("/a2a/echo", keyAlice, "", body)
	if status != 200 || !strings.Contains(resp, "echo: plain") {
		t.Fatalf("status %d: %s", status, resp)
	}
	if got := hdr.Get("x-switchboard-cost-usd"); got != "0.01" {
		t.Errorf("x-switchboard-cost-usd = %q, want 0.01", got)
	}
	legacy := `{"jsonrpc":"2.0","id":"r2","method":"message/send","params":{"message":{"messageId":"m2","kind":"message","role":"user","parts":[{"kind":"text","text":"old"}]}}}`
	status, _, resp = h.post("/a2a/echo", keyAlice, "", legacy)
	if status != 200 || !strings.Contains(resp, "echo: old") {
		t.Fatalf("0.3 without header: status %d: %s", status, resp)
	}
}

func TestAgentRateLimit(t *testing.T) {
	t.Parallel()
	h, _, _ := twoAgents(t)
	send := `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`
	if status, _, body := h.post("/a2a/echo", keyDave, "1.0", send); status != 200 {
		t.Fatalf("first call: %d %s", status, body)
	}
	status, hdr, body := h.post("/a2a/echo", keyDave, "1.0", send)
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("second call: %d, Retry-After %q: %s", status, hdr.Get("Retry-After"), body)
	}
	if rpcErr(t, body).Code != -32000 {
		t.Fatalf("second call body: %s", body)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func TestUpstreamFailure(t *testing.T) {
	t.Parallel()
	dying := startMockAgent(t, mock.A2AOptions{Name: "dying"})
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{
		{Name: "down", CardURL: "http://" + freeAddr(t) + "/.well-known/agent-card.json"},
		{Name: "dying", CardURL: cardURL(dying)},
	}})
	ctx := testCtx(t)

	t.Run("card of an agent that never answered", func(t *testing.T) {
		status, _, body := h.get("/a2a/down/.well-known/agent-card.json", keyAlice, "1.0")
		if status != http.StatusBadGateway || rpcErr(t, body).Message != "upstream agent unavailable" {
			t.Fatalf("status %d: %s", status, body)
		}
	})
	t.Run("call to an agent that never answered", func(t *testing.T) {
		send := `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`
		_, _, body := h.post("/a2a/down", keyAlice, "1.0", send)
		if e := rpcErr(t, body); e.Code != -32000 || e.Message != "upstream agent unavailable" {
			t.Fatalf("error = %+v", e)
		}
	})
	t.Run("agent gone after start-up", func(t *testing.T) {
		c := h.client(keyAlice, "dying", a2a.Version)
		if err := dying.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := c.SendMessage(ctx, textMessage("anyone?"))
		if !errors.Is(err, a2a.ErrServerError) || !strings.Contains(err.Error(), "upstream agent unavailable") {
			t.Fatalf("err = %v", err)
		}
		for _, err := range c.SendStreamingMessage(ctx, textMessage("anyone?")) {
			if !errors.Is(err, a2a.ErrServerError) {
				t.Fatalf("stream err = %v", err)
			}
		}
	})
}

func TestSpanPerCallWithTraceContext(t *testing.T) {
	t.Parallel()
	h, echo, _ := twoAgents(t)
	ctx := testCtx(t)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	hc := &http.Client{Transport: authTransport{key: keyAlice, traceparent: "00-" + traceID + "-" + parentID + "-01"}}
	c := h.clientWith(hc, "echo", a2a.Version)
	res, err := c.SendMessage(ctx, textMessage("traced"))
	if err != nil {
		t.Fatal(err)
	}
	task := res.(*a2a.Task)

	spans := h.Sink.waitSpans(t, 1, func(s trace.Span) bool {
		return s.TraceID.String() == traceID && attr(s, "a2a.method") == "SendMessage"
	})
	s := spans[0]
	checks := []struct {
		what      string
		got, want any
	}{
		{"layer", s.Layer, trace.LayerAgent},
		{"name", s.Name, "invoke_agent echo"},
		{"agent", s.Agent, "echo"},
		{"parent", s.ParentSpanID.String(), parentID},
		{"key", s.KeyName, "alice"},
		{"status", s.Status, trace.StatusOK},
		{"cost", s.CostNanoUSD, int64(10_000_000)},
		{"task_id", attr(s, "task_id"), string(task.ID)},
		{"context_id", attr(s, "context_id"), task.ContextID},
		{"states", attr(s, "states"), string(a2a.TaskStateCompleted)},
		{"upstream traceparent", echo.LastTraceparent(), "00-" + traceID + "-" + s.SpanID.String() + "-01"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func attr(s trace.Span, key string) string {
	for _, a := range s.Attrs {
		if a.Key == key {
			return a.Value
		}
	}
	return ""
}

// A client that goes away mid-stream ends the relay (and with it the
// upstream stream) at the next keep-alive, not when the task ends.
func TestClientDisconnectEndsTheStream(t *testing.T) {
	t.Parallel()
	slow := startMockAgent(t, mock.A2AOptions{Latency: time.Minute})
	h := startGateway(t, sba2a.Config{StreamKeepAlive: 20 * time.Millisecond, Agents: []sba2a.AgentConfig{{Name: "slow", CardURL: cardURL(slow)}}})
	_, stop := startSlowTask(t, h, keyAlice, a2a.Version)
	stop()
	spans := h.Sink.waitSpans(t, 1, func(s trace.Span) bool { return attr(s, "a2a.method") == "SendStreamingMessage" })
	// Recorded as the client's doing, like an LLM stream the client left.
	if s := spans[0]; s.Status != trace.StatusError || s.HTTPStatus != 499 || s.Error != "client closed the stream" {
		t.Errorf("span of the abandoned stream: status %q, http %d, error %q", s.Status, s.HTTPStatus, s.Error)
	}
}

// headerRecorder is a reverse proxy in front of a mock agent that keeps the
// headers of every request it forwards.
type headerRecorder struct {
	mu   sync.Mutex
	seen []http.Header
}

func (r *headerRecorder) all() []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func startHeaderRecorder(t *testing.T, target string) (*headerRecorder, string) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &headerRecorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, r.Header.Clone())
		rec.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

// The upstream gets its configured credentials, the gateway's trace context
// and its own protocol version, never the caller's gateway key.
func TestUpstreamSeesItsOwnHeadersOnly(t *testing.T) {
	t.Parallel()
	up := startMockAgent(t, mock.A2AOptions{})
	rec, recURL := startHeaderRecorder(t, up.URL)
	creds := map[string]string{"Authorization": "Bearer upstream-secret", "X-Tenant": "t1"}
	card := `{"name":"u","supportedInterfaces":[{"url":"` + recURL + `","protocolBinding":"JSONRPC","protocolVersion":"1.0"}],` +
		`"capabilities":{"streaming":true}}`
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{
		{Name: "inline", Card: card, Headers: creds},
		{Name: "fetched", CardURL: recURL + "/.well-known/agent-card.json", Headers: creds},
	}})
	if _, err := h.client(keyAlice, "inline", a2a.Version).SendMessage(testCtx(t), textMessage("hi")); err != nil {
		t.Fatal(err)
	}
	seen := rec.all()
	if len(seen) < 2 {
		t.Fatalf("upstream saw %d requests, want the card fetch and the call", len(seen))
	}
	for i, hdr := range seen {
		if hdr.Get("Authorization") != "Bearer upstream-secret" || hdr.Get("X-Tenant") != "t1" {
			t.Errorf("request %d: credentials %q %q", i, hdr.Get("Authorization"), hdr.Get("X-Tenant"))
		}
		for name, vals := range hdr {
			if strings.Contains(strings.Join(vals, " "), keyAlice) {
				t.Errorf("request %d: header %s carries the caller's key", i, name)
			}
		}
	}
	call := seen[len(seen)-1]
	if _, ok := trace.ParseTraceparent(call.Get("traceparent")); !ok || call.Get("A2A-Version") != "1.0" {
		t.Errorf("call headers: traceparent %q, A2A-Version %q", call.Get("traceparent"), call.Get("A2A-Version"))
	}
}

// The extensions a client asks for reach the agent, whether the client
// names them in 1.0's A2A-Extensions or 0.3's X-A2A-Extensions, on the
// fast path (1.0 SendMessage) and the slow path (0.3 message/send) alike.
func TestClientExtensionsReachTheAgent(t *testing.T) {
	t.Parallel()
	up := startMockAgent(t, mock.A2AOptions{})
	rec, recURL := startHeaderRecorder(t, up.URL)
	card := `{"name":"u","supportedInterfaces":[{"url":"` + recURL + `","protocolBinding":"JSONRPC","protocolVersion":"1.0"}],` +
		`"capabilities":{"streaming":true}}`
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "inline", Card: card}}})
	const ext = "https://ext.example/v1"
	for _, tc := range []struct{ header, version, body string }{
		{"A2A-Extensions", "1.0", `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`},
		{"X-A2A-Extensions", "1.0", `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m2","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`},
		{"X-A2A-Extensions", "0.3", `{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"kind":"message","messageId":"m3","role":"user","parts":[{"kind":"text","text":"hi"}]}}}`},
	} {
		req, err := http.NewRequest(http.MethodPost, h.URL+"/a2a/inline", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+keyAlice)
		req.Header.Set(a2a.SvcParamVersion, tc.version)
		req.Header.Set(tc.header, ext)
		before := len(rec.all())
		if status, _, body := h.do(req); status != http.StatusOK || strings.Contains(body, `"error"`) {
			t.Fatalf("%s from a %s client: %d %s", tc.header, tc.version, status, body)
		}
		seen := rec.all()
		if len(seen) == before || seen[len(seen)-1].Get("A2A-Extensions") != ext {
			t.Errorf("%s from a %s client: the agent saw extensions %q", tc.header, tc.version, seen[len(seen)-1].Get("A2A-Extensions"))
		}
	}
}

// The methods whose params are all optional work without any.
func TestMethodsWithoutParams(t *testing.T) {
	t.Parallel()
	h, _, _ := twoAgents(t)
	for _, tc := range []struct{ version, body string }{
		{"1.0", `{"jsonrpc":"2.0","id":1,"method":"ListTasks"}`},
		{"1.0", `{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":null}`},
	} {
		status, _, body := h.post("/a2a/echo", keyAlice, tc.version, tc.body)
		if status != http.StatusOK || strings.Contains(body, `"error"`) || !strings.Contains(body, `"result"`) {
			t.Errorf("%s: %d %s", tc.body, status, body)
		}
	}
}

// An agent that refuses a stream with a plain JSON-RPC error, or answers it
// with a stream of no events, gives the client an error, not an empty
// stream that looks like success.
func TestStreamRefusedByTheAgentIsAnError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		contentType string
		body        string
		want        error
	}{
		{"JSON-RPC error", "application/json", `{"jsonrpc":"2.0","id":%s,"error":{"code":-32004,"message":"streaming is off"}}`, a2a.ErrUnsupportedOperation},
		{"no events", "text/event-stream", ``, a2a.ErrInvalidAgentResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var req struct{ ID json.RawMessage }
				_ = json.NewDecoder(r.Body).Decode(&req)
				w.Header().Set("Content-Type", tc.contentType)
				if strings.Contains(tc.body, "%s") {
					_, _ = fmt.Fprintf(w, tc.body, req.ID)
				}
			}))
			t.Cleanup(agent.Close)
			card := `{"name":"u","supportedInterfaces":[{"url":"` + agent.URL + `","protocolBinding":"JSONRPC","protocolVersion":"1.0"}],` +
				`"capabilities":{"streaming":true}}`
			h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "refuser", Card: card}}})
			var got error
			events := 0
			for _, err := range h.client(keyAlice, "refuser", a2a.Version).SendStreamingMessage(testCtx(t), textMessage("hi")) {
				if err != nil {
					got = err
					break
				}
				events++
			}
			if events != 0 || !errors.Is(got, tc.want) {
				t.Fatalf("%d events, err %v; want none and %v", events, got, tc.want)
			}
		})
	}
}

// An agent's JSON-RPC error reaches the client with its code whatever its
// data holds (JSON-RPC allows any value; a2a-go decodes only a list of
// objects), on the fast path (1.0) and the slow one (0.3).
func TestAgentErrorWithAnyDataKeepsItsCode(t *testing.T) {
	t.Parallel()
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ ID json.RawMessage }
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32001,"message":"no such task","data":{"detail":"x"}}}`, req.ID)
	}))
	t.Cleanup(agent.Close)
	card := `{"name":"u","supportedInterfaces":[{"url":"` + agent.URL + `","protocolBinding":"JSONRPC","protocolVersion":"1.0"},` +
		`{"url":"` + agent.URL + `","protocolBinding":"JSONRPC","protocolVersion":"0.3"}]}`
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "erring", Card: card}}})
	for _, version := range []string{string(a2a.Version), "0.3"} {
		_, err := h.client(keyAlice, "erring", a2a.ProtocolVersion(version)).SendMessage(testCtx(t), textMessage("hi"))
		if !errors.Is(err, a2a.ErrTaskNotFound) {
			t.Errorf("A2A %s: err %v, want the agent's task not found", version, err)
		}
	}
}

// What a2a-go's client refuses itself, from the agent's card, reaches the
// client as the error the agent would give: a 1.0 method a 0.3 agent lacks
// is unsupported (-32004), not an unavailable agent.
func TestMethodTheAgentLacksIsUnsupported(t *testing.T) {
	t.Parallel()
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the agent was asked: %s %s", r.Method, r.URL)
	}))
	t.Cleanup(agent.Close)
	card := `{"name":"old","supportedInterfaces":[{"url":"` + agent.URL + `","protocolBinding":"JSONRPC","protocolVersion":"0.3"}]}`
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "old", Card: card}}})
	_, _, body := h.post("/a2a/old", keyAlice, "1.0", `{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{}}`)
	if got := rpcErr(t, body); got.Code != -32004 {
		t.Fatalf("ListTasks to a 0.3 agent: %+v, want -32004", got)
	}
}

// A task the agent ended as failed is an error in its span, so per-agent
// error rates on the dashboards count it; the call is still charged (the
// agent took the message).
func TestFailedTaskIsAnErrorSpan(t *testing.T) {
	t.Parallel()
	failing := startMockAgent(t, mock.A2AOptions{OnMessage: func(context.Context, string, string) (string, error) {
		return "", errors.New("no luck")
	}})
	h := startGateway(t, sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "failing", CardURL: cardURL(failing), CostPerCallUSD: "0.01"}}})
	ctx := testCtx(t)
	for _, version := range versions {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s stream=%v", version, stream), func(t *testing.T) {
				c := h.client(keyAlice, "failing", version)
				method := "SendMessage"
				if stream {
					method = "SendStreamingMessage"
					for _, err := range c.SendStreamingMessage(ctx, textMessage("try")) {
						if err != nil {
							t.Fatal(err)
						}
					}
				} else if _, err := c.SendMessage(ctx, textMessage("try")); err != nil {
					t.Fatal(err)
				}
				if version != a2a.Version {
					method = map[bool]string{false: "message/send", true: "message/stream"}[stream]
				}
				s := h.Sink.waitSpans(t, 1, func(s trace.Span) bool { return attr(s, "a2a.method") == method })[0]
				if s.Status != trace.StatusError || s.Error != "task failed" || s.HTTPStatus != http.StatusOK || s.CostNanoUSD == 0 {
					t.Errorf("span: status %q, error %q, http %d, cost %d; want error %q, 200, charged",
						s.Status, s.Error, s.HTTPStatus, s.CostNanoUSD, "task failed")
				}
			})
		}
	}
}

// An agent's error sent as an event of its stream reaches the client with
// its code, message and data whatever the data holds, as a whole answer's
// does: from a 1.0 and a 0.3 agent (a2a-go's two stream decoders), to 1.0
// and 0.3 clients, whether the event comes in one write or cut in two, or
// the agent refuses the stream with a JSON answer.
func TestAgentErrorEventWithAnyDataKeepsItsCode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, data  string
		wantDetails map[string]any
	}{
		{"object", `,"data":{"taskId":"x"}`, map[string]any{"taskId": "x"}},
		{"string", `,"data":"no task x"`, map[string]any{"value": "no task x"}},
		{"list", `,"data":[{"taskId":"x"}]`, map[string]any{"taskId": "x"}},
		{"no data", ``, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var req struct{ ID json.RawMessage }
				_ = json.NewDecoder(r.Body).Decode(&req)
				answer := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"error":{"code":-32001,"message":"Task not found"%s}}`, req.ID, tc.data)
				if r.URL.Query().Has("json") {
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, answer)
					return
				}
				w.Header().Set("Content-Type", "text/event-stream")
				event := "data: " + answer + "\n\n"
				if r.URL.Query().Has("split") {
					_, _ = io.WriteString(w, event[:len(event)/2])
					w.(http.Flusher).Flush()
					time.Sleep(10 * time.Millisecond)
					event = event[len(event)/2:]
				}
				_, _ = io.WriteString(w, event)
			}))
			t.Cleanup(agent.Close)
			var agents []sba2a.AgentConfig
			for _, version := range []string{"1.0", "0.3"} {
				for _, mode := range []string{"whole", "split", "json"} {
					card := `{"name":"u","supportedInterfaces":[{"url":"` + agent.URL + "?" + mode + `","protocolBinding":"JSONRPC","protocolVersion":"` + version + `"}],` +
						`"capabilities":{"streaming":true}}`
					agents = append(agents, sba2a.AgentConfig{Name: "erring-" + strings.ReplaceAll(version, ".", "-") + "-" + mode, Card: card})
				}
			}
			h := startGateway(t, sba2a.Config{Agents: agents})
			for _, ag := range agents {
				for _, v := range versions {
					events := 0
					var got error
					for _, err := range h.client(keyAlice, ag.Name, v).SendStreamingMessage(testCtx(t), textMessage("hi")) {
						if err != nil {
							got = err
							break
						}
						events++
					}
					var a2aErr *a2a.Error
					if events != 0 || !errors.Is(got, a2a.ErrTaskNotFound) || !errors.As(got, &a2aErr) || a2aErr.Message != "Task not found" {
						t.Errorf("%s to a %s client: %d events, err %v; want the agent's task not found", ag.Name, v, events, got)
						continue
					}
					if !reflect.DeepEqual(a2aErr.Details, tc.wantDetails) {
						t.Errorf("%s to a %s client: details %v, want %v", ag.Name, v, a2aErr.Details, tc.wantDetails)
					}
				}
			}
		})
	}
}
