package mcp

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	calls *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_mcp_tool_calls_total",
			Help: "MCP tools/call requests by server and outcome (ok, tool_error, upstream_error, cancelled, ended, denied).",
		}, []string{"server", "status"}),
	}
	if reg != nil {
		if err := reg.Register(m.calls); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return nil, err
			}
			m.calls = already.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return m, nil
}

func (m *metrics) call(server, status string) {
	m.calls.WithLabelValues(server, status).Inc()
}
