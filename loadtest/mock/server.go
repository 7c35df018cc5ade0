// Package mock provides upstreams that stand in for LLM providers (OpenAI and
// Anthropic APIs), MCP tool servers and A2A agents in tests, in the gateway's
// demo and in benchmarks. Production packages must not import it.
package mock

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// closeTimeout bounds a graceful Close: in-flight requests get this long to
// finish before their connections are cut.
const closeTimeout = 5 * time.Second

// Server is a running mock upstream listening on a loopback port.
type Server struct {
	URL  string // base URL, e.g. http://127.0.0.1:34567
	Addr string // host:port actually bound

	shutdown  func(context.Context) error
	closeOnce sync.Once
	closeErr  error
}

// Close stops the server gracefully. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		s.closeErr = s.shutdown(ctx)
	})
	return s.closeErr
}

func (s *Server) init(ln net.Listener, shutdown func(context.Context) error) {
	s.Addr = ln.Addr().String()
	s.URL = "http://" + s.Addr
	s.shutdown = shutdown
}

// orDiscard lets every option struct leave Logger nil without the mock
// falling back to the process-wide default logger.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// sleepCtx waits for d unless done closes first; it reports whether the
// full duration elapsed.
func sleepCtx(done <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// serveHTTP serves h on ln and returns the matching shutdown. drain, if set,
// runs repeatedly while shutting down to end long-lived streams.
func serveHTTP(ln net.Listener, h http.Handler, log *slog.Logger, drain func(context.Context)) func(context.Context) error {
	quiet := &quietConns{m: make(map[net.Conn]struct{})}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState:         quiet.track,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("mock server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return func(ctx context.Context) error {
		done := make(chan error, 1)
		go func() { done <- srv.Shutdown(ctx) }()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			if drain != nil {
				drain(ctx)
			}
			quiet.closeAll()
			select {
			case err := <-done:
				if err != nil {
					return errors.Join(err, srv.Close())
				}
				return nil
			case <-tick.C:
			}
		}
	}
}

// quietConns tracks connections without a request in flight. Shutdown
// closes idle ones itself but waits up to 5s for new ones, which clients
// leave behind when a dial outlives its cancelled request.
type quietConns struct {
	mu sync.Mutex
	m  map[net.Conn]struct{}
}

func (q *quietConns) track(c net.Conn, state http.ConnState) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch state {
	case http.StateNew, http.StateIdle:
		q.m[c] = struct{}{}
	default:
		delete(q.m, c)
	}
}

func (q *quietConns) closeAll() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for c := range q.m {
		_ = c.Close()
		delete(q.m, c)
	}
}
