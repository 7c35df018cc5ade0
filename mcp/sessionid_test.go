package mcp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/switchboard-gw/switchboard/governance"
	"github.com/switchboard-gw/switchboard/trace"
)

// changed is id with the character at i replaced by another of the
// encoding's alphabet.
func changed(id string, i int) string {
	b := []byte(id)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// respelled is id with the unused low bits of its last character set: the
// same bytes to a lenient decoder.
func respelled(t *testing.T, id string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, id[len(id)-1])
	other := id[:len(id)-1] + string(alphabet[last|1])
	a, errA := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(id, sessionIDPrefix))
	b, errB := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(other, sessionIDPrefix))
	if errA != nil || errB != nil || string(a) != string(b) || other == id {
		t.Fatalf("%q and %q are not two spellings of the same bytes", id, other)
	}
	return other
}

// testKeyID stands for the API key that opened a session.
const testKeyID = "key_0123456789abcdef"

func TestSessionIDsAreMintedByTheKey(t *testing.T) {
	t.Parallel()
	ids := newSessionIDs([]byte("secret"))
	minted := ids.mint(testKeyID)
	tests := []struct {
		name  string
		id    string
		valid bool
	}{
		{"minted", minted, true},
		{"minted by a replica keyed alike", newSessionIDs([]byte("secret")).mint(testKeyID), true},
		{"minted under another key", newSessionIDs([]byte("other")).mint(testKeyID), false},
		{"minted under a random key", newSessionIDs(nil).mint(testKeyID), false},
		{"minted for another API key", ids.mint("key_other"), false},
		{"mcp-go's form", "mcp-session-0b1d7c2e-6f3a-4c8e-9d2b-5a7e1f3c9b40", false},
		{"junk", "junk", false},
		{"empty", "", false},
		{"tag changed", changed(minted, len(minted)-2), false},
		{"random part changed", changed(minted, len(sessionIDPrefix)), false},
		{"another spelling of the same bytes", respelled(t, minted), false},
		{"longer", minted + "A", false},
		{"without the prefix", strings.TrimPrefix(minted, sessionIDPrefix), false},
		{"not base64", minted[:len(minted)-1] + "*", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ended, err := ids.check(tc.id, testKeyID)
			if (err == nil) != tc.valid || ended {
				t.Fatalf("Validate(%q) = %v, %v; want valid %v", tc.id, ended, err, tc.valid)
			}
		})
	}
	seen := map[string]bool{}
	for range 1000 {
		id := ids.mint(testKeyID)
		if seen[id] || !strings.HasPrefix(id, sessionIDPrefix) || len(id) != sessionIDLen {
			t.Fatalf("minted %q (seen before: %v)", id, seen[id])
		}
		for _, c := range []byte(id) {
			// The transport allows visible ASCII only.
			if c < 0x21 || c > 0x7e {
				t.Fatalf("minted %q", id)
			}
		}
		seen[id] = true
	}
}

func TestSessionIDsEnd(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	ids := newSessionIDs(nil)
	ids.now = func() time.Time { return now }
	ended, kept := ids.mint(testKeyID), ids.mint(testKeyID)
	for range 2 {
		if err := ids.end(ended, testKeyID); err != nil {
			t.Fatal(err)
		}
	}
	if err := ids.end("mcp-session-0b1d7c2e-6f3a-4c8e-9d2b-5a7e1f3c9b40", testKeyID); err == nil {
		t.Fatal("ended an ID the key did not mint")
	}
	if len(ids.ended) != 1 || len(ids.order)-ids.head != 1 {
		t.Fatalf("%d IDs ended, %d in order; want 1", len(ids.ended), len(ids.order)-ids.head)
	}
	check := func(id string, want bool) {
		t.Helper()
		if got, err := ids.check(id, testKeyID); err != nil || got != want {
			t.Fatalf("Validate after %v = %v, %v; want ended %v", now.Sub(time.Unix(1_700_000_000, 0)), got, err, want)
		}
	}
	check(ended, true)
	check(kept, false)
	now = now.Add(endedSessionTTL - time.Nanosecond)
	check(ended, true)
	now = now.Add(time.Nanosecond)
	check(ended, false)
	// Ended again once forgotten, it is refused again.
	if err := ids.end(ended, testKeyID); err != nil {
		t.Fatal(err)
	}
	check(ended, true)
	if len(ids.ended) != 1 || len(ids.order)-ids.head != 1 {
		t.Fatalf("%d IDs ended, %d in order; want 1", len(ids.ended), len(ids.order)-ids.head)
	}
}

