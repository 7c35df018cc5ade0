package llm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// An upstream that closes idle keep-alive connections sooner than the gateway drops them (uvicorn, so vLLM,
// and Node.js close after 5 s) left the pool full of dead connections after a burst of parallel calls, such as
// the count_tokens fallbacks Claude Code sends for /context: the next call tried two of them, failed with a 502
// and put the deployment in cooldown. Each call must succeed and reach the upstream exactly once.
//
// The connection's read deadline is the last call's until the next call has written its request: a deployment
// whose timeout passed while the connection sat idle must still have it checked. An upstream over TLS sends its
// close_notify alert before closing, so bytes wait on a connection it closed.
func TestIdleConnectionsClosedByTheUpstream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		tls     bool
	}{
		{"timeout longer than the pause", 10 * time.Second, false},
		{"timeout shorter than the pause", staleAfter, false},
		{"TLS", 10 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			idleConnectionsClosedByTheUpstream(t, tc.timeout, tc.tls)
		})
	}
}

func idleConnectionsClosedByTheUpstream(t *testing.T, timeout time.Duration, tls bool) {
	var served atomic.Int64
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		served.Add(1)
		time.Sleep(20 * time.Millisecond) // the burst's calls overlap, so each holds its own connection
		if r.Header.Get("Accept") == "text/event-stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, `data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}`+"\n\n")
			fmt.Fprint(w, `data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`+"\n\ndata: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	}))
	up.Config.IdleTimeout = 100 * time.Millisecond
	if tls {
		up.StartTLS()
	} else {
		up.Start()
	}
	t.Cleanup(up.Close)
	cfg := oneModel("gpt-4.1", DeploymentConfig{Provider: ProviderOpenAI, BaseURL: up.URL + "/v1", Model: "gpt-4.1", Timeout: timeout})
	cfg.Router.AllowedFails = 1
	h := newHarness(t, cfg)
	if tls {
		// The upstream's certificate is the test server's own; nothing else in the client changes.
		h.gw.client.Load().hc.TLSConfig = up.Client().Transport.(*http.Transport).TLSClientConfig
	}
	client := h.client(keyAll)
	req := openai.ChatCompletionRequest{Model: "gpt-4.1", Messages: []openai.ChatCompletionMessage{{Role: "user", Content: "hi"}}}
	call := func(stream bool) error {
		if !stream {
			_, err := client.CreateChatCompletion(context.Background(), req)
			return err
		}
		s, err := client.CreateChatCompletionStream(context.Background(), req)
		if err != nil {
			return err
		}
		defer s.Close()
		for {
			if _, err := s.Recv(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
	const burst = 8
	want := int64(0)
	for _, stream := range []bool{false, true} {
		for round := range 2 {
			var wg sync.WaitGroup
			errs := make(chan error, burst)
			for range burst {
				wg.Go(func() { errs <- call(stream) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("stream %v, round %d, burst: %v", stream, round, err)
				}
			}
			// Long enough for the upstream to close every idle connection, and for the gateway to check them.
			time.Sleep(staleAfter + 200*time.Millisecond)
			if err := call(stream); err != nil {
				t.Fatalf("stream %v, round %d: the call after the pause failed: %v", stream, round, err)
			}
			want += burst + 1
			if got := served.Load(); got != want {
				t.Fatalf("stream %v, round %d: the upstream served %d calls, want %d: none lost, none sent twice", stream, round, got, want)
			}
		}
	}
}
