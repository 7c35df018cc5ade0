package main

import (
	"net"
	"testing"

	"github.com/switchboard-gw/switchboard/loadtest/floor/floortest"
)

func TestFiberProxyForwardsRequestsAndStreams(t *testing.T) {
	t.Parallel()
	app := newApp(floortest.Upstream(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	floortest.Check(t, "http://"+ln.Addr().String())
}