func TestEndedSessionsAreBounded(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	ids := newSessionIDs(nil)
	ids.now = func() time.Time { return now }
	ids.max = 3
	var minted []string
	for i := range 1000 {
		minted = append(minted, ids.mint(testKeyID))
		if err := ids.end(minted[i], testKeyID); err != nil {
			t.Fatal(err)
		}
		if len(ids.ended) > ids.max || len(ids.order) > 2*ids.max {
			t.Fatalf("after %d DELETEs: %d ended, %d in order", i+1, len(ids.ended), len(ids.order))
		}
	}
	// The oldest went first.
	for i, id := range minted {
		if ended, _ := ids.check(id, testKeyID); ended != (i >= len(minted)-ids.max) {
			t.Fatalf("ID %d of %d: ended %v", i, len(minted), ended)
		}
	}
	// Expired, they go at the next DELETE.
	now = now.Add(endedSessionTTL)
	if err := ids.end(ids.mint(testKeyID), testKeyID); err != nil {
		t.Fatal(err)
	}
	if len(ids.ended) != 1 || len(ids.order)-ids.head != 1 {
		t.Fatalf("%d ended, %d in order after they expired; want 1", len(ids.ended), len(ids.order)-ids.head)
	}
}

// mcp-go ends sessions of its own accord (the idle sweeper, CloseSessions)
// through the manager it resolves without a request; only a client's DELETE
// ends the ID.
func TestOnlyADeleteEndsASessionID(t *testing.T) {
	t.Parallel()
	ids := newSessionIDs(nil)
	swept, deleted := ids.mint(testKeyID), ids.mint(testKeyID)
	if _, err := ids.ResolveSessionIdManager(nil).Terminate(swept); err != nil {
		t.Fatal(err)
	}
	del := httptest.NewRequest(http.MethodDelete, "/mcp", nil)
	del = del.WithContext(context.WithValue(del.Context(), principalKey{}, &governance.Principal{KeyID: testKeyID}))
	if _, err := ids.ResolveSessionIdManager(del).Terminate(deleted); err != nil {
		t.Fatal(err)
	}
	if ended, err := ids.check(swept, testKeyID); ended || err != nil {
		t.Fatalf("swept session: ended %v, %v", ended, err)
	}
	if ended, err := ids.check(deleted, testKeyID); !ended || err != nil {
		t.Fatalf("deleted session: ended %v, %v", ended, err)
	}
	if _, err := ids.ResolveSessionIdManager(nil).Validate("junk"); err == nil {
		t.Fatal("the sweeper's manager accepts any ID")
	}
}

// Gateways given the same SessionSecret (replicas sharing governance.secret)
// accept each other's session IDs; others, and gateways without one, do not.
func TestGatewaySessionSecret(t *testing.T) {
	t.Parallel()
	rec, err := trace.NewRecorder(trace.RecorderConfig{SpillDir: t.TempDir()}, &spanSink{}, nil, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rec.Close(context.Background()) })
	gateway := func(secret string) *Gateway {
		gw, err := New(Config{}, Deps{Governor: newGovernor(t), Tracer: trace.NewTracer(rec), Logger: quietLogger(), SessionSecret: []byte(secret)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = gw.Close() })
		return gw
	}
	a, b, other := gateway("shared"), gateway("shared"), gateway("other")
	unkeyedA, unkeyedB := gateway(""), gateway("")
	tests := []struct {
		name        string
		mint, check *Gateway
		valid       bool
	}{
		{"same secret", a, b, true},
		{"other secret", a, other, false},
		{"no secret to a keyed one", unkeyedA, a, false},
		{"no secret to another without", unkeyedA, unkeyedB, false},
		{"no secret to itself", unkeyedA, unkeyedA, true},
	}
	for _, tc := range tests {
		if _, err := tc.check.sessions.check(tc.mint.sessions.mint(testKeyID), testKeyID); (err == nil) != tc.valid {
			t.Errorf("%s: Validate = %v, want valid %v", tc.name, err, tc.valid)
		}
	}
}

