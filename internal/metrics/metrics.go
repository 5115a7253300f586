// Package metrics owns runtimed's Prometheus metrics: a registry of the
// daemon's own (not the global one) with its executions, phase durations,
// load, rejections and sandbox failures, and the Go and process
// collectors.
package metrics

import (
	"net/http"
	"sync"
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
	// PhasePoolCreate is the creation of a warm pool's sandbox, off any
	// request's path.
	PhasePoolCreate = "pool_create"
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
	poolTakes       *prometheus.CounterVec
	programs        *prometheus.CounterVec
	pools           *poolCollector

	sessionsOpen    *prometheus.GaugeVec
	sessionsCreated *prometheus.CounterVec
	sessionsEnded   *prometheus.CounterVec
	sessionRuns     *prometheus.CounterVec
	runsPerSession  prometheus.Histogram
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
			Help: "Sandboxes in use now, each by one stage of a request.",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "runtimed", Name: "executions_queued",
			Help: "Stages of requests waiting for a sandbox now.",
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
	m.poolTakes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "runtimed", Name: "pool_takes_total",
		Help: "Sandboxes asked of a warm pool, by image and result: hit (a warm one) or miss (a new one was made).",
	}, []string{"image", "result"})
	m.programs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "runtimed", Name: "sandbox_programs_total",
		Help: "Programs run, by sandbox: first (in a sandbox of its own) or again (in the sandbox of its request's previous test).",
	}, []string{"sandbox"})
	m.pools = &poolCollector{
		sandboxes: prometheus.NewDesc("runtimed_pool_sandboxes", "Sandboxes in the warm pools, by image and state (ready, creating).", []string{"image", "state"}, nil),
		idle:      prometheus.NewDesc("runtimed_pool_idle_sandbox_bytes", "Memory held by one idle pooled sandbox, as last measured, by image.", []string{"image"}, nil),
	}
	m.sessionsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "runtimed", Name: "sessions_open",
		Help: "Sessions open now, by language.",
	}, []string{"language"})
	m.sessionsCreated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "runtimed", Name: "sessions_created_total",
		Help: "Sessions created, by language.",
	}, []string{"language"})
	m.sessionsEnded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "runtimed", Name: "sessions_ended_total",
		Help: "Sessions ended, by language and reason: deleted, idle (its idle timeout), lifetime (its maximum lifetime), shutdown, revoked (its token was).",
	}, []string{"language", "reason"})
	m.sessionRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "runtimed", Name: "session_runs_total",
		Help: "Runs in sessions, by language.",
	}, []string{"language"})
	m.runsPerSession = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "runtimed", Name: "session_runs",
		Help:    "Runs a session had when it ended.",
		Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
	})
	m.registry.MustRegister(m.sessionsOpen, m.sessionsCreated, m.sessionsEnded, m.sessionRuns, m.runsPerSession)
	m.registry.MustRegister(m.executions, m.phases, m.inFlight, m.queued, m.rejections, m.sandboxFailures, m.poolTakes, m.programs, m.pools,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Program counts a program run, in a sandbox of its own or again in a
// sandbox that ran its request's previous test.
func (m *Metrics) Program(again bool) {
	if m == nil {
		return
	}
	v := "first"
	if again {
		v = "again"
	}
	m.programs.WithLabelValues(v).Inc()
}

// SessionCreated counts a session created, open until SessionEnded.
func (m *Metrics) SessionCreated(language string) {
	if m != nil {
		m.sessionsCreated.WithLabelValues(language).Inc()
		m.sessionsOpen.WithLabelValues(language).Inc()
	}
}

// SessionEnded counts a session ended for reason, after runs runs.
func (m *Metrics) SessionEnded(language, reason string, runs int) {
	if m != nil {
		m.sessionsOpen.WithLabelValues(language).Dec()
		m.sessionsEnded.WithLabelValues(language, reason).Inc()
		m.runsPerSession.Observe(float64(runs))
	}
}

// SessionRun counts a run in a session.
func (m *Metrics) SessionRun(language string) {
	if m != nil {
		m.sessionRuns.WithLabelValues(language).Inc()
	}
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

// Load sets the counts of sandboxes in use and of stages waiting.
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

// Pool counts a sandbox asked of the warm pool of image.
func (m *Metrics) Pool(image string, hit bool) {
	if m != nil {
		result := "miss"
		if hit {
			result = "hit"
		}
		m.poolTakes.WithLabelValues(image, result).Inc()
	}
}

// PoolState is one warm pool at the time of a scrape.
type PoolState struct {
	Image           string
	Ready, Creating int
	IdleBytes       int64
}

// WatchPools makes each scrape report the pools that states returns.
func (m *Metrics) WatchPools(states func() []PoolState) {
	if m != nil {
		m.pools.mu.Lock()
		m.pools.states = states
		m.pools.mu.Unlock()
	}
}

type poolCollector struct {
	sandboxes, idle *prometheus.Desc
	mu              sync.Mutex
	states          func() []PoolState
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sandboxes
	ch <- c.idle
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	states := c.states
	c.mu.Unlock()
	if states == nil {
		return
	}
	// Pools of one image (a compile and a run pool) add up.
	ready, creating, idle := map[string]int{}, map[string]int{}, map[string]int64{}
	for _, p := range states() {
		ready[p.Image] += p.Ready
		creating[p.Image] += p.Creating
		idle[p.Image] = max(idle[p.Image], p.IdleBytes)
	}
	for image := range ready {
		ch <- prometheus.MustNewConstMetric(c.sandboxes, prometheus.GaugeValue, float64(ready[image]), image, "ready")
		ch <- prometheus.MustNewConstMetric(c.sandboxes, prometheus.GaugeValue, float64(creating[image]), image, "creating")
		ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(idle[image]), image)
	}
}
