// Command httpproxy is a benchmark floor, not a product: a bare net/http/httputil.ReverseProxy to one
// upstream, the reference point most Go gateways start from.
//
//	httpproxy --listen 127.0.0.1:0 --upstream http://127.0.0.1:19101
//
// It prints its URL on stdout and serves until SIGINT or SIGTERM.
package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/switchboard-gw/switchboard/loadtest/floor"
)

func main() {
	floor.Main("httpproxy", func(target *url.URL) floor.Server {
		srv := &http.Server{Handler: newHandler(target), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
		return floor.Server{Serve: srv.Serve, Shutdown: srv.Shutdown}
	})
}

// newHandler is the proxy: every method and path goes to target + the request path.
func newHandler(target *url.URL) http.Handler {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// The default of 2 idle connections per host makes every burst dial anew.
	transport.MaxIdleConnsPerHost = 1024
	transport.MaxIdleConns = 1024
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport: transport,
		// Flush every write so SSE reaches the client as it arrives.
		FlushInterval: -1,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Without full duplex, net/http may close the request body while the reply still streams
		// (golang/go#40747); reading the body first keeps the upstream request independent of it.
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		proxy.ServeHTTP(w, r)
	})
}