// sessionRefusal checks a refusal the gateway writes: a JSON-RPC error with
// the request's ID.
func sessionRefusal(t *testing.T, r httpReply, status int, msg, id string) {
	t.Helper()
	var body struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if r.status != status || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") ||
		json.Unmarshal([]byte(r.body), &body) != nil || body.JSONRPC != "2.0" || string(body.ID) != id ||
		body.Error.Code != codeInvalidRequest || body.Error.Message != msg {
		t.Fatalf("got %d %q %s, want %d with %q and id %s", r.status, r.header.Get("Content-Type"), r.body, status, msg, id)
	}
}

// sessionRequest is a request of a 2025-11-25 session, and what answers it
// when the session is not one the gateway serves.
type sessionRequest struct {
	name, method, body string
	id                 string // the answer's JSON-RPC ID
}

var sessionRequests = []sessionRequest{
	{"tools/list, mcp-go's", http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, `1`},
	{"tools/call, the direct path's", http.MethodPost,
		`{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"weather__add","arguments":{"a":1,"b":2}}}`, `"c"`},
	{"notification", http.MethodPost, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, `null`},
	{"GET stream", http.MethodGet, ``, `null`},
	{"DELETE", http.MethodDelete, ``, `null`},
}

func (e *env) sendInSession(t *testing.T, r sessionRequest, session string) httpReply {
	t.Helper()
	return request(t, r.method, e.url+"/mcp", keyAll, r.body, "Mcp-Session-Id", session)
}

// openStream opens a session's GET stream on path; the caller closes it.
func (e *env) openStream(t *testing.T, path, session string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+keyAll)
	req.Header.Set("Mcp-Protocol-Version", mcp.ProtocolVersion20251125)
	req.Header.Set("Mcp-Session-Id", session)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// A session ID the gateway did not mint gets 404, so the client starts a new
// session, on mcp-go's path and on the gateway's own alike.
func TestUnknownSessionIsNotFound(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	valid := e.openSession(t, keyAll)
	call := toolCall{key: keyAll, version: mcp.ProtocolVersion20251125, session: valid, body: sessionRequests[1].body}
	if !e.takenByGateway(t, "", call) {
		t.Fatal("directCall left a call of a valid session to mcp-go")
	}
	stream := e.openStream(t, "/mcp", valid)
	_ = stream.Body.Close()
	if stream.StatusCode != http.StatusOK || stream.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET stream of a valid session: %d %q", stream.StatusCode, stream.Header.Get("Content-Type"))
	}
	forged := []struct{ name, id string }{
		{"mcp-go's form", "mcp-session-0b1d7c2e-6f3a-4c8e-9d2b-5a7e1f3c9b40"},
		{"junk", "junk"},
		{"another secret's", newSessionIDs([]byte("another key")).mint("")},
		{"tag changed", changed(valid, len(valid)-2)},
	}
	for _, f := range forged {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			call := call
			call.session = f.id
			if e.takenByGateway(t, "", call) {
				t.Fatal("directCall answered a forged session")
			}
			for _, r := range sessionRequests {
				t.Run(r.name, func(t *testing.T) {
					sessionRefusal(t, e.sendInSession(t, r, f.id), http.StatusNotFound, "Invalid session ID", r.id)
				})
			}
		})
	}
	if r := e.sendInSession(t, sessionRequests[1], valid); r.status != http.StatusOK || !strings.Contains(r.body, `"result"`) {
		t.Fatalf("the valid session's call: %d %s", r.status, r.body)
	}
}

