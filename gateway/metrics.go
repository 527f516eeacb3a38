package gateway

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stagegate/stagegate/normalize"
)

// metrics are the gateway's Prometheus collectors. It implements
// engine.Observer.
type metrics struct {
	reg         *prometheus.Registry
	received    *prometheus.CounterVec
	duplicate   *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	unavailable *prometheus.CounterVec
	moves       *prometheus.CounterVec
	applied     *prometheus.CounterVec
	lag         prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stagegate_events_received_total", Help: "Events accepted (durable), by connector; duplicates excluded.",
		}, []string{"connector"}),
		duplicate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stagegate_events_duplicate_total", Help: "Events dropped as duplicates, by connector.",
		}, []string{"connector"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stagegate_events_rejected_total", Help: "Inputs refused before becoming events, by connector and reason.",
		}, []string{"connector", "reason"}),
		unavailable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stagegate_intake_unavailable_total", Help: "Events refused because the store was unavailable (answered 503).",
		}, []string{"connector"}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stagegate_moves_total", Help: "Item moves, by pipeline and stage entered.",
		}, []string{"pipeline", "stage"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stagegate_events_applied_total", Help: "Events applied by the engine, by result (matched or unmatched).",
		}, []string{"result"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "stagegate_intake_lag_seconds", Help: "Time from an event's receipt to its application by the engine.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
	}
	m.reg.MustRegister(m.received, m.duplicate, m.rejected, m.unavailable, m.moves, m.applied, m.lag,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Moved implements engine.Observer.
func (m *metrics) Moved(pipeline, _, to string) { m.moves.WithLabelValues(pipeline, to).Inc() }

// Applied implements engine.Observer.
func (m *metrics) Applied(_ *normalize.Event, lag time.Duration, unmatched bool) {
	result := "matched"
	if unmatched {
		result = "unmatched"
	}
	m.applied.WithLabelValues(result).Inc()
	m.lag.Observe(lag.Seconds())
}
