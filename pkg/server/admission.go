package server

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/pkg/metrics"
)

// admission bounds how many executions run at once and how many wait for
// a slot. A request beyond both is told the daemon is busy rather than
// piling up.
type admission struct {
	slots     chan struct{}
	maxQueued int64
	queued    atomic.Int64
	metrics   *metrics.Metrics
}

func newAdmission(concurrent, queued int, m *metrics.Metrics) *admission {
	return &admission{slots: make(chan struct{}, concurrent), maxQueued: int64(queued), metrics: m}
}

// Load reports how many executions run and wait now.
func (a *admission) Load() (running, queued int) {
	return len(a.slots), int(a.queued.Load())
}

func (a *admission) report() { a.metrics.Load(a.Load()) }

// acquire takes a slot, waiting in the queue if there is room in it. The
// returned func gives the slot back.
func (a *admission) acquire(ctx context.Context) (func(), *api.Error) {
	defer a.report()
	select {
	case a.slots <- struct{}{}:
		return a.release, nil
	default:
	}
	if a.queued.Add(1) > a.maxQueued {
		a.queued.Add(-1)
		return nil, &api.Error{Code: api.CodeBusy, Message: "too many executions are running and waiting; retry later", HTTPStatus: http.StatusServiceUnavailable}
	}
	defer a.queued.Add(-1)
	a.report()
	select {
	case a.slots <- struct{}{}:
		return a.release, nil
	case <-ctx.Done():
		return nil, &api.Error{Code: api.CodeBusy, Message: "the request ended while waiting for a slot", HTTPStatus: http.StatusServiceUnavailable}
	}
}

func (a *admission) release() {
	<-a.slots
	a.report()
}
