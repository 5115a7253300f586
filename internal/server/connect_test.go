package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/pkg/api"
)

// echoExecutor plays an interactive program: a compile stage for a
// compiled language, then a run that answers each piece of stdin in upper
// case, ends at the stdin's end (exit 0) or at a signal (killed by it).
type echoExecutor struct {
	mu        sync.Mutex
	plans     []execution.Plan
	err       error         // if set, Execute fails with it after the run starts
	cancelled chan struct{} // closed when an execution's context ended it
	once      sync.Once
}

func newEchoExecutor() *echoExecutor { return &echoExecutor{cancelled: make(chan struct{})} }

func (f *echoExecutor) Execute(ctx context.Context, _ *logrus.Entry, p execution.Plan) (*api.RunResponse, error) {
	if p.Admission != nil {
		leave, err := p.Admission.Enter(ctx)
		if err != nil {
			return nil, err
		}
		defer leave()
	}
	f.mu.Lock()
	f.plans = append(f.plans, p)
	f.mu.Unlock()
	resp := &api.RunResponse{Language: p.Language.Name, Version: p.Language.Version}
	ev := p.Events
	if p.Language.Compiled() {
		ev.StageStarted("compile", -1)
		ev.Output("compile", -1, "stderr", []byte("warning: x\n"))
		res := api.StageResult{Status: api.StatusOK}
		ev.StageEnded("compile", -1, res)
		resp.Compile = &res
	}
	ev.StageStarted("run", -1)
	if f.err != nil {
		return nil, f.err
	}
	if p.Stdin == "flood" {
		for chunk := bytes.Repeat([]byte("x"), 64<<10); ; {
			ev.Output("run", -1, "stdout", chunk)
			if ctx.Err() != nil {
				f.once.Do(func() { close(f.cancelled) })
				return nil, ctx.Err()
			}
		}
	}
	if p.Stdin != "" {
		ev.Output("run", -1, "stdout", []byte(strings.ToUpper(p.Stdin)))
	}
	var out bytes.Buffer
	res := api.StageResult{Status: api.StatusOK}
	for done := false; !done; {
		select {
		case b, ok := <-p.Input:
			if !ok {
				done = true
				break
			}
			up := bytes.ToUpper(b)
			out.Write(up)
			ev.Output("run", -1, "stdout", up)
		case sig := <-p.Signals:
			res = api.StageResult{Status: api.StatusRuntimeError, ExitCode: 128 + int(sig), Signal: unix.SignalName(sig)}
			done = true
		case <-ctx.Done():
			f.once.Do(func() { close(f.cancelled) })
			return nil, ctx.Err()
		}
	}
	res.Stdout = out.String()
	ev.StageEnded("run", -1, res)
	resp.Run, resp.Status = &res, res.Status
	return resp, nil
}

func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

func dial(t *testing.T, srv *httptest.Server, path string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, wsURL(srv, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	return conn
}

func write(t *testing.T, conn *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// read returns the next message, or "" and the close status and reason.
func read(t *testing.T, conn *websocket.Conn) (string, websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, data, err := conn.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("read: %v", err)
		}
		return "", ce.Code, ce.Reason
	}
	return string(data), -1, ""
}

// expect reads the messages want and then, unless code is -1, the close
// with code.
func expect(t *testing.T, conn *websocket.Conn, code websocket.StatusCode, want ...string) {
	t.Helper()
	for _, w := range want {
		msg, got, reason := read(t, conn)
		if msg != w {
			t.Fatalf("message %s (close %d %q), want %s", msg, got, reason, w)
		}
	}
	if code == -1 {
		return
	}
	msg, got, reason := read(t, conn)
	if got != code {
		t.Fatalf("got %s (close %d %q), want close %d", msg, got, reason, code)
	}
}

// readStage reads messages up to the run stage's start.
func readStage(t *testing.T, conn *websocket.Conn) {
	t.Helper()
	for {
		msg, code, reason := read(t, conn)
		if strings.Contains(msg, `"stage":"run"`) && !strings.Contains(msg, `"exit"`) {
			return
		}
		if msg == "" {
			t.Fatalf("closed %d %q before the run", code, reason)
		}
	}
}

