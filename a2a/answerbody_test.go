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
	return &answerBody{body: io.NopCloser(body), secrets: secrets, limit: limit, perEvent: perEvent}
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
// arrives: only what could start a secret is held back.
func TestAnswerBodyDeliversAWholeEventWithoutWaiting(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	body := answer(pr, governance.NewRedactor(testSecret), 1<<20, true)
	const event = "data: {\"text\":\"hi\"}\n\n"
	go func() { _, _ = pw.Write([]byte(event)) }()
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(body, buf, len(event))
	if err != nil || string(buf[:n]) != event {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	_ = pw.Close()
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
