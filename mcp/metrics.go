package mcp

import (
	"errors"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	calls    *prometheus.CounterVec
	requests *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_mcp_tool_calls_total",
			Help: "MCP tools/call requests by server and outcome (ok, tool_error, upstream_error, cancelled, ended, denied).",
		}, []string{"server", "status"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_mcp_requests_total",
			Help: "MCP prompts/get and resources/read requests forwarded upstream, by server, method and outcome (ok, upstream_error, cancelled, ended).",
		}, []string{"server", "method", "status"}),
	}
	if reg != nil {
		for _, c := range []**prometheus.CounterVec{&m.calls, &m.requests} {
			if err := reg.Register(*c); err != nil {
				var already prometheus.AlreadyRegisteredError
				if !errors.As(err, &already) {
					return nil, err
				}
				*c = already.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	return m, nil
}

func (m *metrics) call(server, status string) {
	m.calls.WithLabelValues(server, status).Inc()
}

func (m *metrics) request(server string, method mcp.MCPMethod, status string) {
	m.requests.WithLabelValues(server, string(method), status).Inc()
}
