package api

// Interactive runs over WebSocket: GET /v1/connect, runtimed's own, and
// GET /api/v2/connect, Piston's. A connection carries one execution. Its
// first message (within ConnectInitTimeout) is the request; then the
// client may write to the run's stdin and send it signals while the
// server sends what happens, as it happens. docs/api.md describes both.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// ConnectInitTimeout is how long a connection may wait before its first
// message: then it is closed with CloseInitTimeout.
const ConnectInitTimeout = time.Second

// ConnectMessage is a client's message on /v1/connect. The first is a
// "run" with the request; the others, for a request without tests only
// (the program's stdin is one run's), are "stdin", "stdin_close" and
// "signal". The server answers with Events: the stage, stdout, stderr and
// result events of the execution, and last a done event with the whole
// response (then it closes with CloseNormal) or an error event (then it
// closes with CloseError).
type ConnectMessage struct {
	Type ConnectType `json:"type"`
	// Request is the execution ("run"): the body of POST /v1/run.
	Request *RunRequest `json:"request,omitempty"`
	// Data is written to the run's stdin ("stdin"), after the request's
	// own stdin. Input sent while the compile stage runs waits for the
	// run.
	Data string `json:"data,omitempty"`
	// Signal is sent to the program's processes ("signal"): a name such
	// as "SIGINT" or "SIGKILL" (ValidSignal). A signal sent while the run
	// stage is not under way (before it, during the compile) is dropped.
	Signal string `json:"signal,omitempty"`
}

// ConnectType is the type of a ConnectMessage.
type ConnectType string

const (
	ConnectRun        ConnectType = "run"
	ConnectStdin      ConnectType = "stdin"
	ConnectStdinClose ConnectType = "stdin_close"
	ConnectSignal     ConnectType = "signal"
)

// The close codes of both connect endpoints: Piston's (4000-4005, 4999),
// given the same meaning on /v1/connect, and the standard 1000.
const (
	// CloseNormal: /v1/connect sent its done event.
	CloseNormal = 1000
	// CloseAlreadyInitialized: a second init (run) message came.
	CloseAlreadyInitialized = 4000
	// CloseInitTimeout: no init (run) message came within
	// ConnectInitTimeout.
	CloseInitTimeout = 4001
	// CloseError: an error message (event) was sent just before; it says
	// why. On /v1/connect the close reason is its code.
	CloseError = 4002
	// CloseNotInitialized: stdin or a signal came before the init (run)
	// message.
	CloseNotInitialized = 4003
	// CloseOnlyStdin: a Piston data message named another stream than
	// stdin.
	CloseOnlyStdin = 4004
	// CloseInvalidSignal: a signal message named no signal ValidSignal
	// knows.
	CloseInvalidSignal = 4005
	// CloseJobCompleted: /api/v2/connect's execution is over; its exit
	// messages said how.
	CloseJobCompleted = 4999
)

// The messages of /api/v2/connect, with Piston's field names and order.
// A client sends PistonInit first, then PistonClientData and
// PistonSignalMessage; the server sends PistonRuntimeMessage, then for each stage
// PistonStageMessage, PistonData and PistonExit, and closes with
// CloseJobCompleted, or sends PistonErrorMessage and closes with
// CloseError.

// PistonInit starts the execution: the fields of POST /api/v2/execute,
// beside the type "init". As with Piston, its stdin is checked but not
// written: the program's stdin is what data messages send.
type PistonInit struct {
	Type string `json:"type"`
	PistonExecuteRequest
}

// PistonClientData writes Data to the run's stdin; Stream must be
// "stdin".
type PistonClientData struct {
	Type   string `json:"type"`
	Stream string `json:"stream"`
	Data   string `json:"data"`
}

// PistonSignalMessage sends a signal, by name (ValidSignal), to the run.
type PistonSignalMessage struct {
	Type   string `json:"type"`
	Signal string `json:"signal"`
}

// PistonRuntimeMessage names the runtime the init chose.
type PistonRuntimeMessage struct {
	Type     string `json:"type"`
	Language string `json:"language"`
	Version  string `json:"version"`
}

// PistonStageMessage says a stage ("compile", "run") starts.
type PistonStageMessage struct {
	Type  string `json:"type"`
	Stage string `json:"stage"`
}

// PistonData is a piece of the program's output; Stream is "stdout" or
// "stderr".
type PistonData struct {
	Type   string `json:"type"`
	Stream string `json:"stream"`
	Data   string `json:"data"`
}

// PistonExit says a stage ended: Code is null when a signal ended it,
// Signal null otherwise. Limits runtimed enforced by killing the program
// report SIGKILL, as in PistonStage.
type PistonExit struct {
	Type   string  `json:"type"`
	Stage  string  `json:"stage"`
	Code   *int    `json:"code"`
	Signal *string `json:"signal"`
}

