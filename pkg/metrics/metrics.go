// Package metrics owns runtimed's Prometheus metrics: a registry of the
// daemon's own (not the global one) with its executions, phase durations,
// load, rejections and sandbox failures, and the Go and process
// collectors.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Phases of an execution, as the phase label of
// runtimed_phase_duration_seconds.
const (
	PhaseQueue         = "queue"
	PhaseSandboxCreate = "sandbox_create"
	PhaseCompile       = "compile"
	PhaseRun           = "run"
	PhaseCleanup       = "cleanup"
)

// Metrics are the daemon's metrics. A nil *Metrics records nothing, so
// code under test may go without.
type Metrics struct {
	registry        *prometheus.Registry
	executions      *prometheus.CounterVec
	phases          *prometheus.HistogramVec
	inFlight        prometheus.Gauge
	queued          prometheus.Gauge
	rejections      *prometheus.CounterVec
	sandboxFailures prometheus.Counter
}

// New registers runtimed's metrics in a registry of their own.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "runtimed", Name: "executions_total",
			Help: "Executions finished, by language and status (ok, runtime_error, timeout, …).",
		}, []string{"language", "status"}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "runtimed", Name: "phase_duration_seconds",
			Help:    "Time spent in each phase of an execution: queue, sandbox_create, compile, run, cleanup.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"phase"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "runtimed", Name: "executions_in_flight",
			Help: "Executions running now.",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "runtimed", Name: "executions_queued",
			Help: "Executions waiting for a slot now.",
		}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "runtimed", Name: "rejections_total",
			Help: "Requests answered with an error before any execution, by reason (the error code).",
		}, []string{"reason"}),
		sandboxFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "runtimed", Name: "sandbox_failures_total",
			Help: "Executions that failed because a sandbox could not be created or run.",
		}),
	}
	m.registry.MustRegister(m.executions, m.phases, m.inFlight, m.queued, m.rejections, m.sandboxFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Execution counts a finished execution.
func (m *Metrics) Execution(language, status string) {
	if m != nil {
		m.executions.WithLabelValues(language, status).Inc()
	}
}

// Phase records how long a phase took.
func (m *Metrics) Phase(phase string, d time.Duration) {
	if m != nil {
		m.phases.WithLabelValues(phase).Observe(d.Seconds())
	}
}

// Load sets the running and waiting counts.
func (m *Metrics) Load(running, queued int) {
	if m != nil {
		m.inFlight.Set(float64(running))
		m.queued.Set(float64(queued))
	}
}

// Rejection counts a request refused for reason.
func (m *Metrics) Rejection(reason string) {
	if m != nil {
		m.rejections.WithLabelValues(reason).Inc()
	}
}

// SandboxFailure counts an execution the platform failed.
func (m *Metrics) SandboxFailure() {
	if m != nil {
		m.sandboxFailures.Inc()
	}
}
