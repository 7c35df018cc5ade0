// Package benchload drives the Go benchmarks that time JSON POSTs through the gateway against the same calls
// straight to a mock: one loop, so every benchmark reports its percentiles and rate the same way.
package benchload

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// Latencies are one run's call latencies, sorted.
type Latencies struct{ sorted []time.Duration }

// P50 is the median latency.
func (l Latencies) P50() time.Duration { return l.sorted[len(l.sorted)/2] }

// P99 is the 99th-percentile latency.
func (l Latencies) P99() time.Duration { return l.sorted[len(l.sorted)*99/100] }

// Empty reports whether no call completed.
func (l Latencies) Empty() bool { return len(l.sorted) == 0 }

// Post sends b.N POSTs of body to url with the bearer key (none when empty), from one client (parallelism 0) or
// parallelism clients per core; any answer but 200 fails the benchmark. It reports p50-µs, p99-µs and req/s
// and returns the latencies.
func Post(b *testing.B, url, key string, body []byte, parallelism int) Latencies {
	client := &fasthttp.Client{MaxConnsPerHost: 512}
	var mu sync.Mutex
	var lat []time.Duration
	// run issues calls until next says stop and keeps their latencies.
	run := func(next func() bool) {
		local := make([]time.Duration, 0, 1024)
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for next() {
			req.Reset()
			SetPost(req, url, key, body)
			t0 := time.Now()
			if err := client.DoTimeout(req, resp, 10*time.Second); err != nil || resp.StatusCode() != http.StatusOK {
				b.Errorf("call failed: %v %d %s", err, resp.StatusCode(), resp.Body())
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if parallelism == 0 {
		n := 0
		run(func() bool { n++; return n <= b.N })
	} else {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) { run(pb.Next) })
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return Latencies{}
	}
	slices.Sort(lat)
	l := Latencies{lat}
	b.ReportMetric(float64(l.P50().Microseconds()), "p50-µs")
	b.ReportMetric(float64(l.P99().Microseconds()), "p99-µs")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	return l
}

// SetPost makes req a JSON POST of body to url, with the bearer key unless it is empty: the call both the Go
// benchmarks and the open-loop probe (loadtest/cmd/openloop) time.
func SetPost(req *fasthttp.Request, url, key string, body []byte) {
	req.SetRequestURI(url)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.SetBodyRaw(body)
}
