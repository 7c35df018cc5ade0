package a2a_test

import (
	"context"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"

	sba2a "github.com/switchboard-gw/switchboard/a2a"
	"github.com/switchboard-gw/switchboard/loadtest/mock"
)

// BenchmarkSendLatencyAddedByGateway measures a non-streaming SendMessage to
// the same mock agent directly and through the gateway, alternating the two
// in one run, and reports both latency distributions and the difference of
// their p50 and p99 (what the gateway adds: auth, ACL, reserve, span,
// ownership, one more loopback hop). allocs/op count client, gateway and
// mock alike; gateway-allocs/call is the difference between a call through
// the gateway and a direct one, counted after the timed loop.
func BenchmarkSendLatencyAddedByGateway(b *testing.B) {
	echo := startMockAgent(b, mock.A2AOptions{})
	h := startGateway(b, sba2a.Config{Agents: []sba2a.AgentConfig{{Name: "echo", CardURL: cardURL(echo), CostPerCallUSD: "0.001"}}})
	ctx := context.Background()
	card, err := agentcard.DefaultResolver.Resolve(ctx, echo.URL)
	if err != nil {
		b.Fatal(err)
	}
	direct, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithDefaultsDisabled(), a2aclient.WithJSONRPCTransport(&http.Client{}))
	if err != nil {
		b.Fatal(err)
	}
	via := h.client(keyAlice, "echo", a2a.Version)
	send := func(c *a2aclient.Client) time.Duration {
		start := time.Now()
		if _, err := c.SendMessage(ctx, textMessage("bench")); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	b.ReportAllocs()
	for range 200 { // warm connections and pools
		send(direct)
		send(via)
	}
	var directLat, viaLat []time.Duration
	for b.Loop() {
		directLat = append(directLat, send(direct))
		viaLat = append(viaLat, send(via))
	}
	b.StopTimer()
	allocs := func(c *a2aclient.Client) float64 {
		const n = 200
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			send(c)
		}
		runtime.ReadMemStats(&after)
		return float64(after.Mallocs-before.Mallocs) / n
	}
	b.ReportMetric(allocs(via)-allocs(direct), "gateway-allocs/call")
	slices.Sort(directLat)
	slices.Sort(viaLat)
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[int(p*float64(len(d)-1))].Microseconds())
	}
	b.ReportMetric(pct(directLat, 0.50), "direct-p50-µs")
	b.ReportMetric(pct(directLat, 0.99), "direct-p99-µs")
	b.ReportMetric(pct(viaLat, 0.50), "gateway-p50-µs")
	b.ReportMetric(pct(viaLat, 0.99), "gateway-p99-µs")
	b.ReportMetric(pct(viaLat, 0.50)-pct(directLat, 0.50), "added-p50-µs")
	b.ReportMetric(pct(viaLat, 0.99)-pct(directLat, 0.99), "added-p99-µs")
}