const pistonInit = `{"type":"init","language":"python","version":"*","files":[{"content":"import sys"}],"stdin":"discarded","run_timeout":2000}`

func TestPistonConnect(t *testing.T) {
	executor := newEchoExecutor()
	srv := newTestServer(t, executor, nil)
	for _, path := range []string{"/api/v2/connect", "/api/v2/piston/connect"} {
		t.Run(path, func(t *testing.T) {
			conn := dial(t, srv, path)
			write(t, conn, pistonInit)
			expect(t, conn, -1, `{"type":"runtime","language":"python","version":"3.13.5"}`, `{"type":"stage","stage":"run"}`)
			write(t, conn, `{"type":"data","stream":"stdin","data":"hello\n"}`)
			expect(t, conn, -1, `{"type":"data","stream":"stdout","data":"HELLO\n"}`)
			write(t, conn, `{"type":"signal","signal":"SIGKILL"}`)
			expect(t, conn, api.CloseJobCompleted, `{"type":"exit","stage":"run","code":null,"signal":"SIGKILL"}`)
		})
	}
	plan := executor.plans[0]
	if plan.Stdin != "" || plan.Limits.WallTimeMS != 2000 || plan.Files[0].Name != "file0.code" {
		t.Fatalf("plan: stdin %q, limits %+v, files %+v", plan.Stdin, plan.Limits, plan.Files)
	}
}

func TestPistonConnectCompile(t *testing.T) {
	srv := newTestServer(t, newEchoExecutor(), nil)
	conn := dial(t, srv, "/api/v2/connect")
	write(t, conn, `{"type":"init","language":"c","version":"*","files":[{"content":"int main(){}"}]}`)
	expect(t, conn, -1,
		`{"type":"runtime","language":"c","version":"14.2.0"}`,
		`{"type":"stage","stage":"compile"}`,
		`{"type":"data","stream":"stderr","data":"warning: x\n"}`,
		`{"type":"exit","stage":"compile","code":0,"signal":null}`,
		`{"type":"stage","stage":"run"}`)
	write(t, conn, `{"type":"signal","signal":"SIGINT"}`)
	expect(t, conn, api.CloseJobCompleted, `{"type":"exit","stage":"run","code":null,"signal":"SIGINT"}`)
}

// Every close code of Piston's, with its reason.
func TestPistonConnectCloseCodes(t *testing.T) {
	srv := newTestServer(t, newEchoExecutor(), nil)
	cases := []struct {
		name   string
		msgs   []string
		code   websocket.StatusCode
		reason string
		want   []string // messages after the runtime and stage ones
	}{
		{"already initialised", []string{pistonInit, pistonInit}, 4000, "Already Initialized", nil},
		{"notified error", []string{`{"type":"init","language":"cobol","version":"*","files":[{"content":""}]}`}, 4002, "Notified Error",
			[]string{`{"type":"error","message":"cobol-* runtime is unknown"}`}},
		{"not JSON", []string{`{"type":`}, 4002, "Notified Error", nil},
		{"data before init", []string{`{"type":"data","stream":"stdin","data":"x"}`}, 4003, "Not yet initialized", nil},
		{"signal before init", []string{`{"type":"signal","signal":"SIGKILL"}`}, 4003, "Not yet initialized", nil},
		{"not stdin", []string{pistonInit, `{"type":"data","stream":"stdout","data":"x"}`}, 4004, "Can only write to stdin", nil},
		{"invalid signal", []string{pistonInit, `{"type":"signal","signal":"SIGFOO"}`}, 4005, "Invalid signal", nil},
		{"completed", []string{pistonInit, `{"type":"signal","signal":"SIGTERM"}`}, 4999, "Job Completed",
			[]string{`{"type":"exit","stage":"run","code":null,"signal":"SIGTERM"}`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, srv, "/api/v2/connect")
			for i, m := range tc.msgs {
				write(t, conn, m)
				if m == pistonInit && i < len(tc.msgs)-1 {
					readStage(t, conn) // signals reach the run stage only
				}
			}
			var got []string
			for {
				msg, code, reason := read(t, conn)
				if msg == "" {
					if code != tc.code || reason != tc.reason {
						t.Fatalf("close %d %q, want %d %q (messages %q)", code, reason, tc.code, tc.reason, got)
					}
					break
				}
				if !strings.Contains(msg, `"runtime"`) && !strings.Contains(msg, `"stage"`) || strings.Contains(msg, `"exit"`) {
					got = append(got, msg)
				}
			}
			if tc.want != nil && strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("messages %q, want %q", got, tc.want)
			}
		})
	}
}

