package a2a

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/switchboard-gw/switchboard/governance"
)

const testSecret = "Bearer tok-0123456789abcdef"

// answer wraps body as answerTransport does.
func answer(body io.Reader, secrets *governance.Redactor, limit int64, perEvent bool) io.Reader {
	var r io.ReadCloser = &answerBody{body: io.NopCloser(body), secrets: secrets, limit: limit, perEvent: perEvent}
	if perEvent {
		r = &typedErrorEvents{body: r}
	}
	return r
}

func TestAnswerBodyRedactsAcrossReads(t *testing.T) {
	t.Parallel()
	r := governance.NewRedactor(testSecret)
	in := "data: {\"text\":\"" + testSecret + "\"}\n\n" + "data: {\"text\":\"Bearer tok-01 is half\"}\n\n" + testSecret
	want := "data: {\"text\":\"[redacted]\"}\n\n" + "data: {\"text\":\"Bearer tok-01 is half\"}\n\n" + "[redacted]"
	tests := []struct {
		name string
		body io.Reader
	}{
		{"one read", strings.NewReader(in)},
		{"byte by byte", iotest.OneByteReader(strings.NewReader(in))},
		{"half reads", iotest.HalfReader(strings.NewReader(in))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := io.ReadAll(iotest.OneByteReader(answer(tt.body, r, 1<<20, true)))
			if err != nil || string(got) != want {
				t.Errorf("got %q, %v; want %q", got, err, want)
			}
		})
	}
}

// An SSE event must reach the client when it ends, not when the next one
// arrives: only what could start a secret is held back, and an error event
// is rewritten as it passes.
func TestAnswerBodyDeliversAWholeEventWithoutWaiting(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ event, want string }{
		{"data: {\"text\":\"hi\"}\n\n", "data: {\"text\":\"hi\"}\n\n"},
		{"data: {\"text\":\"hi\"}\r\n\r\n", "data: {\"text\":\"hi\"}\r\n\r\n"},
		{"data: {\"error\":{\"code\":-32001,\"data\":\"x\"}}\r\n\r\n", "data: {\"error\":{\"code\":-32001,\"data\":[{\"value\":\"x\"}]}}\n\n\n"},
	} {
		pr, pw := io.Pipe()
		body := answer(pr, governance.NewRedactor(testSecret), 1<<20, true)
		go func() { _, _ = pw.Write([]byte(tt.event)) }()
		buf := make([]byte, 64)
		n, err := io.ReadAtLeast(body, buf, len(tt.want))
		if err != nil || string(buf[:n]) != tt.want {
			t.Errorf("%q: got %q, %v", tt.event, buf[:n], err)
		}
		_ = pw.Close()
	}
}

