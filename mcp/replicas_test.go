package mcp

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
)

// roundRobin is a load balancer without stickiness: each request goes to the
// next replica, whatever session it belongs to.
type roundRobin struct {
	next     atomic.Uint64
	replicas []*url.URL
	posts    []atomic.Int64 // POSTs served per replica
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i := int(rr.next.Add(1)-1) % len(rr.replicas)
	if r.Method == http.MethodPost {
		rr.posts[i].Add(1)
	}
	proxy := httputil.NewSingleHostReverseProxy(rr.replicas[i])
	proxy.FlushInterval = -1 // streams pass as they come
	proxy.ServeHTTP(w, r)
}

// TestSessionsSurviveAnyReplica shows why MCP needs no sticky sessions: a
// 2025-11-25 session id minted by one replica is served by another, and a
// stateless 2026-07-28 client never had one.
func TestSessionsSurviveAnyReplica(t *testing.T) {
	t.Parallel()
	a := start(t, nil)
	b := start(t, func(c *Config) {
		c.Servers[0].URL = a.weather.URL + "/mcp" // both replicas front the same upstream
	})
	rr := &roundRobin{posts: make([]atomic.Int64, 2)}
	for _, e := range []*env{a, b} {
		u, err := url.Parse(e.url)
		if err != nil {
			t.Fatal(err)
		}
		rr.replicas = append(rr.replicas, u)
	}
	lb := httptest.NewServer(rr)
	t.Cleanup(lb.Close)
	front := &env{url: lb.URL}

	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			ctx := ctxT(t)
			cli := front.connect(t, "/mcp", keyAll, p.version)
			before := [2]int64{rr.posts[0].Load(), rr.posts[1].Load()}
			for i := range 6 {
				if _, err := cli.ListTools(ctx, mcp.ListToolsRequest{}); err != nil {
					t.Fatalf("list %d: %v", i, err)
				}
				res, err := callTool(ctx, cli, "weather__add", map[string]any{"a": i, "b": 1})
				if err != nil || res.IsError {
					t.Fatalf("call %d = %+v, %v", i, res, err)
				}
				if got, want := strings.SplitN(resultText(res), "\n", 2)[0], strconv.Itoa(i+1); got != want {
					t.Fatalf("call %d = %q, want %q", i, got, want)
				}
			}
			for i := range rr.posts {
				if rr.posts[i].Load() == before[i] {
					t.Fatalf("replica %d served none of the session's requests", i)
				}
			}
		})
	}
}
