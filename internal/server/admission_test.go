package server

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/pkg/api"
)

func newGate(a *admission, c *client) *gate {
	return &gate{admit: a, client: c, metrics: a.metrics}
}

func apiCode(err error) api.ErrorCode {
	var aerr *api.Error
	if errors.As(err, &aerr) {
		return aerr.Code
	}
	return ""
}

// A request with many stages queues again between them: a request that
// came meanwhile goes first.
func TestAdmissionTakesTurnsBetweenStages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAdmission(1, 8, time.Minute, metrics.New())
		ctx := context.Background()
		long := newGate(a, nil)
		leave, err := long.Enter(ctx) // its first test
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		done := make(chan struct{})
		go func() { // a plain print arrives
			l, err := newGate(a, nil).Enter(ctx)
			if err != nil {
				t.Error(err)
			}
			order = append(order, "print")
			l()
			close(done)
		}()
		synctest.Wait()
		if running, queued := a.Load(); running != 1 || queued != 1 {
			t.Fatalf("load %d running, %d queued; want 1, 1", running, queued)
		}
		leave()                       // the first test ends
		l, err := long.Enter(ctx)     // the second one queues behind the print
		order = append(order, "long") // (the print has run by now)
		if err != nil {
			t.Fatal(err)
		}
		l()
		<-done
		if len(order) != 2 || order[0] != "print" {
			t.Fatalf("order %v: the long request's second stage went before the print", order)
		}
	})
}

func TestAdmissionFirstStageBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAdmission(1, 1, 3*time.Second, metrics.New())
		ctx := context.Background()
		leave, err := newGate(a, nil).Enter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer leave()

		// One may wait, up to the maximum wait.
		waited := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := newGate(a, nil).Enter(ctx)
			waited <- err
		}()
		synctest.Wait()
		// The queue is full: a new request is refused at once...
		if _, err := newGate(a, nil).Enter(ctx); apiCode(err) != api.CodeBusy {
			t.Fatalf("a request beyond the queue: %v, want busy", err)
		}
		// ...but a later stage of a request under way waits.
		later := newGate(a, nil)
		later.entered = true
		lctx, cancel := context.WithCancel(ctx)
		laterErr := make(chan error, 1)
		go func() {
			_, err := later.Enter(lctx)
			laterErr <- err
		}()
		synctest.Wait()
		select {
		case err := <-laterErr:
			t.Fatalf("a later stage was not kept waiting: %v", err)
		default:
		}

		err = <-waited
		if apiCode(err) != api.CodeBusy || time.Since(start) != 3*time.Second {
			t.Fatalf("after %s: %v; want busy after the 3 s maximum wait", time.Since(start), err)
		}
		var aerr *api.Error
		errors.As(err, &aerr)
		if aerr.HTTPStatus != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", aerr.HTTPStatus)
		}
		// A later stage waits past the maximum wait, until its context
		// (the request's deadline) ends.
		select {
		case err := <-laterErr:
			t.Fatalf("a later stage gave up with the first stage's wait: %v", err)
		default:
		}
		cancel()
		if err := <-laterErr; !errors.Is(err, context.Canceled) {
			t.Fatalf("a later stage whose request ended: %v", err)
		}
		if running, queued := a.Load(); running != 1 || queued != 0 {
			t.Fatalf("load %d running, %d queued; want 1, 0", running, queued)
		}
	})
}

// A token's places count sandboxes in use: its request's first stage is
// refused when all are taken, a later stage waits for one, and a place
// comes back at the end of each stage.
func TestTokenPlacesCountSandboxes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAdmission(4, 8, time.Minute, metrics.New())
		toks := newTokens([]config.Token{{Name: "judge", SHA256: "00", MaxConcurrent: 1}}, config.Default().TokenLimits, nil, nil)
		c := toks.clients[0]
		ctx := context.Background()
		g1 := newGate(a, c)
		leave, err := g1.Enter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newGate(a, c).Enter(ctx); apiCode(err) != api.CodeTooManyConcurrent {
			t.Fatalf("the token's second request: %v, want too_many_concurrent", err)
		}
		g2 := newGate(a, c)
		g2.entered = true // a request under way
		got := make(chan struct{})
		go func() {
			l, err := g2.Enter(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			l()
			close(got)
		}()
		synctest.Wait()
		select {
		case <-got:
			t.Fatal("a later stage got a place the token does not have")
		default:
		}
		leave()
		<-got
		if running, _ := a.Load(); running != 0 {
			t.Fatalf("%d places still taken", running)
		}
		// The daemon's place is not held while waiting for the token's.
		if len(c.slots) != 0 {
			t.Fatalf("the token holds %d places", len(c.slots))
		}
	})
}

func TestDefaultTokenConcurrencyIsBelowTheDaemons(t *testing.T) {
	cfg := config.Default()
	if cfg.TokenLimits.MaxConcurrent >= cfg.Requests.MaxConcurrent {
		t.Fatalf("a token may use %d sandboxes at once, the daemon %d: one client could take them all",
			cfg.TokenLimits.MaxConcurrent, cfg.Requests.MaxConcurrent)
	}
}

func TestDeadlineField(t *testing.T) {
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}
	srv := newTestServer(t, executor, nil)
	for _, tc := range []struct {
		deadline string
		status   int
		want     time.Duration
	}{
		{"", 200, 60 * time.Second},
		{`,"deadline_ms":2500`, 200, 2500 * time.Millisecond},
		{`,"deadline_ms":999`, 400, 0},
		{`,"deadline_ms":-1`, 400, 0},
		{`,"deadline_ms":300001`, 400, 0},
	} {
		executor.mu.Lock()
		executor.plans = nil
		executor.mu.Unlock()
		status, body := post(t, srv, `{"language":"python","files":[{"name":"a.py","content":""}]`+tc.deadline+`}`)
		if status != tc.status {
			t.Fatalf("%q: %d %s, want %d", tc.deadline, status, body, tc.status)
		}
		if status == 200 && executor.plans[0].Timeout != tc.want {
			t.Fatalf("%q: timeout %s, want %s", tc.deadline, executor.plans[0].Timeout, tc.want)
		}
	}
}
