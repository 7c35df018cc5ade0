package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
	"github.com/switchboard-gw/switchboard/trace"
)

// elicitingUpstream is an mcp-go server on 2025-11-25 sessions whose ask
// tool, while it runs, asks its caller for a name (elicitation/create, which
// mcp-go sends on the call's SSE stream) and answers with what it got back,
// or the error.
func elicitingUpstream(t *testing.T) string {
	t.Helper()
	core := server.NewMCPServer("asker", "1", server.WithToolCapabilities(false))
	// The harness waits for every server's add tool.
	core.AddTool(mcp.NewTool("add"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("0"), nil
	})
	core.AddTool(mcp.NewTool("ask"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		res, err := core.RequestElicitation(ctx, mcp.ElicitationRequest{Params: mcp.ElicitationParams{
			Message: "Your name?",
			RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{
				"name": map[string]any{"type": "string"}}},
		}})
		if err != nil {
			return mcp.NewToolResultText("error: " + err.Error()), nil
		}
		return mcp.NewToolResultText(fmt.Sprintf("%s %v", res.Action, res.Content)), nil
	})
	srv := httptest.NewServer(server.NewStreamableHTTPServer(core, server.WithStateful(true),
		server.WithDisableLocalhostProtection(true), server.WithStreamableHTTPProtocolVersions(mcp.ProtocolVersion20251125),
		server.WithStreamableHTTPLogger(quietLogger())))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

// askingUpstream is a 2025-11-25 Streamable HTTP server written by hand,
// because mcp-go's server sends sampling/createMessage and roots/list only
// on its GET stream. Its tools sample and roots send that request on the
// call's SSE stream, as the official TypeScript SDK does for a tool's
// request, and answer with the response they got: its result, or its
// error. It keeps the capabilities the gateway declared.
type askingUpstream struct {
	url     string
	mu      sync.Mutex
	caps    json.RawMessage
	seq     int
	pending map[string]chan json.RawMessage
}

func startAskingUpstream(t *testing.T) *askingUpstream {
	t.Helper()
	up := &askingUpstream{pending: map[string]chan json.RawMessage{}}
	srv := httptest.NewServer(http.HandlerFunc(up.serve))
	t.Cleanup(srv.Close)
	up.url = srv.URL + "/mcp"
	return up
}

func (up *askingUpstream) capabilities() string {
	up.mu.Lock()
	defer up.mu.Unlock()
	return string(up.caps)
}

func (up *askingUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Name         string          `json:"name"`
			Capabilities json.RawMessage `json:"capabilities"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	reply := func(result string) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, msg.ID, result)
	}
	switch {
	case msg.Method == "" && len(msg.ID) > 0: // a response to one of ours
		up.mu.Lock()
		ch := up.pending[string(msg.ID)]
		up.mu.Unlock()
		if ch != nil {
			ch <- json.RawMessage(bytes.Clone(body))
		}
		w.WriteHeader(http.StatusAccepted)
	case len(msg.ID) == 0:
		w.WriteHeader(http.StatusAccepted)
	case msg.Method == "initialize":
		up.mu.Lock()
		up.caps = msg.Params.Capabilities
		up.mu.Unlock()
		w.Header().Set("Mcp-Session-Id", "asking-session")
		reply(`{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"asking","version":"1"}}`)
	case msg.Method == "tools/list":
		reply(`{"tools":[{"name":"add","inputSchema":{"type":"object"}},{"name":"sample","inputSchema":{"type":"object"}},{"name":"roots","inputSchema":{"type":"object"}}]}`)
	case msg.Method == "tools/call" && msg.Params.Name == "add":
		reply(`{"content":[{"type":"text","text":"0"}]}`)
	case msg.Method == "tools/call":
		up.ask(w, msg.ID, msg.Params.Name)
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"no"}}`, msg.ID)
	}
}

// ask sends its request on the call's stream and answers the call with the
// response, checking that it came back under the ID it chose.
func (up *askingUpstream) ask(w http.ResponseWriter, callID json.RawMessage, tool string) {
	up.mu.Lock()
	up.seq++
	id := fmt.Sprintf(`"up-%d"`, up.seq)
	ch := make(chan json.RawMessage, 1)
	up.pending[id] = ch
	up.mu.Unlock()
	defer func() {
		up.mu.Lock()
		delete(up.pending, id)
		up.mu.Unlock()
	}()
	method, params := "sampling/createMessage", `{"messages":[{"role":"user","content":{"type":"text","text":"hi"}}],"maxTokens":10}`
	if tool == "roots" {
		method, params = "roots/list", `{}`
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":%q,\"params\":%s}\n\n", id, method, params)
	w.(http.Flusher).Flush()
	text := "no answer"
	select {
	case answer := <-ch:
		var a struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		_ = json.Unmarshal(answer, &a)
		text = "result " + string(a.Result)
		if a.Error != nil {
			text = "error " + string(a.Error)
		}
	case <-time.After(5 * time.Second):
	}
	quoted, _ := json.Marshal(text)
	_, _ = fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":%s}]}}\n\n", callID, quoted)
}

