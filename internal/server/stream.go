package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/pkg/api"
)

// A streamed run (POST /v1/run with Accept: application/x-ndjson) answers
// one api.Event per line as the execution goes: each stage starting, the
// program's output, each stage's result, and last the done event with
// the answer the call without streaming gives, or an error event. Until
// a stage has started nothing is written, so that a refusal (an invalid
// request, busy, a missing image) is the same HTTP error as without
// streaming.
//
// The executor never waits for the client: its events are queued, and
// the handler writes them as the connection takes them. The queue holds
// at most what the answer holds (the output is capped), and a client
// that takes nothing for defaultStreamWriteTimeout is gone: its execution
// is stopped, which frees its sandbox.

// defaultStreamWriteTimeout is how long a streamed answer waits for the
// client to take a piece of it.
const defaultStreamWriteTimeout = 5 * time.Second

// streamPiece is how much of a batch of events is written under one
// write deadline: the deadline bounds a client that reads nothing, not
// one that reads slowly.
const streamPiece = 32 << 10

// errStoppedReading is the cause with which a stream's execution is
// stopped when its client takes nothing more.
var errStoppedReading = errors.New("the client stopped reading the stream")

// wantsStream reports whether the request accepts a stream of events.
func wantsStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, params, err := mime.ParseMediaType(part)
			if err == nil && mt == api.ContentTypeNDJSON && params["q"] != "0" {
				return true
			}
		}
	}
	return false
}

// stream runs a validated plan and answers its events as they come.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, plan execution.Plan) {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	events := newEventQueue()
	plan.Events = events
	type outcome struct {
		resp *api.RunResponse
		err  error
	}
	done := make(chan outcome, 1)
	go func() {
		resp, err := s.run(ctx, r, plan)
		done <- outcome{resp, err}
	}()

	out := &eventWriter{w: w, rc: http.NewResponseController(w), timeout: s.streamWriteTimeout}
	log := logFrom(r.Context())
	for {
		select {
		case <-events.wake:
			if err := out.write(events.take()); err != nil && !out.reported {
				out.reported = true
				log.WithError(err).Info("streamed answer: the client takes nothing more; stopping the execution")
				cancel(errStoppedReading)
			}
		case o := <-done:
			last := events.take()
			if o.err != nil {
				e := s.runError(ctx, w, r, plan, o.err)
				if !out.started && len(last) == 0 {
					// Nothing ran: the same answer as without streaming.
					if e != nil {
						s.fail(w, r, e)
					}
					return
				}
				if e == nil {
					return
				}
				s.count(e)
				last = append(last, api.Event{Event: api.EventError, Error: e})
			} else {
				last = append(last, api.Event{Event: api.EventDone, Response: o.resp})
			}
			if err := out.write(last); err != nil && !out.reported {
				log.WithError(err).Info("streamed answer: the client did not take its end")
			}
			return
		}
	}
}

// eventQueue is a stream's execution.Events: it queues the events for
// the handler, and never blocks the executor. Output that follows output
// of the same stream and stage, not yet taken, joins it.
type eventQueue struct {
	mu      sync.Mutex
	pending []queuedEvent
	// wake has a value when pending may have events.
	wake chan struct{}
}

type queuedEvent struct {
	ev   api.Event
	data []byte // an output event's, until it is taken
}

var _ execution.Events = (*eventQueue)(nil)

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

func (q *eventQueue) StageStarted(stage string, test int) {
	q.add(api.Event{Event: api.EventStage, Stage: stage, Test: testIndex(test)}, nil)
}

func (q *eventQueue) Output(stage string, test int, stream string, data []byte) {
	kind := api.EventStdout
	if stream == "stderr" {
		kind = api.EventStderr
	}
	q.add(api.Event{Event: kind, Stage: stage, Test: testIndex(test)}, data)
}

func (q *eventQueue) StageEnded(stage string, test int, res api.StageResult) {
	q.add(api.Event{Event: api.EventResult, Stage: stage, Test: testIndex(test), Result: &res}, nil)
}

// add queues ev, with data if it is output. data is copied: the caller
// may reuse it.
func (q *eventQueue) add(ev api.Event, data []byte) {
	q.mu.Lock()
	n := len(q.pending)
	if data != nil && n > 0 {
		if last := &q.pending[n-1]; last.data != nil && last.ev.Event == ev.Event && last.ev.Stage == ev.Stage && sameTest(last.ev.Test, ev.Test) {
			last.data = append(last.data, data...)
			q.mu.Unlock()
			return
		}
	}
	if data != nil {
		data = append(make([]byte, 0, len(data)), data...)
	}
	q.pending = append(q.pending, queuedEvent{ev: ev, data: data})
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns the events queued, and empties the queue.
func (q *eventQueue) take() []api.Event {
	q.mu.Lock()
	pending := q.pending
	q.pending = nil
	q.mu.Unlock()
	evs := make([]api.Event, len(pending))
	for i, p := range pending {
		evs[i] = p.ev
		if p.data != nil {
			evs[i].Data = string(p.data)
		}
	}
	return evs
}

// testIndex is an event's test: a test's index, none for the stages
// that are not tests (-1).
func testIndex(test int) *int {
	if test < 0 {
		return nil
	}
	return &test
}

func sameTest(a, b *int) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// eventWriter writes events as NDJSON lines, the first with the header,
// each batch flushed. After a failed write it writes nothing more.
type eventWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	started bool
	err     error
	// reported: the failure was logged and the execution stopped.
	reported bool
}

func (o *eventWriter) write(evs []api.Event) error {
	if o.err != nil || len(evs) == 0 {
		return o.err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, ev := range evs {
		if err := enc.Encode(ev); err != nil {
			o.err = err
			return err
		}
	}
	if !o.started {
		o.started = true
		h := o.w.Header()
		h.Set("Content-Type", api.ContentTypeNDJSON)
		// A proxy in front (NGINX) passes each line on as it comes.
		h.Set("X-Accel-Buffering", "no")
		h.Set("Cache-Control", "no-cache")
		o.w.WriteHeader(http.StatusOK)
	}
	for b := buf.Bytes(); len(b) > 0; {
		piece := b[:min(len(b), streamPiece)]
		b = b[len(piece):]
		if err := o.rc.SetWriteDeadline(time.Now().Add(o.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			o.err = err
			return err
		}
		if _, err := o.w.Write(piece); err != nil {
			o.err = err
			return err
		}
	}
	if err := o.rc.Flush(); err != nil {
		o.err = err
		return err
	}
	return nil
}
