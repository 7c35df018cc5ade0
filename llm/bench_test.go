package llm

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-gw/switchboard/loadtest/benchload"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

// BenchmarkChatOverhead measures non-streamed chat against the zero-latency
// mock directly and through the gateway, in one run, so the difference is
// the gateway's cost: compare the p50/p99 and req/s metrics of the two.
//
//	go test -run '^$' -bench ChatOverhead -benchtime 20000x ./llm/
//
// Latencies are in µs; the client runs in the same process.
func BenchmarkChatOverhead(b *testing.B) {
	m, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close() })
	h := newHarness(b, oneModel("gpt-4o-mini", openaiDep(m, "gpt-4o-mini")))
	h.sink.mu.Lock()
	h.sink.discard = true
	h.sink.mu.Unlock()
	body := []byte(`{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"hello there, how are you today?"}]}`)
	// serial: one client, the added latency without queueing; parallel: 8
	// clients per core, the maximum rate (client, gateway and mock share the
	// machine's cores).
	for _, mode := range []struct {
		name        string
		parallelism int
	}{{"serial", 0}, {"parallel", 8}} {
		for _, target := range []struct{ name, url, key string }{
			{"direct", m.URL + "/v1/chat/completions", ""},
			{"gateway", h.url + "/v1/chat/completions", keyAll},
		} {
			b.Run(mode.name+"/"+target.name, func(b *testing.B) {
				benchload.Post(b, target.url, target.key, body, mode.parallelism)
			})
		}
	}
}

// BenchmarkStreamTTFB measures the time to the first body byte of a streamed
// chat, directly and through the gateway, against a mock pacing its events
// 20 ms apart: a gateway that buffered anything past the first event would
// show a first byte 20 ms or more later than direct.
//
//	go test -run '^$' -bench StreamTTFB -benchtime 300x ./llm/
func BenchmarkStreamTTFB(b *testing.B) {
	m, err := mock.StartLLM("127.0.0.1:0", mock.LLMOptions{TokensPerSecond: 50})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close() })
	h := newHarness(b, oneModel("gpt-4o-mini", openaiDep(m, "gpt-4o-mini")))
	h.sink.mu.Lock()
	h.sink.discard = true
	h.sink.mu.Unlock()
	body := `{"model":"gpt-4o-mini","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"one two three"}]}`
	for _, target := range []struct{ name, url, key string }{
		{"direct", m.URL + "/v1/chat/completions", ""},
		{"gateway", h.url + "/v1/chat/completions", keyAll},
	} {
		b.Run(target.name, func(b *testing.B) {
			client := &http.Client{Timeout: 10 * time.Second}
			ttfb := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			for b.Loop() {
				req, err := http.NewRequest(http.MethodPost, target.url, strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				if target.key != "" {
					req.Header.Set("Authorization", "Bearer "+target.key)
				}
				t0 := time.Now()
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				var first [1]byte
				if _, err := io.ReadFull(res.Body, first[:]); err != nil || res.StatusCode != http.StatusOK {
					b.Fatalf("status %d: %v", res.StatusCode, err)
				}
				ttfb = append(ttfb, time.Since(t0))
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
			}
			slices.Sort(ttfb)
			b.ReportMetric(float64(ttfb[len(ttfb)/2].Microseconds()), "ttfb-p50-µs")
			b.ReportMetric(float64(ttfb[len(ttfb)*99/100].Microseconds()), "ttfb-p99-µs")
		})
	}
}
