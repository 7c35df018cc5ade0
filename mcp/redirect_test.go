package mcp

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

// mockBehind starts an MCP mock and returns a reverse proxy to it.
func mockBehind(t *testing.T) *httputil.ReverseProxy {
	t.Helper()
	m, err := mock.StartMCP("127.0.0.1:0", mock.MCPOptions{Name: "weather"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	u, err := url.Parse(m.URL)
	if err != nil {
		t.Fatal(err)
	}
	return httputil.NewSingleHostReverseProxy(u)
}

// A server's configured headers go to the origin the operator configured and
// no other: a redirect within it is followed, one to another host is not, so
// an MCP server (or an open redirect on its host) cannot send the gateway,
// with its X-Token (which net/http itself keeps on a redirect) and a POST's
// body, somewhere else.
func TestServerRedirectsStayOnTheirOrigin(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var away []http.Header
	awayProxy := mockBehind(t)
	awaySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		away = append(away, r.Header.Clone())
		mu.Unlock()
		awayProxy.ServeHTTP(w, r)
	}))
	t.Cleanup(awaySrv.Close)
	var crossed atomic.Int64
	homeProxy := mockBehind(t)
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/same/"):
			http.Redirect(w, r, strings.TrimPrefix(r.URL.Path, "/same"), http.StatusTemporaryRedirect)
		case strings.HasPrefix(r.URL.Path, "/cross/"):
			crossed.Add(1)
			http.Redirect(w, r, awaySrv.URL+strings.TrimPrefix(r.URL.Path, "/cross"), http.StatusTemporaryRedirect)
		default:
			homeProxy.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(home.Close)
	headers := map[string]string{"X-Token": "mcp-token-0123456789", "Authorization": "Bearer mcp-secret-0123456789"}
	// start waits for every server's tools; the redirected one comes with a reload.
	e := start(t, func(c *Config) {
		c.Servers = append(c.Servers, ServerConfig{Name: "moved", URL: home.URL + "/same/mcp", Headers: headers, Timeout: 5 * time.Second})
	})
	cfg := e.cfg
	cfg.Servers = append(slices.Clone(cfg.Servers), ServerConfig{Name: "elsewhere", URL: home.URL + "/cross/mcp", Headers: headers, Timeout: 5 * time.Second})
	if err := e.gw.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	// Two requests redirected mean the first exchange (and any request it
	// made to the other origin) is over.
	eventually(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return crossed.Load() >= 2 || len(away) > 0
	}, "the redirected server's connection attempts")
	mu.Lock()
	defer mu.Unlock()
	if len(away) > 0 {
		t.Errorf("another origin got %d requests, the first with X-Token %q", len(away), away[0].Get("X-Token"))
	}
	if slices.Contains(e.federatedTools(), "elsewhere__add") {
		t.Error("the tools of a server redirected to another origin are listed")
	}
}