// A connection without init closes after a second; messages of no known
// type do not keep it open.
func TestConnectInitTimeout(t *testing.T) {
	srv := newTestServer(t, newEchoExecutor(), nil)
	for _, path := range []string{"/api/v2/connect", "/v1/connect"} {
		t.Run(path, func(t *testing.T) {
			start := time.Now()
			conn := dial(t, srv, path)
			if path != "/v1/connect" {
				write(t, conn, `{"type":"ping"}`)
			}
			msg, code, _ := read(t, conn)
			if code != api.CloseInitTimeout {
				t.Fatalf("%q close %d, want 4001", msg, code)
			}
			if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
				t.Fatalf("closed after %v", d)
			}
		})
	}
}

// A client that goes away mid-run stops the execution.
func TestConnectClientGoneCancels(t *testing.T) {
	for _, tc := range []struct{ path, msg string }{
		{"/api/v2/connect", pistonInit},
		{"/v1/connect", `{"type":"run","request":{"language":"python","files":[{"name":"a.py","content":""}]}}`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			executor := newEchoExecutor()
			srv := newTestServer(t, executor, nil)
			conn := dial(t, srv, tc.path)
			write(t, conn, tc.msg)
			readStage(t, conn)
			_ = conn.CloseNow()
			select {
			case <-executor.cancelled:
			case <-time.After(5 * time.Second):
				t.Fatal("the execution went on after its client left")
			}
		})
	}
}

// A client that stops reading is gone: its execution stops.
func TestConnectClientStopsReading(t *testing.T) {
	d := connectWriteTimeout
	t.Cleanup(func() { connectWriteTimeout = d }) // after the server's close
	connectWriteTimeout = 200 * time.Millisecond
	executor := newEchoExecutor()
	srv := newTestServer(t, executor, nil)
	conn := dial(t, srv, "/v1/connect")
	write(t, conn, `{"type":"run","request":{"language":"python","files":[{"name":"a.py","content":""}],"stdin":"flood"}}`)
	select {
	case <-executor.cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("the execution went on while its client read nothing")
	}
}

// A platform failure after the run began is an error message, then 4002.
func TestConnectExecutionError(t *testing.T) {
	executor := newEchoExecutor()
	executor.err = errors.New("containerd vanished")
	srv := newTestServer(t, executor, nil)
	conn := dial(t, srv, "/api/v2/connect")
	write(t, conn, pistonInit)
	readStage(t, conn)
	msg, _, _ := read(t, conn)
	if !strings.HasPrefix(msg, `{"type":"error","message":"the sandbox failed; runtimed's log has the details under request id `) {
		t.Fatalf("message %s", msg)
	}
	expect(t, conn, api.CloseError)

	conn = dial(t, srv, "/v1/connect")
	write(t, conn, `{"type":"run","request":{"language":"python","files":[{"name":"a.py","content":""}]}}`)
	read(t, conn)
	msg, _, _ = read(t, conn)
	var ev api.Event
	if err := json.Unmarshal([]byte(msg), &ev); err != nil || ev.Event != api.EventError || ev.Error.Code != api.CodeInternal {
		t.Fatalf("event %s", msg)
	}
	_, code, reason := read(t, conn)
	if code != api.CloseError || reason != "internal_error" {
		t.Fatalf("close %d %q", code, reason)
	}
}