// answers is a client that accepts every elicitation with the name Ada,
// declines it or fails, and samples "sampled".
type answers struct{ decline, fail bool }

func (a answers) Elicit(context.Context, mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	if a.fail {
		return nil, errors.New("no user at the keyboard")
	}
	if a.decline {
		return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionDecline}}, nil
	}
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{
		Action: mcp.ElicitationResponseActionAccept, Content: map[string]any{"name": "Ada"}}}, nil
}

func (answers) CreateMessage(context.Context, mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	return &mcp.CreateMessageResult{Model: "client-model", SamplingMessage: mcp.SamplingMessage{
		Role: mcp.RoleAssistant, Content: mcp.NewTextContent("sampled")}}, nil
}

// dialWith is env.dial with client options (handlers) and transport options.
func (e *env) dialWith(t *testing.T, path, key, version string, topts []transport.StreamableHTTPCOption, opts ...client.ClientOption) *client.Client {
	t.Helper()
	topts = append(topts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + key}),
		transport.WithHTTPLogger(quietLogger()))
	tr, err := transport.NewStreamableHTTP(e.url+path, topts...)
	if err != nil {
		t.Fatal(err)
	}
	cli := client.NewClient(tr, append(opts, client.WithProtocolVersion(version))...)
	if err := cli.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = version
	req.Params.ClientInfo = mcp.Implementation{Name: "test", Version: "1"}
	if _, err := cli.Initialize(ctxT(t), req); err != nil {
		t.Fatal(err)
	}
	return cli
}

// waitListening waits until the gateway counts cli's GET stream, which mcp-go opens on a goroutine of its own after
// the handshake: a sampling request sent before that finds no stream to go on.
func (e *env) waitListening(t *testing.T, cli *client.Client) {
	t.Helper()
	session := cli.GetTransport().(*transport.StreamableHTTP).GetSessionId()
	eventually(t, 5*time.Second, func() bool {
		e.gw.listeners.mu.Lock()
		defer e.gw.listeners.mu.Unlock()
		for k := range e.gw.listeners.open {
			if k.session == session {
				return true
			}
		}
		return false
	}, "the client's GET stream to open")
}

// startAsking runs the harness's gateway with the asker (elicitingUpstream)
// and sampler (askingUpstream) servers.
func startAsking(t *testing.T) (*env, *askingUpstream) {
	t.Helper()
	sampler := startAskingUpstream(t)
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers,
			ServerConfig{Name: "asker", URL: elicitingUpstream(t), CostPerCallUSD: "0.001", Timeout: 8 * time.Second, ClientRequests: true},
			ServerConfig{Name: "sampler", URL: sampler.url, Timeout: 8 * time.Second, ClientRequests: true})
	})
	return e, sampler
}