// PistonErrorMessage is a failure: the request was refused or the
// platform failed. The connection closes with CloseError after it.
type PistonErrorMessage struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// signals are the names a signal message may carry: Piston's list,
// Linux's numbers.
var signals = func() map[string]int {
	m := map[string]int{
		"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5,
		"SIGABRT": 6, "SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10,
		"SIGSEGV": 11, "SIGUSR2": 12, "SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15,
		"SIGSTKFLT": 16, "SIGCHLD": 17, "SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20,
		"SIGTTIN": 21, "SIGTTOU": 22, "SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25,
		"SIGVTALRM": 26, "SIGPROF": 27, "SIGWINCH": 28, "SIGIO": 29, "SIGPWR": 30,
		"SIGSYS": 31, "SIGRTMIN": 34, "SIGRTMAX": 64,
	}
	for i := 1; i <= 15; i++ {
		m["SIGRTMIN+"+strconv.Itoa(i)] = 34 + i
	}
	for i := 1; i <= 14; i++ {
		m["SIGRTMAX-"+strconv.Itoa(i)] = 64 - i
	}
	return m
}()

// ValidSignal returns the number of a signal a connection may send, by
// its name as Piston spells it ("SIGINT", "SIGRTMIN+1"), and whether the
// name is one.
func ValidSignal(name string) (int, bool) {
	n, ok := signals[name]
	return n, ok
}

// Connection is an execution over /v1/connect, from Client.Connect. Next
// gives its events; Stdin, CloseStdin and Signal reach its run. Next may
// be called from one goroutine while another sends.
type Connection struct {
	conn *websocket.Conn
	over atomic.Bool // the done or error event came
}

// connectReadLimit bounds one event: the done event holds the whole
// response, every stage's output within runtimed's maximum output limit.
const connectReadLimit = 64 << 20

// Connect starts req over /v1/connect. A non-nil error is an *Error when
// runtimed refused the connection itself (a token, a rate); a request it
// refuses is an error event, the first and last that Next gives.
func (c *Client) Connect(ctx context.Context, req *RunRequest) (*Connection, error) {
	return c.connect(ctx, "/v1/connect", req)
}

// ConnectSession starts a run in the session id over its connect
// endpoint, as Connect does. req carries the run's files, stdin, args,
// limits and deadline; its language, if set, must be the session's.
func (c *Client) ConnectSession(ctx context.Context, id string, req *RunRequest) (*Connection, error) {
	return c.connect(ctx, "/v1/sessions/"+url.PathEscape(id)+"/connect", req)
}

func (c *Client) connect(ctx context.Context, path string, req *RunRequest) (*Connection, error) {
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	conn, resp, err := websocket.Dial(ctx, c.base+path, &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			data, _ := io.ReadAll(resp.Body)
			return nil, errorAnswerOf(resp, data)
		}
		return nil, transportError(err)
	}
	conn.SetReadLimit(connectReadLimit)
	s := &Connection{conn: conn}
	if err := s.send(ctx, ConnectMessage{Type: ConnectRun, Request: req}); err != nil {
		_ = conn.CloseNow()
		return nil, err
	}
	return s, nil
}

// Next returns the next event. After the done or error event, the last,
// it returns io.EOF.
func (s *Connection) Next(ctx context.Context) (*Event, error) {
	if s.over.Load() {
		return nil, io.EOF
	}
	_, data, err := s.conn.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("runtimed closed the connection before the execution's end: %d %s", ce.Code, ce.Reason)
		}
		return nil, err
	}
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
		return nil, fmt.Errorf("decode an event: %w", err)
	}
	if ev.Event == EventDone || ev.Event == EventError {
		s.over.Store(true)
	}
	return &ev, nil
}

// Stdin writes data to the run's stdin.
func (s *Connection) Stdin(ctx context.Context, data string) error {
	return s.send(ctx, ConnectMessage{Type: ConnectStdin, Data: data})
}

// CloseStdin ends the run's stdin.
func (s *Connection) CloseStdin(ctx context.Context) error {
	return s.send(ctx, ConnectMessage{Type: ConnectStdinClose})
}

// Signal sends the signal named name ("SIGINT") to the run.
func (s *Connection) Signal(ctx context.Context, name string) error {
	return s.send(ctx, ConnectMessage{Type: ConnectSignal, Signal: name})
}

// Close closes the connection; an execution still under way stops.
func (s *Connection) Close() error {
	if s.over.Load() {
		return s.conn.CloseNow()
	}
	return s.conn.Close(websocket.StatusNormalClosure, "")
}

func (s *Connection) send(ctx context.Context, m ConnectMessage) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return s.conn.Write(ctx, websocket.MessageText, data)
}