func TestConnect(t *testing.T) {
	executor := newEchoExecutor()
	srv := newTestServer(t, executor, nil)
	conn := dial(t, srv, "/v1/connect")
	write(t, conn, `{"type":"run","request":{"language":"c","files":[{"name":"a.c","content":""}],"stdin":"first\n"}}`)
	expect(t, conn, -1,
		`{"event":"stage","stage":"compile"}`,
		`{"event":"stderr","stage":"compile","data":"warning: x\n"}`)
	msg, _, _ := read(t, conn)
	var ev api.Event
	if err := json.Unmarshal([]byte(msg), &ev); err != nil || ev.Event != api.EventResult || ev.Stage != "compile" || ev.Result.Status != api.StatusOK {
		t.Fatalf("event %s", msg)
	}
	expect(t, conn, -1,
		`{"event":"stage","stage":"run"}`,
		`{"event":"stdout","stage":"run","data":"FIRST\n"}`)
	write(t, conn, `{"type":"stdin","data":"second\n"}`)
	expect(t, conn, -1, `{"event":"stdout","stage":"run","data":"SECOND\n"}`)
	write(t, conn, `{"type":"stdin_close"}`)
	msg, _, _ = read(t, conn)
	if err := json.Unmarshal([]byte(msg), &ev); err != nil || ev.Event != api.EventResult || ev.Result.Status != api.StatusOK {
		t.Fatalf("event %s", msg)
	}
	msg, _, _ = read(t, conn)
	if err := json.Unmarshal([]byte(msg), &ev); err != nil || ev.Event != api.EventDone || ev.Response.Run.Stdout != "SECOND\n" || ev.Response.Compile == nil {
		t.Fatalf("event %s", msg)
	}
	expect(t, conn, websocket.StatusNormalClosure)
}

func TestConnectSignal(t *testing.T) {
	srv := newTestServer(t, newEchoExecutor(), nil)
	conn := dial(t, srv, "/v1/connect")
	write(t, conn, `{"type":"run","request":{"language":"python","files":[{"name":"a.py","content":""}]}}`)
	read(t, conn)
	write(t, conn, `{"type":"signal","signal":"SIGINT"}`)
	msg, _, _ := read(t, conn)
	var ev api.Event
	if err := json.Unmarshal([]byte(msg), &ev); err != nil || ev.Event != api.EventResult || ev.Result.Signal != "SIGINT" || ev.Result.ExitCode != 128+int(syscall.SIGINT) {
		t.Fatalf("event %s", msg)
	}
}

