package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/switchboard-gw/switchboard/trace"
)

// posted is one message the fake upstream received.
type posted struct {
	header http.Header
	body   []byte
}

// fakeUpstream answers each POST with answer and reports what it received.
func fakeUpstream(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, msg map[string]json.RawMessage)) (string, <-chan posted) {
	t.Helper()
	got := make(chan posted, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- posted{header: r.Header.Clone(), body: body}
		var msg map[string]json.RawMessage
		_ = json.Unmarshal(body, &msg)
		answer(w, r, msg)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp", got
}

func jsonResult(w http.ResponseWriter, id json.RawMessage, result string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, id, result)
}

func testRelay(url, version, session string) *relay {
	return newRelay(url, &http.Client{Timeout: 10 * time.Second}, map[string]string{"X-Api-Key": "static"}, nil, version, session)
}

// relayedText is the text of a result as the client receives it.
func relayedText(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res == nil {
		return ""
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	raw := json.RawMessage(b)
	out, err := mcp.ParseCallToolResult(&raw)
	if err != nil {
		t.Fatalf("relayed result %s: %v", b, err)
	}
	return resultText(out)
}

func receive(t *testing.T, ch <-chan posted) posted {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream received nothing")
		return posted{}
	}
}

// The relay's request carries the upstream's tool name, the client's
// arguments byte for byte, and the metadata and headers of the protocol
// version the upstream negotiated.
func TestRelayRequestShape(t *testing.T) {
	t.Parallel()
	sc, _ := trace.ParseTraceparent("00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")
	args := json.RawMessage(`{"city": "Zürich",  "days":[1, 2]}`)
	cases := []struct {
		name, version, session string
		logLevel               mcp.LoggingLevel // the client's
		wantMeta               []string         // _meta keys
		wantHeaders            map[string]string
		noHeaders              []string
	}{
		{
			name: "stateless", version: mcp.ProtocolVersion20260728, session: "ignored",
			wantMeta: []string{mcp.MetaKeyProtocolVersion, mcp.MetaKeyClientCapabilities, mcp.MetaKeyClientInfo, "traceparent", "progressToken"},
			wantHeaders: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "get_forecast",
				"Mcp-Protocol-Version": mcp.ProtocolVersion20260728},
			noHeaders: []string{"Mcp-Session-Id"},
		},
		{
			name: "stateless with a log level", version: mcp.ProtocolVersion20260728, logLevel: mcp.LoggingLevelInfo,
			wantMeta: []string{mcp.MetaKeyProtocolVersion, mcp.MetaKeyClientCapabilities, mcp.MetaKeyClientInfo,
				mcp.MetaKeyLogLevel, "traceparent", "progressToken"},
			wantHeaders: map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "get_forecast",
				"Mcp-Protocol-Version": mcp.ProtocolVersion20260728},
			noHeaders: []string{"Mcp-Session-Id"},
		},
		{
			// The session's level is the gateway's own with the upstream.
			name: "session", version: mcp.ProtocolVersion20251125, session: "sess-1", logLevel: mcp.LoggingLevelInfo,
			wantMeta:    []string{"traceparent", "progressToken"},
			wantHeaders: map[string]string{"Mcp-Session-Id": "sess-1", "Mcp-Protocol-Version": mcp.ProtocolVersion20251125},
			noHeaders:   []string{"Mcp-Method", "Mcp-Name"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, got := fakeUpstream(t, func(w http.ResponseWriter, _ *http.Request, msg map[string]json.RawMessage) {
				jsonResult(w, msg["id"], `{"content":[{"type":"text","text":"sunny"}]}`)
			})
			r := testRelay(url, tc.version, tc.session)
			c := relayCall{tool: "get_forecast", args: args, progressToken: "sb-7", sc: sc, logLevel: tc.logLevel,
				headers: map[string]string{"Traceparent": sc.Traceparent()}}
			res, err := r.callTool(ctxT(t), c, func(mcp.JSONRPCNotification) {})
			if err != nil || relayedText(t, res) != "sunny" {
				t.Fatalf("callTool = %+v, %v", res, err)
			}
			p := receive(t, got)
			var msg struct {
				ID     string `json:"id"`
				Method string `json:"method"`
				Params struct {
					Name      string                     `json:"name"`
					Arguments json.RawMessage            `json:"arguments"`
					Meta      map[string]json.RawMessage `json:"_meta"`
				} `json:"params"`
			}
			if err := json.Unmarshal(p.body, &msg); err != nil {
				t.Fatalf("body %s: %v", p.body, err)
			}
			if !strings.HasPrefix(msg.ID, relayIDPrefix) || msg.Method != "tools/call" || msg.Params.Name != "get_forecast" {
				t.Fatalf("request = %s", p.body)
			}
			if string(msg.Params.Arguments) != string(args) {
				t.Fatalf("arguments = %s, want %s as sent", msg.Params.Arguments, args)
			}
			if len(msg.Params.Meta) != len(tc.wantMeta) {
				t.Fatalf("_meta = %s, want keys %v", p.body, tc.wantMeta)
			}
			for _, k := range tc.wantMeta {
				if _, ok := msg.Params.Meta[k]; !ok {
					t.Fatalf("_meta lacks %s: %s", k, p.body)
				}
			}
			if tp := string(msg.Params.Meta["traceparent"]); tp != `"`+sc.Traceparent()+`"` {
				t.Fatalf("_meta traceparent = %s", tp)
			}
			if tok := string(msg.Params.Meta["progressToken"]); tok != `"sb-7"` {
				t.Fatalf("_meta progressToken = %s", tok)
			}
			if l, ok := msg.Params.Meta[mcp.MetaKeyLogLevel]; ok && string(l) != `"`+string(tc.logLevel)+`"` {
				t.Fatalf("_meta log level = %s, want %q", l, tc.logLevel)
			}
			want := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
				"X-Api-Key": "static", "Traceparent": sc.Traceparent()}
			for k, v := range tc.wantHeaders {
				want[k] = v
			}
			for k, v := range want {
				if got := p.header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			for _, k := range tc.noHeaders {
				if v := p.header.Get(k); v != "" {
					t.Errorf("header %s = %q, want none", k, v)
				}
			}
		})
	}
}

