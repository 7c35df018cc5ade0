package a2a

import (
	"bytes"
	"context"
	"iter"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// panicking stands for a bug behind a2a-go's handler: every call it gets panics. The other methods are never
// called here.
type panicking struct{ a2asrv.RequestHandler }

func (panicking) SendMessage(context.Context, *a2a.SendMessageRequest) (a2a.SendMessageResult, error) {
	panic("proxy bug")
}

func (panicking) SendStreamingMessage(context.Context, *a2a.SendMessageRequest) iter.Seq2[a2a.Event, error] {
	panic("proxy bug")
}

// A panic a2a-go's handler recovers is logged with the request_id of the call that panicked, as every other line
// written while a call is handled; the client gets a JSON-RPC internal error, in a stream or not, in 1.0 and 0.3,
// and a stream ends after it.
func TestPanicLineNamesTheRequest(t *testing.T) {
	t.Parallel()
	const v1Params = `{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}`
	const v0Params = `{"message":{"kind":"message","messageId":"m1","role":"user","parts":[{"kind":"text","text":"hi"}]}}`
	cases := []struct {
		name, method, params string
		v1                   bool
	}{
		{"1.0 SendMessage", "SendMessage", v1Params, true},
		{"1.0 SendStreamingMessage", "SendStreamingMessage", v1Params, true},
		{"0.3 message/send", "message/send", v0Params, false},
		{"0.3 message/stream", "message/stream", v0Params, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logged bytes.Buffer
			hs := newRPCHandlers(panicking{}, 0, slog.New(slog.NewJSONHandler(&logged, nil)))
			body := `{"jsonrpc":"2.0","id":1,"method":"` + tc.method + `","params":` + tc.params + `}`
			w := httptest.NewRecorder()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			served := make(chan struct{})
			go func() {
				defer close(served)
				hs.serve(w, httptest.NewRequestWithContext(ctx, http.MethodPost, "/a2a/agent", strings.NewReader(body)), tc.v1,
					&call{requestID: "rid-" + tc.method}, cancel)
			}()
			select {
			case <-served:
			case <-time.After(10 * time.Second):
				// a2a-go keeps a stream open after its error event until the context ends.
				t.Fatal("the call that panicked was still being served 10s later")
			}

			if !strings.Contains(w.Body.String(), `"code":-32603`) {
				t.Errorf("answer %s; want a JSON-RPC internal error", w.Body)
			}
			line := logged.String()
			if !strings.Contains(line, "panic while proxying") || !strings.Contains(line, `"request_id":"rid-`+tc.method+`"`) {
				t.Errorf("log %s; want the panic line with request_id rid-%s", line, tc.method)
			}
			if hs.call != nil {
				t.Error("the handlers still hold the call after serving it; a pooled set would name it in another call's panic")
			}
		})
	}
}
