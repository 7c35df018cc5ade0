package app

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/cmd/switchboard/config"
)

// endlessStream mounts a route that streams an SSE event every 20 ms until the client or the gateway ends it.
func endlessStream(a *App) {
	a.Fiber().Get("/test/stream", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/event-stream")
		c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
			for {
				if _, err := w.WriteString("data: {}\n\n"); err != nil {
					return
				}
				if err := w.Flush(); err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		return nil
	})
}

func dial(t *testing.T, s *started) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.url, "http://"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closedWithin reports whether the server closes conn (after whatever it still sends) within d.
func closedWithin(conn net.Conn, d time.Duration) bool {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

func TestSlowlorisCannotExhaustTheGateway(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *config.Config) { c.Server.ReadTimeout = time.Second }, nil)
	const slow = 40
	conns := make([]net.Conn, slow)
	for i := range conns {
		conns[i] = dial(t, s)
		if _, err := conns[i].Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	// One header byte per connection every 300 ms: never a complete request.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				for _, c := range conns {
					_, _ = c.Write([]byte("X"))
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()

	if code, _, _ := get(t, s.url+"/healthz"); code != http.StatusOK {
		t.Fatalf("normal client during slowloris: status %d", code)
	}
	for i, c := range conns {
		if !closedWithin(c, 5*time.Second) {
			t.Fatalf("slow connection %d still open after the read timeout", i)
		}
	}
}

func TestRequestSizeLimits(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *config.Config) {
		c.Server.MaxHeaderBytes = 4096
		c.Server.MaxBodyBytes = 1024
	}, nil)
	cases := []struct {
		name   string
		wire   string
		status string
	}{
		{"header over max_header_bytes", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8192) + "\r\n\r\n", "431"},
		{"body over max_body_bytes", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n" +
			strings.Repeat(" ", 4096), "413"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, s)
			if _, err := conn.Write([]byte(tc.wire)); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := resp.Status[:3]; got != tc.status {
				t.Fatalf("status %s, want %s", resp.Status, tc.status)
			}
			var body struct {
				Error struct {
					Type string `json:"type"`
				} `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error.Type == "" {
				t.Fatalf("not an OpenAI error body: %v", err)
			}
		})
	}
}

func TestMaxConnsPerIP(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *config.Config) { c.Server.MaxConnsPerIP = 2 }, nil)
	held := []net.Conn{dial(t, s), dial(t, s)}
	for _, c := range held {
		// A request each, so both connections are surely accepted and counted before the third dials.
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	over := dial(t, s)
	_, _ = over.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("third connection from one IP: status %d, want 429 or a closed connection", resp.StatusCode)
		}
	}
}

func TestStreamOverMaxDurationIsEnded(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *config.Config) { c.Server.MaxStreamDuration = 300 * time.Millisecond }, endlessStream)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(s.url + "/test/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if n == 0 {
		t.Fatalf("the stream sent nothing before it was ended (err %v)", err)
	}
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the stream ran until the client's timeout: max_stream_duration not enforced")
	}
}

func TestMaxConcurrentStreams(t *testing.T) {
	t.Parallel()
	s := start(t, func(c *config.Config) { c.Server.MaxConcurrentStreams = 1 }, endlessStream)
	first, err := http.Get(s.url + "/test/stream")
	if err != nil {
		t.Fatal(err)
	}
	// Reading the first event proves the stream is running and holds the only slot.
	if _, err := bufio.NewReader(first.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, path, body string
	}{
		{"stream found after the handler", http.MethodGet, "/test/stream", ""},
		{"stream asked for in the request", http.MethodPost, "/v1/chat/completions", `{"model":"m","stream" : true,"messages":[]}`},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, s.url+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"too_many_streams"`) {
			t.Fatalf("%s: status %d body %s, want 503 too_many_streams", tc.name, resp.StatusCode, body)
		}
	}
	first.Body.Close()
	// The slot comes back when the first stream's connection is done.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(s.url + "/test/stream")
		if err != nil {
			t.Fatal(err)
		}
		ok := resp.StatusCode == http.StatusOK
		resp.Body.Close()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot was not given back after the stream ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWantsStream(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body string
		want bool
	}{
		{`{"stream":true}`, true},
		{`{"model":"m", "stream" :  true}`, true},
		{`{"stream":false}`, false},
		{`{"messages":[{"content":"\"stream\": true"}]}`, false},
		{`{}`, false},
	}
	for _, tc := range cases {
		if got := jsonMemberIs([]byte(tc.body), "stream", "true"); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.body, got, tc.want)
		}
	}
}
