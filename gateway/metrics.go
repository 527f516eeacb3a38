package gateway

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stagegate/stagegate/engine"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
)

// metrics are the gateway's Prometheus collectors. It implements
// engine.Observer and engine.ActionObserver.
type metrics struct {
	reg         *prometheus.Registry
	received    *prometheus.CounterVec
	duplicate   *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	unavailable *prometheus.CounterVec
	moves       *prometheus.CounterVec
	applied     *prometheus.CounterVec
	lag         prometheus.Histogram
	batch       prometheus.Histogram
	actions     *prometheus.CounterVec
	attempt     *prometheus.HistogramVec
	delivery    *prometheus.HistogramVec
	// unauthorized counts API requests refused for their bearer token.
	unauthorized *prometheus.CounterVec
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
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "stagegate_engine_batch_size", Help: "Log entries the engine applied together in one batch (one store write).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stagegate_actions_total",
			Help: "Action attempts, by type and result: ok, retry (failed, will be retried), failed (for good), skipped.",
		}, []string{"type", "result"}),
		attempt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stagegate_action_attempt_seconds", Help: "Duration of one action attempt, by type.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"type"}),
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stagegate_action_delivery_seconds", Help: "Time from a stage entry to its action's success, by type.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 20),
		}, []string{"type"}),
		unauthorized: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stagegate_http_unauthorized_total",
			Help: "API requests answered 401 (no, malformed or unknown bearer token), by route pattern; \"other\" for a path without a route.",
		}, []string{"route"}),
	}
	m.reg.MustRegister(m.unauthorized, m.received, m.duplicate, m.rejected, m.unavailable, m.moves, m.applied, m.lag, m.batch,
		m.actions, m.attempt, m.delivery,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Moved implements engine.Observer.
func (m *metrics) Moved(pipeline, _, to string) { m.moves.WithLabelValues(pipeline, to).Inc() }

// Applied implements engine.Observer.
func (m *metrics) Applied(_ *normalize.Event, lag time.Duration, res engine.Result) {
	result := "matched"
	if res.Unmatched {
		result = "unmatched"
	}
	m.applied.WithLabelValues(result).Inc()
	m.lag.Observe(lag.Seconds())
}

// Batch implements engine.Observer.
func (m *metrics) Batch(size int) { m.batch.Observe(float64(size)) }

// ActionRan implements engine.ActionObserver.
func (m *metrics) ActionRan(typ, result string, took, sinceEntry time.Duration) {
	m.actions.WithLabelValues(typ, result).Inc()
	if result == engine.ActionSkipped && took == 0 {
		return // not attempted
	}
	m.attempt.WithLabelValues(typ).Observe(took.Seconds())
	if result == engine.ActionOK {
		m.delivery.WithLabelValues(typ).Observe(sinceEntry.Seconds())
	}
}

// watchOutbox adds the outbox depth gauge, read from the store at each
// scrape (pending and running actions).
func (m *metrics) watchOutbox(ob store.Outbox) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "stagegate_outbox_depth", Help: "Actions waiting to run or running (pending or running in the outbox).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := ob.OutboxDepth(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}))
}
