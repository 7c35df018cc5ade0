package mcp

import (
	"slices"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// BenchmarkToolCallOverhead measures tools/call latency direct to the mock
// upstream and through the gateway in one run, alternating the two so both
// see the same machine load, and reports p50/p99 of each and the difference,
// for each protocol version (allocs/op count client, gateway and mock alike).
func BenchmarkToolCallOverhead(b *testing.B) {
	e := start(b, nil)
	for _, proto := range protocols {
		b.Run(proto.name, func(b *testing.B) { benchToolCall(b, e, proto.version) })
	}
}

func benchToolCall(b *testing.B, e *env, version string) {
	ctx := ctxT(b)
	via := e.connect(b, "/mcp", keyAll, version)
	tr, err := transport.NewStreamableHTTP(e.weather.URL + "/mcp")
	if err != nil {
		b.Fatal(err)
	}
	direct := client.NewClient(tr, client.WithProtocolVersion(version))
	if err := direct.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = direct.Close() })
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = version
	if _, err := direct.Initialize(ctx, init); err != nil {
		b.Fatal(err)
	}
	args := map[string]any{"a": 1, "b": 2}
	var dLat, gLat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if res, err := callTool(ctx, direct, "add", args); err != nil || res.IsError {
			b.Fatalf("direct: %v", err)
		}
		t1 := time.Now()
		if res, err := callTool(ctx, via, "weather__add", args); err != nil || res.IsError {
			b.Fatalf("gateway: %v", err)
		}
		t2 := time.Now()
		dLat = append(dLat, t1.Sub(t0))
		gLat = append(gLat, t2.Sub(t1))
	}
	b.StopTimer()
	dp50, dp99 := percentiles(dLat)
	gp50, gp99 := percentiles(gLat)
	b.ReportMetric(float64(dp50.Microseconds()), "direct-p50-µs")
	b.ReportMetric(float64(dp99.Microseconds()), "direct-p99-µs")
	b.ReportMetric(float64(gp50.Microseconds()), "gateway-p50-µs")
	b.ReportMetric(float64(gp99.Microseconds()), "gateway-p99-µs")
	b.ReportMetric(float64((gp50 - dp50).Microseconds()), "added-p50-µs")
	b.ReportMetric(float64((gp99 - dp99).Microseconds()), "added-p99-µs")
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)*50/100], s[min(len(s)-1, len(s)*99/100)]
}