func TestConnectCloseCodes(t *testing.T) {
	srv := newTestServer(t, newEchoExecutor(), nil)
	const run = `{"type":"run","request":{"language":"python","files":[{"name":"a.py","content":""}]}}`
	const tests = `{"type":"run","request":{"language":"python","files":[{"name":"a.py","content":""}],"tests":[{"stdin":"1"}]}}`
	cases := []struct {
		name   string
		msgs   []string
		code   websocket.StatusCode
		reason string
		errors []api.ErrorCode // the error events' codes
	}{
		{"second run", []string{run, run}, 4000, "", nil},
		{"unknown language", []string{`{"type":"run","request":{"language":"cobol","files":[{"name":"a","content":""}]}}`}, 4002, "unknown_language", []api.ErrorCode{api.CodeUnknownLanguage}},
		{"unknown field", []string{`{"type":"run","request":{"language":"python","files":[{"name":"a.py","content":""}],"x":1}}`}, 4002, "invalid_request", []api.ErrorCode{api.CodeInvalidRequest}},
		{"not JSON", []string{`{`}, 4002, "invalid_json", []api.ErrorCode{api.CodeInvalidJSON}},
		{"unknown type", []string{`{"type":"eval"}`}, 4002, "invalid_request", []api.ErrorCode{api.CodeInvalidRequest}},
		{"stdin before run", []string{`{"type":"stdin","data":"x"}`}, 4003, "", nil},
		{"signal before run", []string{`{"type":"signal","signal":"SIGINT"}`}, 4003, "", nil},
		{"invalid signal", []string{run, `{"type":"signal","signal":"KILL"}`}, 4005, "", nil},
		{"stdin with tests", []string{tests, `{"type":"stdin","data":"x"}`}, 4002, "invalid_request", []api.ErrorCode{api.CodeInvalidRequest}},
		{"stdin after its close", []string{run, `{"type":"stdin_close"}`, `{"type":"stdin","data":"x"}`}, -2, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := dial(t, srv, "/v1/connect")
			for _, m := range tc.msgs {
				write(t, conn, m)
			}
			var errs []api.ErrorCode
			for {
				msg, code, reason := read(t, conn)
				if msg == "" {
					if tc.code != -2 && (code != tc.code || tc.reason != "" && reason != tc.reason) {
						t.Fatalf("close %d %q, want %d %q", code, reason, tc.code, tc.reason)
					}
					break
				}
				var ev api.Event
				if err := json.Unmarshal([]byte(msg), &ev); err != nil {
					t.Fatal(err)
				}
				if ev.Event == api.EventError {
					errs = append(errs, ev.Error.Code)
				}
			}
			if len(tc.errors) > 0 && (len(errs) != 1 || errs[0] != tc.errors[0]) {
				t.Fatalf("errors %v, want %v", errs, tc.errors)
			}
		})
	}
}

// The handshake goes through the token check of the TCP listener and
// refuses pages of another origin.
func TestConnectHandshake(t *testing.T) {
	executor := newEchoExecutor()
	srv, secret := tcpServer(t, executor, nil)
	ctx := context.Background()
	_, resp, err := websocket.Dial(ctx, wsURL(srv, "/v1/connect"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a token: %v %v", resp, err)
	}
	auth := http.Header{"Authorization": {"Bearer " + secret}}
	_, resp, err = websocket.Dial(ctx, wsURL(srv, "/v1/connect"), &websocket.DialOptions{HTTPHeader: http.Header{
		"Authorization": {"Bearer " + secret}, "Origin": {"https://evil.example"},
	}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("from another origin: %v %v", resp, err)
	}
	conn, _, err := websocket.Dial(ctx, wsURL(srv, "/api/v2/connect"), &websocket.DialOptions{HTTPHeader: auth})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.CloseNow() }()
	write(t, conn, pistonInit)
	if msg, _, _ := read(t, conn); !strings.Contains(msg, `"runtime"`) {
		t.Fatalf("message %s", msg)
	}
}

// A message over the body limit closes the connection; stdin over the
// stdin limit is an error.
func TestConnectSizeLimits(t *testing.T) {
	srv := newTestServer(t, newEchoExecutor(), func(c *config.Config) {
		c.Requests.MaxBodyBytes = 64 << 10
		c.Requests.MaxStdinBytes = 8
	})
	conn := dial(t, srv, "/v1/connect")
	write(t, conn, `{"type":"run","request":{"language":"python","files":[{"name":"a.py","content":"`+strings.Repeat("x", 64<<10)+`"}]}}`)
	if msg, code, _ := read(t, conn); code != websocket.StatusMessageTooBig {
		t.Fatalf("%q close %d, want 1009", msg, code)
	}

	conn = dial(t, srv, "/api/v2/connect")
	write(t, conn, pistonInit[:len(pistonInit)-len(`,"stdin":"discarded","run_timeout":2000}`)]+`}`)
	readStage(t, conn)
	write(t, conn, `{"type":"data","stream":"stdin","data":"12345"}`)
	expect(t, conn, -1, `{"type":"data","stream":"stdout","data":"12345"}`)
	write(t, conn, `{"type":"data","stream":"stdin","data":"6789"}`)
	expect(t, conn, api.CloseError, `{"type":"error","message":"the stdin sent is more than the maximum of 8 bytes"}`)
}