// keyed authenticates every request with the key, also the DELETE that
// mcp-go's client sends without the headers it was given.
type keyed string

func (k keyed) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(k))
	return http.DefaultTransport.RoundTrip(r)
}

// After the DELETE that ends a session its ID gets 404; other sessions go on.
func TestEndedSessionIsNotFound(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	ctx := ctxT(t)
	cli, err := e.dial("/mcp", keyAll, mcp.ProtocolVersion20251125, transport.WithHTTPBasicClient(&http.Client{Transport: keyed(keyAll)}))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := callTool(ctx, cli, "weather__add", map[string]any{"a": 1, "b": 2}); err != nil || res.IsError {
		t.Fatalf("call = %+v, %v", res, err)
	}
	ended := cli.GetSessionId()
	other := e.connect(t, "/mcp", keyAll, mcp.ProtocolVersion20251125)
	_ = cli.Close() // it DELETEs its session
	for _, r := range sessionRequests {
		t.Run(r.name, func(t *testing.T) {
			sessionRefusal(t, e.sendInSession(t, r, ended), http.StatusNotFound, "Session terminated", r.id)
		})
	}
	if res, err := callTool(ctx, other, "weather__add", map[string]any{"a": 1, "b": 2}); err != nil || res.IsError {
		t.Fatalf("another session's call = %+v, %v", res, err)
	}
	raw := e.openSession(t, keyAll)
	del := sessionRequests[len(sessionRequests)-1]
	if r := e.sendInSession(t, del, raw); r.status != http.StatusOK {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	sessionRefusal(t, e.sendInSession(t, del, raw), http.StatusNotFound, "Session terminated", "null")
}

// A 2025-11-25 request without a session gets 400; initialize needs none,
// nor does any 2026-07-28 request, and what mcp-go's transport refuses first
// still gets its refusal.
func TestMissingSessionIsBadRequest(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	for _, r := range sessionRequests {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			sessionRefusal(t, request(t, r.method, e.url+"/mcp", keyAll, r.body), http.StatusBadRequest, "Mcp-Session-Id header is required", r.id)
		})
	}
	t.Run("no protocol version header", func(t *testing.T) {
		t.Parallel()
		r := request(t, http.MethodPost, e.url+"/mcp", keyAll, sessionRequests[0].body, "Mcp-Protocol-Version", "")
		sessionRefusal(t, r, http.StatusBadRequest, "Mcp-Session-Id header is required", "1")
	})
	modern := func(method, name string) []string {
		return []string{"Mcp-Protocol-Version", mcp.ProtocolVersion20260728, "Mcp-Method", method, "Mcp-Name", name}
	}
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`
	tests := []struct {
		name, method, body string
		header             []string
		status             int
		want               string
	}{
		{"initialize", http.MethodPost, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`,
			[]string{"Mcp-Protocol-Version", ""}, http.StatusOK, `"protocolVersion":"2025-11-25"`},
		{"not JSON", http.MethodPost, sessionRequests[0].body, []string{"Content-Type", "text/plain"}, http.StatusBadRequest, "Invalid content type"},
		{"unsupported version", http.MethodPost, sessionRequests[0].body, []string{"Mcp-Protocol-Version", "1999-01-01"}, http.StatusBadRequest, "Unsupported protocol version"},
		{"unsupported version, GET", http.MethodGet, ``, []string{"Mcp-Protocol-Version", "1999-01-01"}, http.StatusBadRequest, "Unsupported protocol version"},
		{"2026-07-28 _meta with a 2025-11-25 header", http.MethodPost,
			`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + meta + `}}`, nil, http.StatusBadRequest, "does not match"},
		{"2026-07-28 tools/call", http.MethodPost,
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"weather__add","arguments":{"a":1,"b":2},` + meta + `}}`,
			modern("tools/call", "weather__add"), http.StatusOK, `"result"`},
		{"2026-07-28 tools/list", http.MethodPost, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + meta + `}}`,
			modern("tools/list", ""), http.StatusOK, `"weather__add"`},
		{"2026-07-28 GET", http.MethodGet, ``, modern("", ""), http.StatusMethodNotAllowed, "not supported in protocol version"},
		{"2026-07-28 DELETE", http.MethodDelete, ``, modern("", ""), http.StatusMethodNotAllowed, "not supported in protocol version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := request(t, tc.method, e.url+"/mcp", keyAll, tc.body, tc.header...)
			if r.status != tc.status || !strings.Contains(r.body, tc.want) {
				t.Fatalf("got %d %s, want %d containing %s", r.status, r.body, tc.status, tc.want)
			}
			if tc.name == "initialize" && r.header.Get("Mcp-Session-Id") == "" {
				t.Fatal("initialize opened no session")
			}
		})
	}
}

