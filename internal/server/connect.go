package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/internal/session"
	"github.com/runtimed/runtimed/pkg/api"
)

// Interactive runs over WebSocket: GET /v1/connect (runtimed's shapes)
// and GET /api/v2/connect (Piston's, piston_connect.go). Both share the
// mechanism here: a connection carries one execution, which goes through
// the same checks, token, admission, limits and sandboxes as a POST; its
// first message must come within api.ConnectInitTimeout; the run's stdin
// and signals come as messages while it runs, and what happens goes back
// as it happens. A client that goes away, or stops reading for
// connectWriteTimeout, ends the execution and frees its sandboxes.
//
// Origins: the handshake of a browser page from another origin than the
// Host it connects to is refused (403), coder/websocket's default. These
// endpoints serve non-browser clients (which send no Origin) and pages of
// the same origin; a page elsewhere must not ride on what authenticates
// its visitor's browser to the daemon or the proxy in front of it.

// connectWriteTimeout bounds each message written to a client: one that
// does not take its output in this time is gone, and its run stops. A
// variable for the tests.
var connectWriteTimeout = 10 * time.Second

func (s *Server) routeConnect() {
	s.route("GET", "/v1/connect", func(w http.ResponseWriter, r *http.Request) {
		s.serveConnection(w, r, &runtimedProtocol{})
	})
	// A session's: the connection holds the session's turn until it ends.
	s.route("GET", "/v1/sessions/{id}/connect", s.withSession(func(w http.ResponseWriter, r *http.Request, sess *session.Session) {
		s.serveConnection(w, r, &runtimedProtocol{session: sess})
	}))
	for _, base := range []string{"/api/v2", "/api/v2/piston"} {
		s.route("GET", base+"/connect", func(w http.ResponseWriter, r *http.Request) {
			s.serveConnection(w, r, &pistonProtocol{})
		})
	}
}

// protocol is one endpoint's messages.
type protocol interface {
	// handle acts on one message of the client's: starts the execution,
	// passes stdin or a signal on, or closes the connection.
	handle(c *connection, msg []byte)
	// initTimeout closes a connection whose first message did not come.
	initTimeout(c *connection)
}

// connection is one WebSocket connection and its execution.
type connection struct {
	s    *Server
	r    *http.Request // the upgrade; its context has the state, log and client
	conn *websocket.Conn
	log  *logrus.Entry
	// requestID is the upgrade's, for the messages of internal errors.
	requestID string
	// ctx is the execution's: it ends when the connection does.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	started bool // the execution was started
	closed  bool // a close was begun

	stdin      *stdinQueue
	stdinBytes int64
	signals    chan syscall.Signal
	// running says the run stage is under way: signals go to it.
	running atomic.Bool
	done    chan struct{} // closed when the execution is over; nil before

	out          *outbox       // what is to be written, in order
	writeTimeout time.Duration // connectWriteTimeout when it was made
}

// outbox holds a connection's messages and its close until its writer
// takes them: the execution never waits for the client (its events come
// from inside the sandbox's loop, where the wall time runs). What it
// holds is bounded by what the answer holds (the output is capped).
type outbox struct {
	mu     sync.Mutex
	items  []outItem
	wake   chan struct{} // a token when items were added
	closed bool          // a close is queued: nothing is taken after it
}

// outItem is a message to write, or the close (close set).
type outItem struct {
	data   []byte
	close  bool
	code   websocket.StatusCode
	reason string
}

func newOutbox() *outbox { return &outbox{wake: make(chan struct{}, 1)} }

func (o *outbox) push(it outItem) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.items = append(o.items, it)
	o.closed = it.close
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) take() []outItem {
	o.mu.Lock()
	defer o.mu.Unlock()
	items := o.items
	o.items = nil
	return items
}

