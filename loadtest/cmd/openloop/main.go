// Command openloop sends POSTs at a fixed rate and reports their latency percentiles:
//
//	openloop --url http://127.0.0.1:8080/v1/chat/completions --key sk-... --rate 1000 --duration 10s \
//	         [--body '{"model":"m",...}'] [--header 'Name: value']... [--ttfb] \
//	         [--init-body '{"jsonrpc":"2.0","id":0,"method":"initialize",...}' [--init-url URL]] \
//	         [--json out.json] [--phase 1s]
//
// It is the benchmark's low-noise probe. k6 runs a JavaScript VU per request and takes about half a core at
// 1,000 requests/s; on a 2-core machine that CPU competes with the proxies it measures and its own p99 swamps
// theirs. openloop costs a small fraction of that. Calls start on a fixed schedule whatever the answers do (an
// open model), and each latency counts from the call's scheduled start, so a stall delays the calls behind it
// instead of hiding them. --phase histograms the calls slower than 3 ms by their start time modulo the given
// period: a periodic stall (a batch write every second, say) shows up as one crowded bucket.
//
// --workers N measures throughput instead: N workers each send the next call as soon as the last one answered
// (a closed model), for --duration, and the summary's rps is the calls answered per second. With enough workers to
// keep the target busy, that is its maximum: what the benchmark's saturation table reports. k6 cannot find it on a
// small machine, because its own CPU runs out first.
//
// --ttfb ends a call's latency at the first byte of the answer's body instead of its end: for SSE streams, whose
// length is the upstream's pacing, not the proxy's cost. The rest of the body is still read and checked.
//
// --init-body opens one MCP 2025-11-25 session before the timed calls, the way loadtest/k6/mcp.js does: it POSTs
// the initialize request, then notifications/initialized (both to --init-url, default --url, with the key and
// every --header), and sends the Mcp-Session-Id the server answered with on every call. All calls share that one
// session, where k6 opens one per VU; they still go out in parallel, on as many connections as they need.
//
// A call fails on a transport error, an answer other than 200, or a 200 answer that carries a JSON-RPC error
// (an "error" member at the top level of the JSON body or of any SSE data event) or an MCP tool result with
// isError set, so a gateway that refuses MCP or A2A calls in protocol terms does not look fast.
package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/switchboard-gw/switchboard/loadtest/benchload"
)

const defaultBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}`

// initialized is the notification mcp.js sends once the initialize answer is in.
const initialized = `{"jsonrpc":"2.0","method":"notifications/initialized"}`

const sessionHeader = "Mcp-Session-Id"

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "openloop:", err)
		os.Exit(2)
	}
}

// summary is what --json writes; latencies are in ms.
type summary struct {
	Rate   int     `json:"rate"`
	RPS    float64 `json:"rps"` // calls answered per second of the run
	Calls  int     `json:"calls"`
	Errors int     `json:"errors"`
	P50    float64 `json:"p50"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	P999   float64 `json:"p999"`
	Max    float64 `json:"max"`
}