// The relay reads JSON and SSE answers and shapes failures as the mcp-go
// client did: transport failures are *transport.Error (the upstream is
// unavailable), a JSON-RPC error stays a JSON-RPC error.
func TestRelayAnswers(t *testing.T) {
	t.Parallel()
	sse := func(w http.ResponseWriter, events ...string) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range events {
			fmt.Fprintf(w, "event: message\ndata: %s\n\n", e)
			w.(http.Flusher).Flush()
		}
	}
	cases := []struct {
		name      string
		answer    func(w http.ResponseWriter, id json.RawMessage)
		text      string // the result's text when it succeeds
		notified  int
		transport bool // the error is a transport error
		errIs     error
		errHas    string
	}{
		{name: "json", text: "ok", answer: func(w http.ResponseWriter, id json.RawMessage) {
			jsonResult(w, id, `{"content":[{"type":"text","text":"ok"}]}`)
		}},
		{name: "sse with notifications first", text: "done", notified: 2, answer: func(w http.ResponseWriter, id json.RawMessage) {
			sse(w,
				`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"sb-1","progress":1}}`,
				`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"half way"}}`,
				fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"done"}]}}`, id))
		}},
		{name: "sse multi-line data", text: "split", answer: func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: {\"jsonrpc\":\"2.0\",\"id\":%s,\ndata: \"result\":{\"content\":[{\"type\":\"text\",\"text\":\"split\"}]}}\r\n\r\n", id)
		}},
		{name: "json-rpc error", errIs: mcp.ErrInvalidParams, answer: func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32602,"message":"bad city"}}`, id)
		}},
		{name: "json-rpc error with http 400", errIs: mcp.ErrInvalidParams, answer: func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32602,"message":"bad city"}}`, id)
		}},
		{name: "session gone", transport: true, errIs: transport.ErrSessionTerminated, answer: func(w http.ResponseWriter, _ json.RawMessage) {
			http.NotFound(w, nil)
		}},
		{name: "server error", transport: true, errHas: "status 502", answer: func(w http.ResponseWriter, _ json.RawMessage) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}},
		{name: "stream ends early", transport: true, errHas: "ended before the response", answer: func(w http.ResponseWriter, _ json.RawMessage) {
			sse(w, `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"sb-1","progress":1}}`)
		}, notified: 1},
		{name: "no content", errHas: "content is missing", answer: func(w http.ResponseWriter, id json.RawMessage) {
			jsonResult(w, id, `{"isError":false}`)
		}},
		{name: "wrong content type", transport: true, errHas: "unexpected content type", answer: func(w http.ResponseWriter, _ json.RawMessage) {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, "hello")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, _ := fakeUpstream(t, func(w http.ResponseWriter, _ *http.Request, msg map[string]json.RawMessage) {
				tc.answer(w, msg["id"])
			})
			r := testRelay(url, mcp.ProtocolVersion20251125, "s")
			var notes []string
			res, err := r.callTool(ctxT(t), relayCall{tool: "t", args: json.RawMessage(`{}`)}, func(n mcp.JSONRPCNotification) {
				notes = append(notes, n.Method)
			})
			if len(notes) != tc.notified {
				t.Fatalf("notifications = %v, want %d", notes, tc.notified)
			}
			if tc.text != "" {
				if err != nil || relayedText(t, res) != tc.text {
					t.Fatalf("callTool = %+v, %v; want %q", res, err, tc.text)
				}
				return
			}
			if err == nil {
				t.Fatalf("callTool = %+v, want an error", res)
			}
			var te *transport.Error
			if errors.As(err, &te) != tc.transport {
				t.Fatalf("error %v: transport error = %v, want %v", err, !tc.transport, tc.transport)
			}
			if tc.errIs != nil && !errors.Is(err, tc.errIs) {
				t.Fatalf("error %v, want %v", err, tc.errIs)
			}
			if tc.errHas != "" && !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %v, want it to say %q", err, tc.errHas)
			}
		})
	}
}

// A request the upstream sends on the call's stream is refused with
// method-not-found, and the call still gets its answer.
func TestRelayRefusesUpstreamRequests(t *testing.T) {
	t.Parallel()
	url, got := fakeUpstream(t, func(w http.ResponseWriter, _ *http.Request, msg map[string]json.RawMessage) {
		if _, ok := msg["method"]; !ok {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s\n\n", `{"jsonrpc":"2.0","id":99,"method":"sampling/createMessage","params":{}}`)
		fmt.Fprintf(w, "data: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[]}}\n\n", msg["id"])
	})
	r := testRelay(url, mcp.ProtocolVersion20251125, "s")
	if _, err := r.callTool(ctxT(t), relayCall{tool: "t"}, func(mcp.JSONRPCNotification) {}); err != nil {
		t.Fatal(err)
	}
	receive(t, got) // the call
	refusal := receive(t, got)
	var msg struct {
		ID    int `json:"id"`
		Error struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(refusal.body, &msg); err != nil || msg.ID != 99 || msg.Error.Code != mcp.METHOD_NOT_FOUND {
		t.Fatalf("refusal = %s, %v", refusal.body, err)
	}
	if refusal.header.Get("Mcp-Session-Id") != "s" {
		t.Fatalf("refusal went outside the session: %v", refusal.header)
	}
}

// When the call's context ends, the upstream is told which request to stop,
// by the ID the relay gave it, on both protocol versions.
func TestRelayCancelNotifiesUpstream(t *testing.T) {
	t.Parallel()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			url, got := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request, msg map[string]json.RawMessage) {
				if string(msg["method"]) == `"tools/call"` {
					<-r.Context().Done()
					return
				}
				w.WriteHeader(http.StatusAccepted)
			})
			r := testRelay(url, p.version, "s")
			ctx, cancel := context.WithCancel(ctxT(t))
			errc := make(chan error, 1)
			go func() {
				_, err := r.callTool(ctx, relayCall{tool: "slow"}, func(mcp.JSONRPCNotification) {})
				errc <- err
			}()
			var call struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(receive(t, got).body, &call); err != nil {
				t.Fatal(err)
			}
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled call: %v", err)
			}
			note := receive(t, got)
			var msg struct {
				Method string `json:"method"`
				Params struct {
					RequestID string                     `json:"requestId"`
					Meta      map[string]json.RawMessage `json:"_meta"`
				} `json:"params"`
			}
			if err := json.Unmarshal(note.body, &msg); err != nil {
				t.Fatal(err)
			}
			if msg.Method != "notifications/cancelled" || msg.Params.RequestID != call.ID {
				t.Fatalf("cancellation = %s, want one for %s", note.body, call.ID)
			}
			_, hasVersion := msg.Params.Meta[mcp.MetaKeyProtocolVersion]
			if modern := mcp.IsModernProtocol(p.version); hasVersion != modern || (note.header.Get("Mcp-Method") != "") != modern {
				t.Fatalf("cancellation for %s: %s %v", p.version, note.body, note.header)
			}
		})
	}
}

// A 2025-11-25 upstream that ends the call's stream after an event ID gets
// the stream resumed with a GET carrying Last-Event-ID, and the answer read
// there; a 2026-07-28 stream is not resumable.
func TestRelayResumesLegacyStream(t *testing.T) {
	t.Parallel()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			callID := make(chan json.RawMessage, 1)
			url, got := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request, msg map[string]json.RawMessage) {
				w.Header().Set("Content-Type", "text/event-stream")
				if r.Method == http.MethodPost {
					callID <- msg["id"]
					fmt.Fprint(w, "id: ev-1\nretry: 10\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"sb-1\",\"progress\":1}}\n\n")
					return
				}
				if r.Header.Get("Last-Event-ID") != "ev-1" || r.Header.Get("Mcp-Session-Id") != "s" {
					http.Error(w, "bad resume", http.StatusBadRequest)
					return
				}
				fmt.Fprintf(w, "id: ev-2\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"resumed\"}]}}\n\n", <-callID)
			})
			r := testRelay(url, p.version, "s")
			notified := 0
			res, err := r.callTool(ctxT(t), relayCall{tool: "t"}, func(mcp.JSONRPCNotification) { notified++ })
			if notified != 1 {
				t.Fatalf("notifications = %d, want 1", notified)
			}
			if mcp.IsModernProtocol(p.version) {
				var te *transport.Error
				if !errors.As(err, &te) || !strings.Contains(err.Error(), "ended before the response") {
					t.Fatalf("modern stream ended early: %+v, %v", res, err)
				}
				return
			}
			if err != nil || relayedText(t, res) != "resumed" {
				t.Fatalf("resumed call = %+v, %v", res, err)
			}
			receive(t, got) // the POST
			if resume := receive(t, got); resume.header.Get("Last-Event-ID") != "ev-1" {
				t.Fatalf("resume headers = %v", resume.header)
			}
		})
	}
}

// A relayed result keeps the upstream's content items and structured content
// as sent (only whitespace is compacted: numbers, escapes and unknown fields
// stay), and fails as mcp-go's client fails on what it cannot read.
func TestToolResultPassesContentThrough(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, result string
		content      []string // items as the client receives them
		structured   string
		isError      bool
		errHas       string
	}{
		{
			name:    "items as sent",
			result:  `{"content":[{"type":"text","text":"a\u00e9", "annotations":{"priority":0.5}},{"type":"image","data":"AAAA","mimeType":"image/png"}],"isError":true}`,
			content: []string{`{"type":"text","text":"a\u00e9","annotations":{"priority":0.5}}`, `{"type":"image","data":"AAAA","mimeType":"image/png"}`},
			isError: true,
		},
		{
			name:       "structured content",
			result:     `{"content":[],"structuredContent":{"temp": 21.50,"unit":"C"}}`,
			structured: `{"temp":21.50,"unit":"C"}`,
		},
		{name: "null content", result: `{"content":null}`},
		{name: "no content", result: `{"isError":false}`, errHas: "content is missing"},
		{name: "unknown item type", result: `{"content":[{"type":"video"}]}`, errHas: "unknown content type: video"},
		{name: "item without type", result: `{"content":[{"text":"x"}]}`, errHas: "missing or invalid type field"},
		{name: "input required", result: `{"resultType":"input_required","inputRequests":{}}`, errHas: "asked for input"},
		{name: "not an object", result: `[1]`, errHas: "failed to unmarshal response"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := toolResult(json.RawMessage(tc.result))
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("toolResult = %+v, %v; want an error saying %q", res, err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(res)
			if err != nil {
				t.Fatal(err)
			}
			var sent struct {
				Content           []json.RawMessage `json:"content"`
				StructuredContent json.RawMessage   `json:"structuredContent"`
				IsError           bool              `json:"isError"`
			}
			if err := json.Unmarshal(b, &sent); err != nil {
				t.Fatal(err)
			}
			if len(sent.Content) != len(tc.content) || sent.IsError != tc.isError || string(sent.StructuredContent) != tc.structured {
				t.Fatalf("relayed %s from %s", b, tc.result)
			}
			for i, c := range tc.content {
				if string(sent.Content[i]) != c {
					t.Fatalf("item %d relayed as %s, want %s", i, sent.Content[i], c)
				}
			}
		})
	}
}

// Two relays never share request IDs, so that one gateway's cancellation
// cannot stop another's call on a shared 2026-07-28 upstream.
func TestRelayIDsDifferPerRelay(t *testing.T) {
	t.Parallel()
	a := newRelay("http://127.0.0.1:1/mcp", http.DefaultClient, nil, nil, mcp.ProtocolVersion20260728, "")
	b := newRelay("http://127.0.0.1:1/mcp", http.DefaultClient, nil, nil, mcp.ProtocolVersion20260728, "")
	if a.ids == b.ids || !strings.HasPrefix(a.ids, relayIDPrefix) {
		t.Fatalf("request ID prefixes %q and %q", a.ids, b.ids)
	}
}
