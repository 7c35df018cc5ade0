// Command fiberproxy is a benchmark floor, not a product: the barest fiber + fasthttp proxy that forwards
// every request's raw bytes to one upstream, so the benchmark can show what a proxy hop on Switchboard's own
// stack costs before any governance, routing or tracing.
//
//	fiberproxy --listen 127.0.0.1:0 --upstream http://127.0.0.1:19101
//
// It prints its URL on stdout and serves until SIGINT or SIGTERM.
package main

import (
	"bufio"
	"bytes"
	"net/url"
	"strings"
	"time"

	"github.com/switchboard-gw/switchboard/loadtest/floor"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

func main() {
	floor.Main("fiberproxy", func(u *url.URL) floor.Server {
		app := newApp(strings.TrimRight(u.String(), "/"))
		return floor.Server{Serve: app.Listener, Shutdown: app.ShutdownWithContext}
	})
}

// newApp is the proxy: every method and path goes to base + the request URI.
func newApp(base string) *fiber.App {
	client := &fasthttp.Client{
		// The defaults (512 connections, fail at once when all are busy) would turn a saturation run into
		// errors instead of queueing.
		MaxConnsPerHost:               4096,
		MaxConnWaitTimeout:            10 * time.Second,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
	}
	app := fiber.New(fiber.Config{
		DisableStartupMessage: true,
		BodyLimit:             8 << 20,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           120 * time.Second,
	})
	app.All("/*", func(c *fiber.Ctx) error { return forward(c, client, base) })
	return app
}

// hopByHop are the headers a proxy must not forward (RFC 9110 section 7.6.1), plus those fasthttp computes
// itself and Accept-Encoding, which would make the upstream compress what the floor passes through.
var hopByHop = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "proxy-authenticate": true,
	"proxy-authorization": true, "te": true, "trailer": true, "transfer-encoding": true, "upgrade": true,
	"host": true, "content-length": true, "accept-encoding": true,
}

// streamMarker is how the floor tells an SSE chat request from a JSON one without parsing the body; k6's
// JSON.stringify writes no spaces. The gateway parses the field properly.
var streamMarker = []byte(`"stream":true`)

func forward(c *fiber.Ctx, client *fasthttp.Client, base string) error {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	req.SetRequestURI(base + string(c.Request().RequestURI()))
	req.Header.SetMethodBytes(c.Request().Header.Method())
	for k, v := range c.Request().Header.All() {
		if !hopByHop[strings.ToLower(string(k))] {
			req.Header.SetBytesKV(k, v)
		}
	}
	body := c.BodyRaw()
	req.SetBodyRaw(body)
	stream := bytes.Contains(body, streamMarker)
	resp.StreamBody = stream

	err := client.Do(req, resp)
	fasthttp.ReleaseRequest(req)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		return c.Status(fiber.StatusBadGateway).SendString("upstream: " + err.Error())
	}
	c.Status(resp.StatusCode())
	for k, v := range resp.Header.All() {
		if !hopByHop[strings.ToLower(string(k))] {
			c.Response().Header.SetBytesKV(k, v)
		}
	}
	if !stream {
		c.Response().SetBody(resp.Body())
		fasthttp.ReleaseResponse(resp)
		return nil
	}
	c.Response().ImmediateHeaderFlush = true
	up := resp.BodyStream()
	// The writer runs after the handler returned, on its own goroutine: it must not touch c.
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		buf := make([]byte, 32<<10)
		var cause error
		for {
			n, rerr := up.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					cause = werr
					break
				}
				if werr := w.Flush(); werr != nil {
					cause = werr
					break
				}
			}
			if rerr != nil {
				break
			}
		}
		// Closing before release keeps the pooled connection honest; releasing first empties the reply.
		if closer, ok := up.(fasthttp.ReadCloserWithError); ok {
			_ = closer.CloseWithError(cause)
		}
		fasthttp.ReleaseResponse(resp)
	})
	return nil
}
