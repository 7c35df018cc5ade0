// Package floortest holds the checks both benchmark floors must pass: a floor that drops bodies, headers or
// stream events would make the benchmark compare the gateway with something that does less.
package floortest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Upstream starts an upstream on 127.0.0.1 that echoes JSON requests and answers requests whose body
// holds "stream":true with three SSE events and data: [DONE]. It is closed when the test ends.
func Upstream(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
				w.(http.Flusher).Flush()
			}
			fmt.Fprint(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "yes")
		if r.URL.Query().Get("status") == "429" {
			w.WriteHeader(http.StatusTooManyRequests)
		}
		_ = json.NewEncoder(w).Encode(Echo{
			Method: r.Method, URI: r.URL.RequestURI(), Body: string(body),
			Test: r.Header.Get("X-Test"), ProxyAuth: r.Header.Get("Proxy-Authorization"),
		})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Echo is what Upstream saw of a JSON request.
type Echo struct {
	Method    string `json:"method"`
	URI       string `json:"uri"`
	Body      string `json:"body"`
	Test      string `json:"test"`
	ProxyAuth string `json:"proxy_auth"`
}

// Check sends requests through the floor at proxyURL (which forwards to an Upstream) and fails the test
// where the reply differs from what the upstream sent.
func Check(t *testing.T, proxyURL string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	tests := []struct {
		name       string
		uri        string
		body       string
		wantStatus int
	}{
		{"json reply keeps path, query and body", "/v1/chat/completions?x=1", `{"model":"m"}`, http.StatusOK},
		{"upstream status passes through", "/v1/embeddings?status=429", `{"input":"a"}`, http.StatusTooManyRequests},
		{"root path", "/", `{"jsonrpc":"2.0"}`, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(http.MethodPost, proxyURL+tt.uri, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Test", "kept")
			req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if resp.Header.Get("X-Upstream") != "yes" {
				t.Errorf("upstream response header lost")
			}
			var got Echo
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			want := Echo{Method: http.MethodPost, URI: tt.uri, Body: tt.body, Test: "kept"}
			if got != want {
				t.Errorf("upstream saw %+v, want %+v", got, want)
			}
		})
	}
	t.Run("sse stream arrives whole", func(t *testing.T) {
		t.Parallel()
		resp, err := client.Post(proxyURL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type = %q", ct)
		}
		var events []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); line != "" {
				events = append(events, line)
			}
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		want := []string{`data: {"n":0}`, `data: {"n":1}`, `data: {"n":2}`, "data: [DONE]"}
		if strings.Join(events, "|") != strings.Join(want, "|") {
			t.Errorf("events = %q, want %q", events, want)
		}
	})
}
