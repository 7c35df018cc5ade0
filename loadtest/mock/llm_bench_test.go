package mock

import (
	"testing"

	"github.com/valyala/fasthttp"
)

// BenchmarkLLM measures the mock alone, so benchmarks that put the gateway
// in front of it can tell whether the mock is the bottleneck.
func BenchmarkLLM(b *testing.B) {
	s, err := StartLLM("127.0.0.1:0", LLMOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cases := []struct {
		name, path, body string
	}{
		{"chat", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"the quick brown fox jumps over the lazy dog"}]}`},
		{"chat-stream", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"the quick brown fox jumps over the lazy dog"}]}`},
		{"embeddings", "/v1/embeddings", `{"model":"text-embedding-3-small","input":"the quick brown fox"}`},
	}
	client := &fasthttp.Client{MaxConnsPerHost: 256}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
				defer fasthttp.ReleaseRequest(req)
				defer fasthttp.ReleaseResponse(resp)
				for pb.Next() {
					req.SetRequestURI(s.URL + c.path)
					req.Header.SetMethod(fasthttp.MethodPost)
					req.Header.SetContentType("application/json")
					req.SetBodyString(c.body)
					if err := client.Do(req, resp); err != nil {
						b.Fatal(err)
					}
					if resp.StatusCode() != fasthttp.StatusOK {
						b.Fatalf("status %d: %s", resp.StatusCode(), resp.Body())
					}
				}
			})
		})
	}
}