// write writes the outbox's messages in order, each within
// connectWriteTimeout, and closes the connection when its close comes;
// it returns then, or when ctx (the connection's serving) ends. A client
// that does not take a message is gone: the execution stops and what is
// left is dropped.
func (c *connection) write(ctx context.Context) {
	failed := false
	for {
		select {
		case <-c.out.wake:
		case <-ctx.Done():
			return
		}
		for _, it := range c.out.take() {
			if it.close {
				if failed {
					_ = c.conn.CloseNow()
				} else {
					_ = c.conn.Close(it.code, it.reason)
				}
				return
			}
			if failed {
				continue
			}
			wctx, cancel := context.WithTimeout(ctx, c.writeTimeout)
			err := c.conn.Write(wctx, websocket.MessageText, it.data)
			cancel()
			if err != nil {
				failed = true
				if c.ctx.Err() == nil {
					c.log.WithError(err).Info("websocket client does not take its messages; execution stopped")
				}
				c.cancel()
			}
		}
	}
}

// serveConnection upgrades the request and serves the connection with p
// until it closes and its execution is over.
func (s *Server) serveConnection(w http.ResponseWriter, r *http.Request, p protocol) {
	log := logFrom(r.Context())
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		// Accept answered the request itself (403 for a foreign origin,
		// 426 for a request that is no upgrade).
		log.WithError(err).Info("websocket handshake refused")
		return
	}
	st := stateFrom(r.Context())
	conn.SetReadLimit(st.cfg.Requests.MaxBodyBytes)
	ctx, cancel := context.WithCancel(r.Context())
	c := &connection{
		s: s, r: r, conn: conn, log: log, requestID: w.Header().Get("X-Request-Id"),
		ctx: ctx, cancel: cancel,
		stdin:   newStdinQueue(),
		signals: make(chan syscall.Signal, 8),
		out:     newOutbox(),

		writeTimeout: connectWriteTimeout,
	}
	defer cancel()
	wctx, stopWriting := context.WithCancel(context.WithoutCancel(r.Context()))
	written := make(chan struct{})
	go func() {
		defer close(written)
		c.write(wctx)
	}()
	timer := time.AfterFunc(api.ConnectInitTimeout, func() { p.initTimeout(c) })
	defer timer.Stop()
	// Reading goes on while the execution is stopped for the shutdown: its
	// error message is still to be sent.
	rctx := context.WithoutCancel(r.Context())
	for {
		_, msg, err := conn.Read(rctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				log.WithError(err).Debug("websocket read")
			}
			break
		}
		p.handle(c, msg)
	}
	// The client is gone or the connection closed: what still runs stops.
	cancel()
	if c.done != nil {
		<-c.done
	}
	// The execution's last messages and the close are written, within
	// the writes' bound; then the connection goes, whatever is left.
	c.out.push(outItem{close: true, code: websocket.StatusNormalClosure})
	select {
	case <-written:
	case <-time.After(c.writeTimeout + time.Second):
	}
	stopWriting()
	_ = conn.CloseNow()
	<-written
}

// begin marks the execution as started, unless the connection is closing
// or it started before; it reports whether it did.
func (c *connection) begin() (ok, already bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return false, false
	case c.started:
		return false, true
	}
	c.started = true
	return true, false
}

// isStarted reports whether the execution was started.
func (c *connection) isStarted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// closeIfIdle closes the connection with code unless its execution was
// started: the init timeout.
func (c *connection) closeIfIdle(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	idle := !c.started && !c.closed
	c.closed = c.closed || idle // no execution starts after this
	c.mu.Unlock()
	if idle {
		c.log.Info("no request within the connection's first second; closed")
		c.cancel()
		c.out.push(outItem{close: true, code: code, reason: reason})
	}
}

// close stops the execution, if any, and closes the connection with code.
// The first close counts.
func (c *connection) close(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.finish(code, reason)
}

// finish closes the connection with code once its execution is over. It
// does not cancel anything: the execution has ended.
func (c *connection) finish(code websocket.StatusCode, reason string) {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.out.push(outItem{close: true, code: code, reason: reason})
}

// send queues v as a JSON message for the connection's writer (write):
// it never waits for the client.
func (c *connection) send(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		c.log.WithError(err).Error("encode a websocket message")
		c.cancel()
		return
	}
	c.out.push(outItem{data: data})
}

