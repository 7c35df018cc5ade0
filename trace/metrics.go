package trace

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	collectors   []prometheus.Collector
	writeSeconds prometheus.Histogram
	writeErrors  prometheus.Counter
}

func newMetrics(r *Recorder) *metrics {
	counter := func(name, help string, v func() int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchboard_trace_" + name, Help: help},
			func() float64 { return float64(v()) })
	}
	m := &metrics{
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_trace_write_duration_seconds",
			Help:    "Latency of one span batch write to the store.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchboard_trace_write_errors_total", Help: "Span batch writes that failed.",
		}),
	}
	m.collectors = []prometheus.Collector{
		counter("spans_recorded_total", "Spans handed to the recorder.", r.recorded.Load),
		counter("spans_written_total", "Spans the store accepted, replayed ones included.", r.written.Load),
		counter("spans_spilled_total", "Spans written to the on-disk spill.", r.spilled.Load),
		counter("spans_replayed_total", "Spilled spans later written to the store.", r.replayed.Load),
		counter("spans_dropped_total", "Spans lost because the spill could not be written; should stay 0.", r.dropped.Load),
		counter("spill_corrupt_records_total", "Spill records skipped as corrupt.", r.spill.corruptRecords),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchboard_trace_queue_depth", Help: "Spans waiting in memory."},
			func() float64 { return float64(r.queued()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchboard_trace_spill_bytes", Help: "Bytes of spans waiting in the spill."},
			func() float64 { return float64(r.spill.bytes()) }),
		m.writeSeconds, m.writeErrors,
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	var errs []error
	for _, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
