package a2a

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzReadEnvelope feeds arbitrary JSON-RPC bodies and A2A-Version headers
// to the envelope reader. Properties: the body reaches a2a-go unchanged; an
// accepted envelope names a method of the dialect it selected with a JSON-RPC
// id type; a refused one maps to a protocol error code (never "internal
// error") whose reply carries the client's id.
func FuzzReadEnvelope(f *testing.F) {
	seeds := []struct{ body, version string }{
		{`{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}],"messageId":"m1"}}}`, ""},
		{`{"jsonrpc":"2.0","id":"a","method":"SendMessage","params":{"message":{"role":"ROLE_USER","parts":[{"text":"hi"}],"messageId":"m1"}}}`, "1.0"},
		{`{"jsonrpc":"2.0","id":null,"method":"tasks/get","params":{"id":"t1"}}`, "0.3"},
		{`{"jsonrpc":"2.0","id":{"x":1},"method":"GetTask"}`, ""},
		{`{"jsonrpc":"1.0","id":2,"method":"tasks/cancel"}`, ""},
		{`{"jsonrpc":"2.0","id":3,"method":"SendMessage"}`, "0.3"},
		{`{"jsonrpc":"2.0","id":4,"method":"message/send","METHOD":"SendMessage"}`, "2.0"},
		{`[{"jsonrpc":"2.0","id":5,"method":"tasks/get"}]`, ""},
		{`not json`, ""},
	}
	for _, s := range seeds {
		f.Add([]byte(s.body), s.version)
	}
	f.Fuzz(func(t *testing.T, body []byte, version string) {
		r := httptest.NewRequest(http.MethodPost, "/a2a/agent", bytes.NewReader(body))
		if version != "" {
			r.Header.Set("A2A-Version", version)
		}
		env, err := readEnvelope(r)
		rest, rerr := io.ReadAll(r.Body)
		if rerr != nil || !bytes.Equal(rest, body) {
			t.Fatalf("body not restored: %q, %v", rest, rerr)
		}
		switch env.ID.(type) {
		case nil, string, float64:
		default:
			t.Fatalf("id of type %T kept", env.ID)
		}
		if err != nil {
			status, reply := errorResponse(env.ID, err, func(string, string) {})
			var got struct {
				JSONRPC string `json:"jsonrpc"`
				ID      any    `json:"id"`
				Error   struct {
					Code int `json:"code"`
				} `json:"error"`
			}
			if jerr := json.Unmarshal(reply, &got); jerr != nil {
				t.Fatalf("error reply %q is not JSON: %v", reply, jerr)
			}
			if status != http.StatusOK || got.JSONRPC != "2.0" || got.Error.Code == -32603 || got.ID != env.ID {
				t.Fatalf("refusal %v answered %d %s", err, status, reply)
			}
			return
		}
		if env.v1 && !v1Methods[env.Method] || !env.v1 && !v0Methods[env.Method] {
			t.Fatalf("accepted method %q in dialect v1=%v", env.Method, env.v1)
		}
		var check struct {
			JSONRPC string `json:"jsonrpc"`
			Method  string `json:"method"`
		}
		if json.Unmarshal(body, &check) != nil || check.JSONRPC != "2.0" || check.Method != env.Method {
			t.Fatalf("accepted %q as method %q", body, env.Method)
		}
	})
}
