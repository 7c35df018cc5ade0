package a2a

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	calls      *prometheus.CounterVec
	cardErrors *prometheus.CounterVec
}

// newMetrics registers the A2A metrics on reg (nil: unregistered, for tests
// and embedders without Prometheus). Labels stay bounded: agent is a
// configured name ("unknown" otherwise) and method one of the A2A methods
// or "other".
func newMetrics(reg prometheus.Registerer, ownedTasks func() float64) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_a2a_calls_total",
			Help: "A2A JSON-RPC calls by agent, method and outcome (ok, error, denied).",
		}, []string{"agent", "method", "outcome"}),
		cardErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_a2a_card_fetch_errors_total",
			Help: "Failed agent card fetches by agent.",
		}, []string{"agent"}),
	}
	if reg == nil {
		return m, nil
	}
	owned := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "switchboard_a2a_owned_ids",
		Help: "Task and context ids whose owning key the gateway remembers.",
	}, ownedTasks)
	for _, c := range []prometheus.Collector{m.calls, m.cardErrors, owned} {
		if err := reg.Register(c); err != nil {
			return nil, errors.Join(errors.New("a2a: registering metrics"), err)
		}
	}
	return m, nil
}