// start runs plan, its events told to ev, with the connection's stdin and
// signals for its run; end hears how it ended: a response, an error to
// tell the client, or neither when the client is gone.
func (c *connection) start(plan execution.Plan, ev execution.Events, end func(*api.RunResponse, *api.Error)) {
	plan.Events = ev
	plan.Input = c.stdin.out
	plan.Signals = c.signals
	c.done = make(chan struct{})
	go c.stdin.pump(c.ctx)
	go func() {
		defer close(c.done)
		resp, aerr := c.execute(plan)
		end(resp, aerr)
	}()
}

// execute runs plan as POST /v1/run does, and returns the response or the
// error that call would answer; neither when the client went away.
func (c *connection) execute(plan execution.Plan) (*api.RunResponse, *api.Error) {
	resp, err := c.s.run(c.ctx, c.r, plan)
	if err == nil {
		return resp, nil
	}
	e := c.s.runError(c.ctx, idWriter{c.requestID}, c.r, plan, err)
	if e != nil {
		c.s.count(e)
	}
	return nil, e
}

// refuse counts a refused request as the HTTP answer would.
func (c *connection) refuse(aerr *api.Error) { c.s.count(aerr) }

// addStdin queues data for the run's stdin; false when the connection's
// stdin would be over the request's maximum.
func (c *connection) addStdin(data string) bool {
	limit := stateFrom(c.r.Context()).cfg.Requests.MaxStdinBytes
	if c.stdinBytes += int64(len(data)); c.stdinBytes > limit {
		return false
	}
	if len(data) > 0 {
		c.stdin.push([]byte(data))
	}
	return true
}

// signal passes sig on to the run, if it is under way; else it is dropped.
func (c *connection) signal(sig syscall.Signal) {
	if !c.running.Load() {
		c.log.WithField("signal", sig.String()).Debug("signal outside the run stage dropped")
		return
	}
	select {
	case c.signals <- sig:
	default:
		c.log.WithField("signal", sig.String()).Info("signals come faster than they are delivered; one dropped")
	}
}

// stdinQueue holds a connection's stdin until the run takes it, so that
// reading the connection never waits for a program that does not read.
// What it holds is bounded by the request's maximum stdin.
type stdinQueue struct {
	mu     sync.Mutex
	pieces [][]byte
	closed bool
	wake   chan struct{}
	out    chan []byte
}

func newStdinQueue() *stdinQueue {
	return &stdinQueue{wake: make(chan struct{}, 1), out: make(chan []byte)}
}

func (q *stdinQueue) push(b []byte) {
	q.mu.Lock()
	q.pieces = append(q.pieces, b)
	q.mu.Unlock()
	q.notify()
}

// close ends the stdin once what was pushed is taken.
func (q *stdinQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.notify()
}

