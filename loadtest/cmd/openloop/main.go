// Command openloop sends JSON POSTs at a fixed rate and reports their latency percentiles:
//
//	openloop --url http://127.0.0.1:8080/v1/chat/completions --key sk-... --rate 1000 --duration 10s \
//	         [--body '{"model":"m",...}'] [--json out.json] [--phase 1s]
//
// It is the benchmark's low-noise probe. k6 runs a JavaScript VU per request and takes about half a core at
// 1,000 requests/s; on a 2-core machine that CPU competes with the proxies it measures and its own p99 swamps
// theirs. openloop costs a small fraction of that. Calls start on a fixed schedule whatever the answers do (an
// open model), and each latency counts from the call's scheduled start, so a stall delays the calls behind it
// instead of hiding them. --phase histograms the calls slower than 3 ms by their start time modulo the given
// period: a periodic stall (a batch write every second, say) shows up as one crowded bucket.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/switchboard-gw/switchboard/loadtest/benchload"
)

const defaultBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}`

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "openloop:", err)
		os.Exit(2)
	}
}

// summary is what --json writes; latencies are in ms.
type summary struct {
	Rate   int     `json:"rate"`
	Calls  int     `json:"calls"`
	Errors int     `json:"errors"`
	P50    float64 `json:"p50"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	P999   float64 `json:"p999"`
	Max    float64 `json:"max"`
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("openloop", flag.ContinueOnError)
	url := fs.String("url", "", "URL to POST to (required)")
	key := fs.String("key", "", "bearer key (none when empty)")
	body := fs.String("body", defaultBody, "JSON body of every call")
	rate := fs.Int("rate", 1000, "calls per second")
	duration := fs.Duration("duration", 10*time.Second, "how long calls are started")
	jsonOut := fs.String("json", "", "also write the summary as JSON to this file")
	phase := fs.Duration("phase", 0, "histogram calls slower than 3 ms by start time modulo this period")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" || *rate <= 0 || *duration <= 0 || *phase < 0 {
		return errors.New("--url is required; --rate and --duration must be positive")
	}
	res := probe(*url, *key, []byte(*body), *rate, *duration)
	s := res.summary(*rate)
	fmt.Fprintf(stdout, "calls %d (%d/s), errors %d, p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f ms\n",
		s.Calls, s.Rate, s.Errors, s.P50, s.P90, s.P99, s.P999, s.Max)
	if *phase > 0 {
		fmt.Fprintf(stdout, "calls over 3 ms by start time modulo %s, in 20 buckets: %v\n", *phase, res.slowByPhase(*phase, 3*time.Millisecond))
	}
	if *jsonOut != "" {
		b, _ := json.Marshal(s)
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if s.Errors > 0 {
		return fmt.Errorf("%d of %d calls failed (first: %s)", s.Errors, s.Calls, res.firstErr)
	}
	return nil
}

// result holds every call's scheduled start (from the first) and latency.
type result struct {
	start, latency []time.Duration
	errors         int
	firstErr       string
}

func probe(url, key string, body []byte, rate int, duration time.Duration) *result {
	client := &fasthttp.Client{MaxConnsPerHost: 4096, NoDefaultUserAgentHeader: true}
	n := int(duration.Seconds() * float64(rate))
	res := &result{start: make([]time.Duration, n), latency: make([]time.Duration, n)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	t0 := time.Now()
	for i := range n {
		at := t0.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			benchload.SetPost(req, url, key, body)
			err := client.DoTimeout(req, resp, 30*time.Second)
			res.start[i], res.latency[i] = at.Sub(t0), time.Since(at)
			if err == nil && resp.StatusCode() != fasthttp.StatusOK {
				err = fmt.Errorf("HTTP %d: %.200s", resp.StatusCode(), resp.Body())
			}
			if err != nil {
				mu.Lock()
				if res.errors++; res.errors == 1 {
					res.firstErr = err.Error()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res
}

func (r *result) summary(rate int) summary {
	sorted := slices.Clone(r.latency)
	slices.Sort(sorted)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	q := func(f float64) float64 { return ms(sorted[min(len(sorted)-1, int(float64(len(sorted))*f))]) }
	s := summary{Rate: rate, Calls: len(sorted), Errors: r.errors}
	if len(sorted) > 0 {
		s.P50, s.P90, s.P99, s.P999, s.Max = q(0.5), q(0.9), q(0.99), q(0.999), ms(sorted[len(sorted)-1])
	}
	return s
}

func (r *result) slowByPhase(period, slow time.Duration) [20]int {
	var buckets [20]int
	for i, l := range r.latency {
		if l > slow {
			buckets[int(r.start[i]%period*20/period)]++
		}
	}
	return buckets
}
