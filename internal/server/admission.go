package server

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/pkg/api"
)

// admission bounds how many sandboxes are in use at once and how many
// stages wait for one. A place is held for one stage (the compile, the
// run, one test), not for a whole request: a request with many tests
// queues again between them, behind the requests that came meanwhile, so
// that it cannot hold the service. Waiters are served in their order of
// arrival.
//
// A request's first stage waits at most maxWait, and is refused at once
// when maxQueued stages already wait: the daemon is busy. A later stage
// of a request under way is never refused; it waits until its context
// ends (the request's deadline). Since a new request only queues while
// fewer than maxQueued wait, at most max_concurrent + max_queued requests
// are under way at once.
type admission struct {
	slots     chan struct{}
	maxQueued int64
	maxWait   time.Duration
	queued    atomic.Int64
	metrics   *metrics.Metrics
}

func newAdmission(concurrent, queued int, maxWait time.Duration, m *metrics.Metrics) *admission {
	return &admission{slots: make(chan struct{}, concurrent), maxQueued: int64(queued), maxWait: maxWait, metrics: m}
}

// Load reports how many sandboxes are in use and how many stages wait.
func (a *admission) Load() (running, queued int) {
	return len(a.slots), int(a.queued.Load())
}

func (a *admission) report() { a.metrics.Load(a.Load()) }

var errBusy = newError(api.CodeBusy, "too many executions are running and waiting; retry later")

// acquire takes a place, waiting in the queue; first says the stage is
// its request's first. The returned func gives the place back.
func (a *admission) acquire(ctx context.Context, first bool) (func(), error) {
	defer a.report()
	select {
	case a.slots <- struct{}{}:
		return a.release, nil
	default:
	}
	if n := a.queued.Add(1); first && n > a.maxQueued {
		a.queued.Add(-1)
		return nil, errBusy
	}
	defer a.queued.Add(-1)
	a.report()
	var timeout <-chan time.Time
	if first {
		t := time.NewTimer(a.maxWait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case a.slots <- struct{}{}:
		return a.release, nil
	case <-timeout:
		return nil, newError(api.CodeBusy, "no sandbox came free within %d ms; retry later", a.maxWait.Milliseconds())
	case <-ctx.Done():
		if first { // its deadline, or its client went away
			return nil, newError(api.CodeBusy, "no sandbox came free before the request's deadline; retry later")
		}
		return nil, ctx.Err()
	}
}

func (a *admission) release() {
	<-a.slots
	a.report()
}

// gate is one request's way through admission: before each stage takes a
// sandbox, a place of the client's (on the TCP listener, a token's) and
// one of the daemon's.
type gate struct {
	admit   *admission
	client  *client // nil on the unix socket
	metrics *metrics.Metrics
	entered bool
}

var _ execution.Admission = (*gate)(nil)

var errTokenBusy = newError(api.CodeTooManyConcurrent, "this token has as many sandboxes in use as it may; retry later")

// Contended reports whether stages wait for a place of the daemon's or
// of this client's.
func (g *gate) Contended() bool {
	return g.admit.queued.Load() > 0 || g.client != nil && g.client.contended()
}

// Enter takes the places for one stage. The request's first stage is
// refused at once when the token has all its sandboxes in use (429), and
// after the daemon's queue bounds (503); a later stage waits for both.
func (g *gate) Enter(ctx context.Context) (func(), error) {
	first := !g.entered
	g.entered = true
	start := time.Now()
	leaveClient := func() {}
	if g.client != nil {
		var ok bool
		if leaveClient, ok = g.client.acquire(ctx, first); !ok {
			if first {
				return nil, errTokenBusy
			}
			return nil, ctx.Err()
		}
	}
	leave, err := g.admit.acquire(ctx, first)
	if err != nil {
		leaveClient()
		return nil, err
	}
	g.metrics.Phase(metrics.PhaseQueue, time.Since(start))
	return func() { leave(); leaveClient() }, nil
}
