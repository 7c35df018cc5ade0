package a2a

import (
	"encoding/json"
	"testing"
)

func TestPickRefusesWhatParsersReadDifferently(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, obj string
		ok        bool
		taskID    string // raw value picked for "taskId"
	}{
		{"plain", `{"taskId":"t1","other":[1,{"taskId":"nested"}]}`, true, `"t1"`},
		{"whitespace", " {\n\t\"taskId\" : \"t1\" ,\r\n\"x\":null } ", true, `"t1"`},
		{"absent", `{"contextId":"c1"}`, true, ``},
		{"empty object", `{}`, true, ``},
		{"escaped quote in a value", `{"x":"a\"b}","taskId":"t1"}`, true, `"t1"`},
		{"duplicate", `{"taskId":"t1","taskId":"t2"}`, false, ``},
		{"case variant", `{"taskId":"t1","taskID":"t2"}`, false, ``},
		{"case variant alone", `{"TaskId":"t1"}`, false, ``},
		{"unicode fold (long s)", `{"taſkId":"t1"}`, false, ``},
		{"escaped case variant", `{"task\u0069d":"t1"}`, false, ``},
		{"proto name", `{"task_id":"t1"}`, false, ``},
		{"proto name beside the JSON name", `{"taskId":"t1","task_id":"t2"}`, false, ``},
		{"other key with underscores", `{"task_ids":"t1","taskId":"t2"}`, true, `"t2"`},
		{"escaped key, exact", `{"\u0074askId":"t1"}`, true, `"t1"`},
		{"trailing bytes", `{"taskId":"t1"} x`, false, ``},
		{"second object", `{"taskId":"t1"}{}`, false, ``},
		{"not an object", `["taskId"]`, false, ``},
		{"unterminated", `{"taskId":"t1"`, false, ``},
		{"unterminated string", `{"taskId":"t1}`, false, ``},
		{"missing colon", `{"taskId" "t1"}`, false, ``},
		{"missing value", `{"taskId":}`, false, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs, ok := pick([]byte(tt.obj), "taskId", "contextId")
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && string(fs.get("taskId")) != tt.taskID {
				t.Errorf("taskId = %q, want %q", fs.get("taskId"), tt.taskID)
			}
		})
	}
}

func TestPlainIDIsOnlyWhatRoundTripsUnchanged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want bool
	}{
		{`"r-1"`, true},
		{`null`, false},
		{`7`, true},
		{`0`, true},
		{`123456789012345`, true},
		{`1234567890123456`, false}, // past float64's exact integers' safe width
		{`07`, false},
		{`-1`, false},
		{`1.5`, false},
		{`1e3`, false},
		{`"a<b"`, false}, // a2a-go's encoder HTML-escapes it
		{`"a\"b"`, false},
		{`"é"`, false},
		{`true`, false},
		{`{}`, false},
	}
	for _, tt := range tests {
		if got := plainID([]byte(tt.id)); got != tt.want {
			t.Errorf("plainID(%s) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

// A void answer gets the result member JSON-RPC 2.0 requires; anything else
// is left as it is.
func TestWithResult(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`{"jsonrpc":"2.0","id":2}` + "\n", `{"jsonrpc":"2.0","id":2,"result":null}` + "\n"},
		{`{"jsonrpc":"2.0","id":"a"}`, `{"jsonrpc":"2.0","id":"a","result":null}`},
		{`{"jsonrpc":"2.0","id":2,"result":null}`, `{"jsonrpc":"2.0","id":2,"result":null}`},
		{`{"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"x"}}`, `{"jsonrpc":"2.0","id":2,"error":{"code":-32001,"message":"x"}}`},
		{`{"jsonrpc":"2.0","id":2`, `{"jsonrpc":"2.0","id":2`},
	} {
		if got := string(withResult([]byte(tc.in))); got != tc.want {
			t.Errorf("withResult(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Error data of any JSON value becomes the list of objects a2a-go decodes;
// data already in that shape, and answers without data, stay as they are.
func TestTypedErrorData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ data, want string }{
		{`{"detail":"x"}`, `[{"detail":"x"}]`},
		{`"just text"`, `[{"value":"just text"}]`},
		{`42`, `[{"value":42}]`},
		{`[{"@type":"t","a":1},"s"]`, `[{"@type":"t","a":1},{"value":"s"}]`},
		{`[{"a":1}]`, ``},
		{`null`, ``},
	} {
		in := `{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"m","data":` + tc.data + `}}`
		got := string(typedErrorData([]byte(in)))
		if tc.want == "" {
			if got != in {
				t.Errorf("data %s: rewritten to %s", tc.data, got)
			}
			continue
		}
		var msg struct {
			Error struct {
				Code int
				Data json.RawMessage
			}
		}
		if err := json.Unmarshal([]byte(got), &msg); err != nil || msg.Error.Code != -32001 || string(msg.Error.Data) != tc.want {
			t.Errorf("data %s: got %s, want data %s", tc.data, got, tc.want)
		}
	}
	for _, answer := range []string{`{"jsonrpc":"2.0","id":1,"result":{"task":{}}}`, `{"jsonrpc":"2.0","id":1,"error":{"code":1}}`, `not json`} {
		if got := string(typedErrorData([]byte(answer))); got != answer {
			t.Errorf("%s rewritten to %s", answer, got)
		}
	}
}

// TestReplayAnswersWithTheReplayedRequestsID checks that a replayed answer
// echoing the id the fast path sent reads as an answer to a2a-go's request,
// whose id its client decodes as a string, while any other answer is
// replayed as it came.
func TestReplayAnswersWithTheReplayedRequestsID(t *testing.T) {
	t.Parallel()
	const req = `{"jsonrpc":"2.0","method":"SendMessage","params":{},"id":"uuid-1"}`
	tests := []struct {
		name, sent, answer, req, want string
	}{
		{"number", `7`, `{"jsonrpc":"2.0", "id" : 7 ,"error":{"code":-32602,"message":"m"}}`, req,
			`{"jsonrpc":"2.0", "id" : "uuid-1" ,"error":{"code":-32602,"message":"m"}}`},
		{"string", `"abc"`, `{"id":"abc","jsonrpc":"2.0","result":{}}`, req, `{"id":"uuid-1","jsonrpc":"2.0","result":{}}`},
		{"another id", `7`, `{"jsonrpc":"2.0","id":8,"result":{}}`, req, `{"jsonrpc":"2.0","id":8,"result":{}}`},
		{"no id", `7`, `{"jsonrpc":"2.0","result":{}}`, req, `{"jsonrpc":"2.0","result":{}}`},
		{"doubled id", `7`, `{"id":7,"id":7,"result":{}}`, req, `{"id":7,"id":7,"result":{}}`},
		{"not JSON", `7`, `boom`, req, `boom`},
		{"request without id", `7`, `{"id":7}`, `{"jsonrpc":"2.0"}`, `{"id":7}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rp := &replay{status: 200, body: []byte(tt.answer), id: []byte(tt.sent)}
			if got := string(rp.answerTo([]byte(tt.req))); got != tt.want {
				t.Errorf("answerTo = %s, want %s", got, tt.want)
			}
			if string(rp.body) != tt.answer {
				t.Errorf("recorded answer changed to %s", rp.body)
			}
		})
	}
}