// Each SSE event's error data gets the shape a2a-go decodes, however the
// event comes in pieces; events without such data pass byte for byte.
func TestAnswerBodyTypesErrorDataPerEvent(t *testing.T) {
	t.Parallel()
	const task = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"task\":{\"id\":\"t\"}}}\n\n"
	rpcError := func(data string) string {
		return `{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"Task not found"` + data + `}}`
	}
	// As typedErrorData re-encodes it.
	typed := func(data string) string {
		return `{"error":{"code":-32001,"data":` + data + `,"message":"Task not found"},"id":1,"jsonrpc":"2.0"}`
	}
	tests := []struct{ name, in, want string }{
		{"object data", task + "data: " + rpcError(`,"data":{"taskId":"x"}`) + "\n\n",
			task + "data: " + typed(`[{"taskId":"x"}]`) + "\n\n"},
		{"string data", "data: " + rpcError(`,"data":"x"`) + "\n\n" + task,
			"data: " + typed(`[{"value":"x"}]`) + "\n\n" + task},
		{"list data", "data: " + rpcError(`,"data":[{"taskId":"x"}]`) + "\n\n", ""},
		{"no data", "data: " + rpcError(``) + "\n\n", ""},
		{"CRLF, with other fields", "event: error\r\nid: 7\r\ndata: " + rpcError(`,"data":{"taskId":"x"}`) + "\r\n\r\n" + task,
			"data: " + typed(`[{"taskId":"x"}]`) + "\n\n\n" + task},
		{"data on several lines", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\ndata:\"error\":{\"code\":-32001,\"message\":\"m\",\"data\":1}}\n\n",
			"data: {\"error\":{\"code\":-32001,\"data\":[{\"value\":1}],\"message\":\"m\"},\"id\":1,\"jsonrpc\":\"2.0\"}\n\n"},
		{"the last event, unended", ": keep-alive\n\n" + task + "data: " + rpcError(`,"data":"x"`),
			": keep-alive\n\n" + task + "data: " + typed(`[{"value":"x"}]`) + "\n\n"},
		{"an error in a result", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"metadata\":{\"error\":{\"data\":\"x\"}}}}\n\n", ""},
	}
	for _, tt := range tests {
		if tt.want == "" {
			tt.want = tt.in
		}
		for name, split := range map[string]func(io.Reader) io.Reader{
			"one read":     func(r io.Reader) io.Reader { return r },
			"byte by byte": iotest.OneByteReader,
			"half reads":   iotest.HalfReader,
		} {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				t.Parallel()
				for _, secrets := range []*governance.Redactor{nil, governance.NewRedactor(testSecret)} {
					got, err := io.ReadAll(iotest.OneByteReader(answer(split(strings.NewReader(tt.in)), secrets, 1<<20, true)))
					if err != nil || string(got) != tt.want {
						t.Errorf("got %q, %v; want %q", got, err, tt.want)
					}
				}
			})
		}
	}
}

func TestAnswerBodyLimit(t *testing.T) {
	t.Parallel()
	event := func(n int) string { return "data: " + strings.Repeat("x", n-len("data: ")) + "\n\n" }
	tests := []struct {
		name     string
		body     string
		perEvent bool
		tooLarge bool
	}{
		{"body at the limit", strings.Repeat("x", 100), false, false},
		{"body over the limit", strings.Repeat("x", 101), false, true},
		{"events at the limit, many of them", strings.Repeat(event(100), 50), true, false},
		{"CRLF events at the limit", strings.Repeat(strings.ReplaceAll(event(100), "\n", "\r\n"), 50), true, false},
		{"keep-alives between events", strings.Repeat(": keep-alive\n\n"+event(100), 20), true, false},
		{"one event over the limit", event(100) + event(101) + event(100), true, true},
		{"an event's lines add up", "data: " + strings.Repeat("x", 60) + "\ndata: " + strings.Repeat("x", 60) + "\n\n", true, true},
		{"an error event over the limit", "data: {\"error\":{\"code\":1,\"data\":\"" + strings.Repeat("x", 100) + "\"}}\n\n", true, true},
	}
	for _, tt := range tests {
		for _, secrets := range []*governance.Redactor{nil, governance.NewRedactor(testSecret)} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				_, err := io.ReadAll(answer(iotest.HalfReader(strings.NewReader(tt.body)), secrets, 100, tt.perEvent))
				if got := errors.Is(err, errAnswerTooLarge); got != tt.tooLarge {
					t.Errorf("err = %v, want too large: %v", err, tt.tooLarge)
				}
			})
		}
	}
}

type staticRoundTripper struct{ resp *http.Response }

func (s staticRoundTripper) RoundTrip(*http.Request) (*http.Response, error) { return s.resp, nil }

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error {
	c.closed = true
	return nil
}

func TestAnswerTransportRefusesADeclaredOversizeBodyUnread(t *testing.T) {
	t.Parallel()
	body := &closeRecorder{Reader: strings.NewReader(strings.Repeat("x", 200))}
	rt := answerTransport{base: staticRoundTripper{&http.Response{
		StatusCode: http.StatusOK, ContentLength: 200, Body: body,
		Header: http.Header{"Content-Type": {"application/json"}},
	}}, limit: 100}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", nil)
	_, err := rt.RoundTrip(req)
	if !errors.Is(err, errAnswerTooLarge) || !body.closed {
		t.Fatalf("err = %v, body closed %v", err, body.closed)
	}
}