// Over HTTP: a session opened on one gateway is served by another keyed
// alike, on mcp-go's path and the direct one, and refused by one keyed
// otherwise.
func TestSessionIDsFollowTheSecret(t *testing.T) {
	t.Parallel()
	a, alike := start(t, nil), start(t, nil)
	otherwise := startWith(t, nil, quietLogger(), func(d *Deps) { d.SessionSecret = []byte("another secret") })
	session := a.openSession(t, keyAll)
	for _, r := range sessionRequests[:2] {
		if got := alike.sendInSession(t, r, session); got.status != http.StatusOK || !strings.Contains(got.body, `"result"`) {
			t.Errorf("%s on a replica keyed alike: %d %s", r.name, got.status, got.body)
		}
		t.Run(r.name, func(t *testing.T) {
			sessionRefusal(t, otherwise.sendInSession(t, r, session), http.StatusNotFound, "Invalid session ID", r.id)
		})
	}
}

// mcp-go ends the sessions of a view that shuts down (a server removed from
// the config) as its sweeper does idle ones, through CloseSessions: the
// session's stream ends there, and its ID goes on elsewhere.
func TestShutDownViewKeepsSessionIDs(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	session := e.openSession(t, keyAll)
	resp := e.openStream(t, "/mcp/weather", session)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET stream: %d", resp.StatusCode)
	}
	cfg := e.cfg
	cfg.Servers = cfg.Servers[1:]
	if err := e.gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("the stream of the removed server's view did not end: %v", err)
	}
	if ended, err := e.gw.sessions.check(session, keyIDFor(t, e, keyAll)); ended || err != nil {
		t.Fatalf("Validate = %v, %v; want a session that goes on", ended, err)
	}
	if r := e.sendInSession(t, sessionRequests[0], session); r.status != http.StatusOK || !strings.Contains(r.body, "files__add") {
		t.Fatalf("the session on /mcp: %d %s", r.status, r.body)
	}
}

func keyIDFor(t *testing.T, e *env, key string) string {
	t.Helper()
	p, err := e.gw.gov.Authenticate(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.KeyID
}

// A session belongs to the key that opened it: another key presenting its ID
// is told it is unknown, for every request, and cannot end it.
func TestAnotherKeysSessionIsNotFound(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	session := e.openSession(t, keyAll)
	for _, r := range sessionRequests {
		t.Run(r.name, func(t *testing.T) {
			got := request(t, r.method, e.url+"/mcp", keyLimited, r.body, "Mcp-Session-Id", session)
			sessionRefusal(t, got, http.StatusNotFound, "Invalid session ID", r.id)
		})
	}
	if got := e.sendInSession(t, sessionRequests[0], session); got.status != http.StatusOK || !strings.Contains(got.body, `"result"`) {
		t.Fatalf("the owner's session after another key's DELETE: %d %s", got.status, got.body)
	}
}
