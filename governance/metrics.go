package governance

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Label values are resolved once here so the request path never hashes label sets.
type metrics struct {
	authFailures  map[string]prometheus.Counter
	forbidden     [numKinds + 1]prometheus.Counter
	rateLimited   [numKinds + 1]prometheus.Counter
	budgetDenied  [numKinds + 1]prometheus.Counter
	reservations  [numKinds + 1]prometheus.Counter
	spend         [numKinds + 1]prometheus.Counter
	tokens        [numKinds + 1]prometheus.Counter
	inFlight      prometheus.Gauge
	budgetAlerts  *prometheus.CounterVec
	rebuildErrors prometheus.Counter
}

var authFailureReasons = []string{"missing", "invalid", "expired", "disabled"}

func kindMetricIndex(k Kind) int {
	if i := k.index(); i >= 0 {
		return i
	}
	return numKinds
}

func kindLabel(i int) string {
	if i == numKinds {
		return "other"
	}
	return string([numKinds]Kind{KindModel, KindTool, KindAgent}[i])
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	auth := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_governance_auth_failures_total",
		Help: "Requests refused before authorization, by reason.",
	}, []string{"reason"})
	denials := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_governance_denials_total",
		Help: "Authenticated requests denied, by target kind and reason.",
	}, []string{"kind", "reason"})
	reservations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_governance_reservations_total",
		Help: "Requests admitted by Reserve, by target kind.",
	}, []string{"kind"})
	spend := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_governance_spend_nano_usd_total",
		Help: "Settled spend in nano-USD, by target kind.",
	}, []string{"kind"})
	tokens := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_governance_tokens_total",
		Help: "Settled tokens, by target kind.",
	}, []string{"kind"})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "switchboard_governance_in_flight",
		Help: "Reservations not yet settled.",
	})
	alerts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_budget_alerts_total",
		Help: "Budgets crossing 50, 80 or 100 percent of their limit in a period.",
	}, []string{"scope", "threshold"})
	rebuild := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchboard_governance_spend_rebuild_errors_total",
		Help: "Spend queries that failed while rebuilding budgets from storage.",
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{auth, denials, reservations, spend, tokens, inFlight, alerts, rebuild} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("governance metrics (one Governor per registry): %w", err)
			}
		}
	}
	m := &metrics{
		authFailures:  make(map[string]prometheus.Counter, len(authFailureReasons)),
		inFlight:      inFlight,
		budgetAlerts:  alerts,
		rebuildErrors: rebuild,
	}
	for _, r := range authFailureReasons {
		m.authFailures[r] = auth.WithLabelValues(r)
	}
	for i := range numKinds + 1 {
		k := kindLabel(i)
		m.forbidden[i] = denials.WithLabelValues(k, "forbidden")
		m.rateLimited[i] = denials.WithLabelValues(k, "rate_limited")
		m.budgetDenied[i] = denials.WithLabelValues(k, "budget_exceeded")
		m.reservations[i] = reservations.WithLabelValues(k)
		m.spend[i] = spend.WithLabelValues(k)
		m.tokens[i] = tokens.WithLabelValues(k)
	}
	return m, nil
}
