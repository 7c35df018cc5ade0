package main

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/switchboard-gw/switchboard/loadtest/floor/floortest"
)

func TestHTTPProxyForwardsRequestsAndStreams(t *testing.T) {
	t.Parallel()
	target, err := url.Parse(floortest.Upstream(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(newHandler(target))
	t.Cleanup(proxy.Close)
	floortest.Check(t, proxy.URL)
}