// An upstream that asks its caller something during a tool call gets the
// caller's answer, on 2025-11-25 at both ends: the request reaches the
// client on the call's stream (elicitation) or its GET stream (sampling),
// and the answer reaches the upstream under the upstream's request ID. A
// client that did not declare the capability, has no stream for it, or
// speaks 2026-07-28 is not asked: the upstream gets a JSON-RPC error saying
// why. Roots are not relayed. The call's span notes what was asked, and the
// call costs what it costs without the question.
func TestUpstreamRequestsReachTheCaller(t *testing.T) {
	e, sampler := startAsking(t)
	if got := sampler.capabilities(); !strings.Contains(got, `"elicitation":{"form":{}}`) || !strings.Contains(got, `"sampling":{}`) || strings.Contains(got, "roots") {
		t.Fatalf("the gateway declared %s to a 2025-11-25 upstream, want elicitation (form) and sampling", got)
	}
	//lint:ignore SA1019 the 2025-11-25 GET stream, where mcp-go's server sends sampling requests
	listen := []transport.StreamableHTTPCOption{transport.WithContinuousListening()}
	for _, tc := range []struct {
		name     string
		version  string
		topts    []transport.StreamableHTTPCOption
		opts     []client.ClientOption
		tool     string
		progress bool
		want     string
		attr     string
	}{
		{name: "elicitation accepted", tool: "asker__ask", opts: []client.ClientOption{client.WithElicitationHandler(answers{})},
			want: "accept map[name:Ada]", attr: "elicitation/create answered"},
		{name: "elicitation on a call with progress", tool: "asker__ask", progress: true, opts: []client.ClientOption{client.WithElicitationHandler(answers{})},
			want: "accept map[name:Ada]", attr: "elicitation/create answered"},
		{name: "elicitation declined", tool: "asker__ask", opts: []client.ClientOption{client.WithElicitationHandler(answers{decline: true})},
			want: "decline <nil>", attr: "elicitation/create answered"},
		{name: "elicitation the client fails", tool: "asker__ask", opts: []client.ClientOption{client.WithElicitationHandler(answers{fail: true})},
			want: "error: elicitation/create error -32603: no user at the keyboard", attr: "elicitation/create failed"},
		{name: "elicitation to a client without the capability", tool: "asker__ask", opts: []client.ClientOption{client.WithSamplingHandler(answers{})},
			want: "-32601: elicitation/create not relayed: the calling client did not declare the elicitation capability", attr: "elicitation/create refused: the calling client did not declare the elicitation capability"},
		{name: "elicitation to a 2026-07-28 client", version: mcp.ProtocolVersion20260728, tool: "asker__ask",
			opts: []client.ClientOption{client.WithElicitationHandler(answers{})},
			want: "speaks protocol version 2026-07-28, which has no server-to-client requests", attr: "elicitation/create refused: the calling client speaks protocol version 2026-07-28"},
		{name: "sampling", tool: "sampler__sample", topts: listen, opts: []client.ClientOption{client.WithSamplingHandler(answers{})},
			want: `result {"role":"assistant","content":{"type":"text","text":"sampled"},"model":"client-model"}`, attr: "sampling/createMessage answered"},
		{name: "sampling without a GET stream", tool: "sampler__sample", opts: []client.ClientOption{client.WithSamplingHandler(answers{})},
			want: `error {"code":-32601,"message":"sampling/createMessage not relayed: the calling client has no open GET stream to receive it"}`, attr: "sampling/createMessage refused: the calling client has no open GET stream"},
		{name: "sampling to a client without the capability", tool: "sampler__sample", topts: listen, opts: []client.ClientOption{client.WithElicitationHandler(answers{})},
			want: `error {"code":-32601,"message":"sampling/createMessage not relayed: the calling client did not declare the sampling capability"}`, attr: "sampling/createMessage refused: the calling client did not declare the sampling capability"},
		{name: "roots", tool: "sampler__roots", topts: listen, opts: []client.ClientOption{client.WithElicitationHandler(answers{}), client.WithSamplingHandler(answers{})},
			want: `error {"code":-32601,"message":"no handler configured for method: roots/list"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			version := tc.version
			if version == "" {
				version = mcp.ProtocolVersion20251125
			}
			cli := e.dialWith(t, "/mcp", keyAll, version, tc.topts, tc.opts...)
			if tc.topts != nil {
				e.waitListening(t, cli)
			}
			parent := newParent()
			req := mcp.CallToolRequest{}
			req.Params.Name = tc.tool
			req.Params.Meta = &mcp.Meta{AdditionalFields: map[string]any{trace.HeaderTraceparent: parent.Traceparent()}}
			if tc.progress {
				req.Params.Meta.ProgressToken = "p1"
			}
			res, err := cli.CallTool(ctxT(t), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := resultText(res); res.IsError || !strings.Contains(got, tc.want) {
				t.Fatalf("the tool answered %q (error %v), want it to contain %q", got, res.IsError, tc.want)
			}
			span := e.onlySpanOf(t, parent.TraceID)
			var attrs []string
			for _, a := range span.Attrs {
				if a.Key == "mcp.client_request" {
					attrs = append(attrs, a.Value)
				}
			}
			if tc.attr == "" && len(attrs) != 0 || tc.attr != "" && (len(attrs) != 1 || !strings.HasPrefix(attrs[0], tc.attr)) {
				t.Errorf("span attributes %q, want one starting %q", attrs, tc.attr)
			}
			if tc.tool == "asker__ask" && span.CostNanoUSD != 1_000_000 {
				t.Errorf("the call cost %d nano-USD, want its cost_per_call_usd", span.CostNanoUSD)
			}
		})
	}
}

// forger answers an elicitation only after others tried to answer it first.
type forger struct {
	try func() // the forged answers, made while the request waits
}

func (f *forger) Elicit(ctx context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	f.try()
	return answers{}.Elicit(ctx, req)
}

// postAnswer posts a JSON-RPC response to the gateway, as a client answers
// a request, and returns the HTTP status.
func postAnswer(t *testing.T, url, key, session string, id int) int {
	t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"result":{"action":"accept","content":{"name":"Mallory"}}}`, id)
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Mcp-Protocol-Version", mcp.ProtocolVersion20251125)
	req.Header.Set("Mcp-Session-Id", session)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// Only the client a request was sent to can answer it: an answer is taken
// on the session the request went to, whose ID is bound to the caller's
// key. Another key presenting that session ID, or the same key on another
// session, is refused whatever request ID it tries, and the upstream gets
// the caller's own answer.
func TestUpstreamRequestsAreAnsweredOnlyByTheCaller(t *testing.T) {
	e, _ := startAsking(t)
	var statuses []string
	f := &forger{}
	cli := e.dialWith(t, "/mcp", keyAll, mcp.ProtocolVersion20251125, nil, client.WithElicitationHandler(f))
	session := cli.GetTransport().(*transport.StreamableHTTP).GetSessionId()
	other := newRawClient(t, e.url+"/mcp", keyAll, mcp.ProtocolVersion20251125)
	f.try = func() {
		// mcp-go numbers the requests of a view from 1.
		for id := 1; id <= 3; id++ {
			statuses = append(statuses,
				fmt.Sprintf("other key %d", postAnswer(t, e.url+"/mcp", keyWeather, session, id)),
				fmt.Sprintf("other session %d", postAnswer(t, e.url+"/mcp", keyAll, other.session, id)))
		}
	}
	res, err := callTool(ctxT(t), cli, "asker__ask", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resultText(res); got != "accept map[name:Ada]" {
		t.Fatalf("the upstream got %q, want the caller's answer", got)
	}
	for _, s := range statuses {
		if !strings.HasSuffix(s, " 404") && !strings.HasSuffix(s, " 400") {
			t.Errorf("a forged answer (%s) was not refused", s)
		}
	}
	if len(statuses) != 6 {
		t.Fatalf("the client was asked %d times", len(statuses)/6)
	}
}

// A 2026-07-28 upstream is never told the gateway can be asked: its tool
// calls carry no client capabilities, and the gateway has no answer to an
// input_required result, so no request may declare them.
func TestStatelessUpstreamIsNotOfferedRequests(t *testing.T) {
	stream := server.NewStreamableHTTPServer(mock.NewMCPServer(mock.MCPOptions{Name: "modern"}), server.WithDisableLocalhostProtection(true))
	var mu sync.Mutex
	var declared []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"elicitation"`)) || bytes.Contains(body, []byte(`"sampling"`)) {
			mu.Lock()
			declared = append(declared, string(body))
			mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		stream.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers, ServerConfig{Name: "modern", URL: srv.URL + "/mcp", Timeout: 5 * time.Second, ClientRequests: true})
	})
	cli := e.dialWith(t, "/mcp", keyAll, mcp.ProtocolVersion20251125, nil, client.WithElicitationHandler(answers{}))
	if res, err := callTool(ctxT(t), cli, "modern__add", map[string]any{"a": 1, "b": 2}); err != nil || res.IsError {
		t.Fatalf("call: %v %+v", err, res)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(declared) > 0 {
		t.Fatalf("the gateway declared capabilities to a 2026-07-28 upstream: %s", declared[0])
	}
}

// Without client_requests a server is told the gateway's clients can answer
// nothing, so one that can do without asking does; what it asks anyway is
// refused without reaching the client.
func TestServerWithoutClientRequestsIsNotOfferedThem(t *testing.T) {
	quiet := startAskingUpstream(t)
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers,
			ServerConfig{Name: "asker", URL: elicitingUpstream(t), Timeout: 8 * time.Second},
			ServerConfig{Name: "quiet", URL: quiet.url, Timeout: 8 * time.Second})
	})
	cli := e.dialWith(t, "/mcp", keyAll, mcp.ProtocolVersion20251125, nil, client.WithElicitationHandler(answers{}))
	if got := quiet.capabilities(); strings.Contains(got, "elicitation") || strings.Contains(got, "sampling") {
		t.Fatalf("declared to a server without client_requests: %s", got)
	}
	res, err := callTool(ctxT(t), cli, "asker__ask", nil)
	if err != nil {
		t.Fatal(err)
	}
	if text := resultText(res); !strings.HasPrefix(text, "error: ") {
		t.Fatalf("an elicitation from a server without client_requests got %q, want it refused", text)
	}
}