// target is what every call sends and how its latency ends.
type target struct {
	url, key string
	body     []byte
	headers  [][2]string
	ttfb     bool
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("openloop", flag.ContinueOnError)
	var t target
	fs.StringVar(&t.url, "url", "", "URL to POST to (required)")
	fs.StringVar(&t.key, "key", "", "bearer key (none when empty)")
	body := fs.String("body", defaultBody, "JSON body of every call")
	fs.Func("header", "extra request header 'Name: value' (repeatable)", func(s string) error {
		name, value, ok := strings.Cut(s, ":")
		if name = strings.TrimSpace(name); !ok || name == "" {
			return fmt.Errorf("%q is not 'Name: value'", s)
		}
		t.headers = append(t.headers, [2]string{name, strings.TrimSpace(value)})
		return nil
	})
	fs.BoolVar(&t.ttfb, "ttfb", false, "latency ends at the answer's first body byte (for SSE streams)")
	initBody := fs.String("init-body", "", "MCP initialize request to open the session all calls share")
	initURL := fs.String("init-url", "", "URL of the initialize request (default --url)")
	rate := fs.Int("rate", 1000, "calls per second")
	duration := fs.Duration("duration", 10*time.Second, "how long calls are started")
	jsonOut := fs.String("json", "", "also write the summary as JSON to this file")
	phase := fs.Duration("phase", 0, "histogram calls slower than 3 ms by start time modulo this period")
	workers := fs.Int("workers", 0, "closed loop: this many workers send back to back, --rate is ignored")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if t.url == "" || *rate <= 0 || *duration <= 0 || *phase < 0 || *workers < 0 {
		return errors.New("--url is required; --rate and --duration must be positive, --workers not negative")
	}
	if *initURL != "" && *initBody == "" {
		return errors.New("--init-url needs --init-body")
	}
	t.body = []byte(*body)
	client := &fasthttp.Client{MaxConnsPerHost: 4096, NoDefaultUserAgentHeader: true}
	if *initBody != "" {
		id, err := openSession(client, t, cmp.Or(*initURL, t.url), []byte(*initBody))
		if err != nil {
			return err
		}
		t.headers = append(t.headers, [2]string{sessionHeader, id})
	}
	var res *result
	if *workers > 0 {
		res = closedLoop(client, t, *workers, *duration)
		*rate = 0
	} else {
		res = probe(client, t, *rate, *duration)
	}
	s := res.summary(*rate)
	fmt.Fprintf(stdout, "calls %d (%.0f/s), errors %d, p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f ms\n",
		s.Calls, s.RPS, s.Errors, s.P50, s.P90, s.P99, s.P999, s.Max)
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

// prepare makes req a POST of body to url with t's key and headers.
func prepare(req *fasthttp.Request, t target, url string, body []byte) {
	benchload.SetPost(req, url, t.key, body)
	for _, h := range t.headers {
		req.Header.Set(h[0], h[1])
	}
}

// openSession initializes an MCP session at url and returns its Mcp-Session-Id.
func openSession(client *fasthttp.Client, t target, url string, initBody []byte) (string, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	prepare(req, t, url, initBody)
	if err := client.DoTimeout(req, resp, 10*time.Second); err != nil {
		return "", fmt.Errorf("initialize: %w", err)
	}
	if err := answerError(resp.StatusCode(), resp.Header.ContentType(), resp.Body()); err != nil {
		return "", fmt.Errorf("initialize: %w", err)
	}
	id := string(resp.Header.Peek(sessionHeader))
	if id == "" {
		return "", fmt.Errorf("initialize: the answer has no %s header", sessionHeader)
	}
	req.Reset()
	resp.Reset()
	prepare(req, t, url, []byte(initialized))
	req.Header.Set(sessionHeader, id)
	if err := client.DoTimeout(req, resp, 10*time.Second); err != nil {
		return "", fmt.Errorf("notifications/initialized: %w", err)
	}
	if c := resp.StatusCode(); c != fasthttp.StatusAccepted && c != fasthttp.StatusOK {
		return "", fmt.Errorf("notifications/initialized: HTTP %d: %.200s", c, resp.Body())
	}
	return id, nil
}

// result holds every call's scheduled start (from the first) and latency.
type result struct {
	start, latency []time.Duration
	elapsed        time.Duration // from the first call's start to the last answer
	errors         int
	firstErr       string
}

// fail counts a failed call; the caller holds the lock that guards r.
func (r *result) fail(err error) {
	if r.errors++; r.errors == 1 {
		r.firstErr = err.Error()
	}
}

// closedLoop runs workers that each send the next call when the last one answered, until duration has passed.
func closedLoop(client *fasthttp.Client, t target, workers int, duration time.Duration) *result {
	res := &result{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	t0 := time.Now()
	end := t0.Add(duration)
	for range workers {
		wg.Go(func() {
			var start, latency []time.Duration
			var errs []error
			for now := time.Now(); now.Before(end); now = time.Now() {
				l, err := call(client, t, now)
				start, latency = append(start, now.Sub(t0)), append(latency, l)
				if err != nil {
					errs = append(errs, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.start, res.latency = append(res.start, start...), append(res.latency, latency...)
			for _, err := range errs {
				res.fail(err)
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(t0)
	return res
}

func probe(client *fasthttp.Client, t target, rate int, duration time.Duration) *result {
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
			latency, err := call(client, t, at)
			res.start[i], res.latency[i] = at.Sub(t0), latency
			if err != nil {
				mu.Lock()
				res.fail(err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(t0)
	return res
}

// call sends one request scheduled at at and returns its latency from then: to the end of the answer, or to
// its first body byte with t.ttfb.
func call(client *fasthttp.Client, t target, at time.Time) (time.Duration, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	prepare(req, t, t.url, t.body)
	resp.StreamBody = t.ttfb
	if err := client.DoTimeout(req, resp, 30*time.Second); err != nil {
		return time.Since(at), err
	}
	if !t.ttfb {
		latency := time.Since(at)
		return latency, answerError(resp.StatusCode(), resp.Header.ContentType(), resp.Body())
	}
	stream := resp.BodyStream()
	if stream == nil {
		// No body to stream (a 204, say): the answer ended with its headers.
		return time.Since(at), answerError(resp.StatusCode(), resp.Header.ContentType(), resp.Body())
	}
	first, body, err := readTimed(stream)
	if cerr := resp.CloseBodyStream(); err == nil {
		err = cerr
	}
	if first.IsZero() {
		first = time.Now()
	}
	if err != nil {
		return first.Sub(at), fmt.Errorf("reading the answer: %w", err)
	}
	return first.Sub(at), answerError(resp.StatusCode(), resp.Header.ContentType(), body)
}

// readTimed reads r to its end and reports when its first byte arrived (zero if none did).
func readTimed(r io.Reader) (first time.Time, body []byte, err error) {
	var chunk [4096]byte
	for {
		n, err := r.Read(chunk[:])
		if n > 0 {
			if first.IsZero() {
				first = time.Now()
			}
			body = append(body, chunk[:n]...)
		}
		if errors.Is(err, io.EOF) {
			return first, body, nil
		}
		if err != nil {
			return first, body, err
		}
	}
}

// answerError is why an answer counts as failed, or nil.
func answerError(status int, contentType, body []byte) error {
	if status != fasthttp.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", status, body)
	}
	// Most answers mention neither word, so the hot path is two scans and no parse.
	if !bytes.Contains(body, []byte(`"error"`)) && !bytes.Contains(body, []byte(`"isError"`)) {
		return nil
	}
	if !bytes.HasPrefix(contentType, []byte("text/event-stream")) {
		return rpcError(body)
	}
	for data := range sseData(body) {
		if err := rpcError(data); err != nil {
			return err
		}
	}
	return nil
}

// rpcError reports a JSON-RPC error or an MCP tool error in one JSON message. Anything that is not a JSON
// object (an SSE "[DONE]", say) is not a JSON-RPC answer and passes.
func rpcError(msg []byte) error {
	var m struct {
		Error  json.RawMessage `json:"error"`
		Result json.RawMessage `json:"result"`
	}
	if json.Unmarshal(msg, &m) != nil {
		return nil
	}
	if len(m.Error) > 0 && !bytes.Equal(m.Error, []byte("null")) {
		return fmt.Errorf("JSON-RPC error: %.200s", m.Error)
	}
	var r struct {
		IsError bool `json:"isError"`
	}
	if json.Unmarshal(m.Result, &r) == nil && r.IsError {
		return fmt.Errorf("tool result isError: %.200s", m.Result)
	}
	return nil
}

// sseData yields the data of each event of an SSE body, its data lines joined by newlines as the spec says.
func sseData(body []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		var data []byte
		inEvent := false
		for line := range bytes.Lines(body) {
			line = bytes.TrimRight(line, "\r\n")
			if len(line) == 0 {
				if inEvent && !yield(data) {
					return
				}
				data, inEvent = nil, false
				continue
			}
			v, ok := bytes.CutPrefix(line, []byte("data:"))
			if !ok {
				continue
			}
			if inEvent {
				data = append(data, '\n')
			}
			data, inEvent = append(data, bytes.TrimPrefix(v, []byte(" "))...), true
		}
		if inEvent {
			yield(data)
		}
	}
}

func (r *result) summary(rate int) summary {
	sorted := slices.Clone(r.latency)
	slices.Sort(sorted)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	q := func(f float64) float64 { return ms(sorted[min(len(sorted)-1, int(float64(len(sorted))*f))]) }
	s := summary{Rate: rate, Calls: len(sorted), Errors: r.errors}
	if r.elapsed > 0 {
		s.RPS = float64(len(sorted)) / r.elapsed.Seconds()
	}
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