func (q *stdinQueue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

func (q *stdinQueue) notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pump hands the pieces to out in order, and closes out after the last
// once the queue is closed, until ctx ends.
func (q *stdinQueue) pump(ctx context.Context) {
	for {
		q.mu.Lock()
		if len(q.pieces) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				close(q.out)
				return
			}
			select {
			case <-q.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		p := q.pieces[0]
		q.mu.Unlock()
		select {
		case q.out <- p:
			q.mu.Lock()
			q.pieces = q.pieces[1:]
			q.mu.Unlock()
		case <-ctx.Done():
			return
		}
	}
}

// idWriter is an http.ResponseWriter with the request id as its only
// header and nowhere to write: a connection's own writer is hijacked, and
// its answers are messages.
type idWriter struct{ id string }

func (w idWriter) Header() http.Header         { return http.Header{"X-Request-Id": {w.id}} }
func (w idWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w idWriter) WriteHeader(int)             {}

// runtimedProtocol is /v1/connect: api.ConnectMessages in, api.Events out.
type runtimedProtocol struct {
	tests bool // the request has tests: no stdin, no signals
	// session, if set, is the session the run is in
	// (/v1/sessions/{id}/connect).
	session *session.Session
}

func (p *runtimedProtocol) initTimeout(c *connection) {
	c.closeIfIdle(api.CloseInitTimeout, "no run message within 1 s")
}

// fail sends an error event and closes the connection with its code.
func (p *runtimedProtocol) fail(c *connection, aerr *api.Error) {
	c.send(api.Event{Event: api.EventError, Error: aerr})
	c.close(api.CloseError, string(aerr.Code))
}

func (p *runtimedProtocol) handle(c *connection, msg []byte) {
	var m api.ConnectMessage
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		aerr := decodeError(err, stateFrom(c.r.Context()).cfg.Requests.MaxBodyBytes)
		c.refuse(aerr)
		p.fail(c, aerr)
		return
	}
	if m.Type != api.ConnectRun && !c.isStarted() {
		if m.Type == api.ConnectStdin || m.Type == api.ConnectStdinClose || m.Type == api.ConnectSignal {
			c.close(api.CloseNotInitialized, "no run message yet")
			return
		}
	}
	switch m.Type {
	case api.ConnectRun:
		p.run(c, m.Request)
	case api.ConnectStdin, api.ConnectStdinClose:
		switch {
		case p.tests:
			p.fail(c, badRequest(api.CodeInvalidRequest, "type", "stdin is for a request without tests; a test's stdin is in the test"))
		case c.stdin.isClosed():
			p.fail(c, badRequest(api.CodeInvalidRequest, "type", "stdin was closed"))
		case m.Type == api.ConnectStdinClose:
			c.stdin.close()
		case !c.addStdin(m.Data):
			p.fail(c, tooLarge("data", "the stdin sent is more than the maximum of %d bytes", stateFrom(c.r.Context()).cfg.Requests.MaxStdinBytes))
		}
	case api.ConnectSignal:
		n, ok := api.ValidSignal(m.Signal)
		switch {
		case !ok:
			c.close(api.CloseInvalidSignal, "invalid signal")
		case p.tests:
			p.fail(c, badRequest(api.CodeInvalidRequest, "type", "signals are for a request without tests"))
		default:
			c.signal(syscall.Signal(n))
		}
	default:
		p.fail(c, badRequest(api.CodeInvalidRequest, "type", "unknown message type %q; run, stdin, stdin_close or signal", m.Type))
	}
}

func (p *runtimedProtocol) run(c *connection, req *api.RunRequest) {
	ok, already := c.begin()
	switch {
	case already:
		c.close(api.CloseAlreadyInitialized, "already running")
		return
	case !ok:
		return
	}
	if req == nil {
		aerr := badRequest(api.CodeInvalidRequest, "request", "a run message carries the request")
		c.refuse(aerr)
		p.fail(c, aerr)
		return
	}
	var plan execution.Plan
	var aerr *api.Error
	if p.session != nil {
		plan, aerr = stateFrom(c.r.Context()).sessionConnectPlan(p.session, req)
		if aerr == nil {
			p.session.Ran()
		}
	} else {
		plan, aerr = stateFrom(c.r.Context()).plan(req)
	}
	if aerr != nil {
		c.refuse(aerr)
		p.fail(c, aerr)
		return
	}
	p.tests = len(plan.Tests) > 0
	c.start(plan, &runtimedEvents{c: c}, func(resp *api.RunResponse, aerr *api.Error) {
		switch {
		case aerr != nil:
			c.send(api.Event{Event: api.EventError, Error: aerr})
			c.finish(api.CloseError, string(aerr.Code))
		case resp != nil:
			c.send(api.Event{Event: api.EventDone, Response: resp})
			c.finish(api.CloseNormal, "")
		}
	})
}

// runtimedEvents sends an execution's events as api.Events.
type runtimedEvents struct{ c *connection }

func (e *runtimedEvents) StageStarted(stage string, test int) {
	if stage == "run" {
		e.c.running.Store(true)
	}
	e.c.send(api.Event{Event: api.EventStage, Stage: stage, Test: testIndex(test)})
}

func (e *runtimedEvents) Output(stage string, test int, stream string, data []byte) {
	kind := api.EventStdout
	if stream == "stderr" {
		kind = api.EventStderr
	}
	e.c.send(api.Event{Event: kind, Stage: stage, Test: testIndex(test), Data: string(data)})
}

func (e *runtimedEvents) StageEnded(stage string, test int, res api.StageResult) {
	if stage == "run" {
		e.c.running.Store(false)
	}
	e.c.send(api.Event{Event: api.EventResult, Stage: stage, Test: testIndex(test), Result: &res})
}
