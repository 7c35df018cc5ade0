// Package floor holds what the benchmark's bare proxies share: their command line and life cycle. The proxies
// themselves (fiberproxy, httpproxy) differ only in the stack they forward with.
package floor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Server is one proxy's way to serve a listener and to stop.
type Server struct {
	Serve    func(net.Listener) error
	Shutdown func(context.Context) error
}

// Main parses --listen and --upstream, builds the proxy for the upstream, prints its URL on stdout and serves
// until SIGINT or SIGTERM; it exits 2 on any error.
func Main(name string, build func(upstream *url.URL) Server) {
	if err := run(build); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(2)
	}
}

func run(build func(upstream *url.URL) Server) error {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "upstream base URL (scheme://host:port[/prefix]); the request URI is appended")
	flag.Parse()
	u, err := url.Parse(*upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--upstream must be an http(s) URL, got %q", *upstream)
	}
	srv := build(u)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println("http://" + ln.Addr().String())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
