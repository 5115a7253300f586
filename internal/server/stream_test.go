package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/pkg/api"
)

// scriptedExecutor plays an execution: after the admission, play tells
// the plan's Events what happens, as the executor would, and answers.
type scriptedExecutor struct {
	calls atomic.Int32
	play  func(ctx context.Context, p execution.Plan, ev execution.Events) (*api.RunResponse, error)
}

func (f *scriptedExecutor) Execute(ctx context.Context, _ *logrus.Entry, p execution.Plan) (*api.RunResponse, error) {
	if p.Admission != nil {
		leave, err := p.Admission.Enter(ctx)
		if err != nil {
			return nil, err
		}
		defer leave()
	}
	f.calls.Add(1)
	var ev execution.Events = nopEvents{}
	if p.Events != nil {
		ev = p.Events
	}
	return f.play(ctx, p, ev)
}

type nopEvents struct{}

func (nopEvents) StageStarted(string, int)                {}
func (nopEvents) Output(string, int, string, []byte)      {}
func (nopEvents) StageEnded(string, int, api.StageResult) {}

// streamServer is a server whose streams wait writeTimeout (if set) for
// the client to take a write.
func streamServer(t *testing.T, ex Executor, writeTimeout time.Duration, change func(*config.Config)) *httptest.Server {
	t.Helper()
	cfg := config.Default()
	if change != nil {
		change(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	s := New(cfg, ex, fakePlatform{}, metrics.New(), logrus.NewEntry(log))
	if writeTimeout > 0 {
		s.streamWriteTimeout = writeTimeout
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

// postStream posts a run asking for a stream.
func postStream(t *testing.T, ctx context.Context, srv *httptest.Server, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/run", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", api.ContentTypeNDJSON)
	req.Header.Set("X-Request-Id", "req-42")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// readLines reads a stream's lines, each an event.
func readLines(t *testing.T, r io.Reader) ([]api.Event, [][]byte) {
	t.Helper()
	var evs []api.Event
	var lines [][]byte
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var ev api.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Bytes(), err)
		}
		evs = append(evs, ev)
		lines = append(lines, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs, lines
}

// describe is an event in a word or three: its kind, stage, test, data.
func describe(ev api.Event) string {
	s := string(ev.Event)
	if ev.Stage != "" {
		s += " " + ev.Stage
	}
	if ev.Test != nil {
		s += " " + string(rune('0'+*ev.Test))
	}
	if ev.Data != "" {
		s += " " + ev.Data
	}
	if ev.Result != nil {
		s += " " + string(ev.Result.Status)
	}
	return s
}

func describeAll(evs []api.Event) string {
	var out []string
	for _, ev := range evs {
		out = append(out, describe(ev))
	}
	return strings.Join(out, " | ")
}

// judged plays a compiled language with tests: a compile with a warning,
// then each test printing 3.
func judged(_ context.Context, p execution.Plan, ev execution.Events) (*api.RunResponse, error) {
	ev.StageStarted("compile", -1)
	ev.Output("compile", -1, "stderr", []byte("warning\n"))
	compile := api.StageResult{Status: api.StatusOK, Stderr: "warning\n", Output: "warning\n", WallTimeMS: 300}
	ev.StageEnded("compile", -1, compile)
	resp := &api.RunResponse{Language: p.Language.Name, Version: p.Language.Version, Status: api.StatusOK, Compile: &compile, Summary: map[api.Status]int{}}
	for i := range p.Tests {
		ev.StageStarted("test", i)
		ev.Output("test", i, "stdout", []byte("3\n"))
		res := api.StageResult{Status: api.StatusOK, Stdout: "3\n", Output: "3\n", WallTimeMS: 5}
		ev.StageEnded("test", i, res)
		resp.Tests = append(resp.Tests, res)
		resp.Summary[res.Status]++
	}
	return resp, nil
}

const judgedBody = `{"language":"c","files":[{"name":"a.c","content":"int main(){}"}],"tests":[{"stdin":"1 2"},{"stdin":"2 1"}]}`

func TestStreamEventOrder(t *testing.T) {
	srv := streamServer(t, &scriptedExecutor{play: judged}, 0, nil)
	resp := postStream(t, context.Background(), srv, judgedBody)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != api.ContentTypeNDJSON {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	evs, lines := readLines(t, resp.Body)
	want := "stage compile | stderr compile warning\n | result compile ok | " +
		"stage test 0 | stdout test 0 3\n | result test 0 ok | " +
		"stage test 1 | stdout test 1 3\n | result test 1 ok | done"
	if got := describeAll(evs); got != want {
		t.Fatalf("events\n%s\nwant\n%s", got, want)
	}
	if r := evs[2].Result; r.WallTimeMS != 300 || r.Stderr != "warning\n" {
		t.Fatalf("compile result %+v", r)
	}

	// The done event's response is the body without streaming, byte for
	// byte (without `output`, as /v1 answers).
	var done struct {
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(lines[len(lines)-1], &done); err != nil {
		t.Fatal(err)
	}
	status, plain := post(t, srv, judgedBody)
	if status != http.StatusOK {
		t.Fatalf("without streaming: %d %s", status, plain)
	}
	if !bytes.Equal(done.Response, bytes.TrimSpace(plain)) {
		t.Fatalf("done's response\n%s\nthe answer without streaming\n%s", done.Response, plain)
	}
	if bytes.Contains(lines[len(lines)-1], []byte(`"output"`)) {
		t.Fatalf("the done event has output: %s", lines[len(lines)-1])
	}
}

// Output comes as the program writes it: the first piece reaches the
// client while the program still runs.
func TestStreamOutputComesAsWritten(t *testing.T) {
	seen := make(chan struct{})
	ex := &scriptedExecutor{play: func(ctx context.Context, p execution.Plan, ev execution.Events) (*api.RunResponse, error) {
		ev.StageStarted("run", -1)
		ev.Output("run", -1, "stdout", []byte("first\n"))
		select {
		case <-seen:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			return nil, errors.New("the client never saw the first output")
		}
		ev.Output("run", -1, "stderr", []byte("second\n"))
		res := api.StageResult{Status: api.StatusOK, Stdout: "first\n", Stderr: "second\n"}
		ev.StageEnded("run", -1, res)
		return &api.RunResponse{Language: p.Language.Name, Version: p.Language.Version, Status: res.Status, Run: &res}, nil
	}}
	srv := streamServer(t, ex, 0, nil)
	resp := postStream(t, context.Background(), srv, `{"language":"python","files":[{"name":"a.py","content":""}]}`)
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var got []api.Event
	for {
		var ev api.Event
		if err := dec.Decode(&ev); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
		if ev.Event == api.EventStdout {
			close(seen)
		}
	}
	want := "stage run | stdout run first\n | stderr run second\n | result run ok | done"
	if describeAll(got) != want {
		t.Fatalf("events\n%s\nwant\n%s", describeAll(got), want)
	}
	if r := got[len(got)-1].Response; r == nil || r.Run == nil || r.Run.Stdout != "first\n" || r.Run.Stderr != "second\n" {
		t.Fatalf("done %+v", got[len(got)-1])
	}
}

// Pieces of output not yet sent join: what the client gets is the same.
func TestEventQueueJoinsOutput(t *testing.T) {
	q := newEventQueue()
	buf := []byte("a")
	q.StageStarted("test", 1)
	q.Output("test", 1, "stdout", buf)
	buf[0] = 'b' // the caller's to reuse
	q.Output("test", 1, "stdout", buf)
	q.Output("test", 1, "stderr", []byte("e"))
	q.Output("test", 1, "stdout", []byte("c"))
	got := describeAll(q.take())
	if want := "stage test 1 | stdout test 1 ab | stderr test 1 e | stdout test 1 c"; got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	q.Output("test", 1, "stdout", []byte("d"))
	if got := describeAll(q.take()); got != "stdout test 1 d" {
		t.Fatalf("after a take: %s", got)
	}
}

// A request refused before anything ran is answered as without
// streaming: an HTTP error, nothing streamed.
func TestStreamRefusalsAreHTTPErrors(t *testing.T) {
	release := make(chan struct{})
	ex := &scriptedExecutor{play: func(ctx context.Context, p execution.Plan, ev execution.Events) (*api.RunResponse, error) {
		switch p.Files[0].Name {
		case "missing.py":
			return nil, fmt.Errorf("image runtimed.local/python:3.11: %w", sandbox.ErrImageMissing)
		case "broken.py":
			return nil, errors.New("create task: open /var/lib/runtimed/x: permission denied")
		}
		ev.StageStarted("run", -1)
		select {
		case <-release:
		case <-ctx.Done():
		}
		res := api.StageResult{Status: api.StatusOK}
		return &api.RunResponse{Status: res.Status, Run: &res}, nil
	}}
	srv := streamServer(t, ex, 0, func(c *config.Config) {
		c.Requests.MaxConcurrent = 1
		c.Requests.MaxQueued = 1
	})
	check := func(name, body string, status int, code api.ErrorCode) {
		t.Helper()
		resp := postStream(t, context.Background(), srv, body)
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var eb api.ErrorBody
		if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(data, &eb) != nil || eb.Error.Code != code {
			t.Errorf("%s: %d %s %s, want %d %s", name, resp.StatusCode, resp.Header.Get("Content-Type"), data, status, code)
		}
		if strings.Contains(string(data), "/var/lib") {
			t.Errorf("%s: a host path in the answer: %s", name, data)
		}
	}
	check("unknown language", `{"language":"cobol","files":[{"name":"a","content":""}]}`, 400, api.CodeUnknownLanguage)
	check("invalid", `{"language":"python","files":[]}`, 400, api.CodeInvalidRequest)
	check("image missing", `{"language":"python","files":[{"name":"missing.py","content":""}]}`, 503, api.CodeImageMissing)
	check("platform failure first", `{"language":"python","files":[{"name":"broken.py","content":""}]}`, 500, api.CodeInternal)

	// One runs, one waits: the third is busy.
	before := ex.calls.Load()
	bodies := make(chan string, 2)
	for range 2 {
		go func() {
			resp := postStream(t, context.Background(), srv, `{"language":"python","files":[{"name":"a.py","content":""}]}`)
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies <- string(data)
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for ex.calls.Load() < before+1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the second one queue
	check("busy", `{"language":"python","files":[{"name":"a.py","content":""}]}`, 503, api.CodeBusy)
	close(release)
	for range 2 {
		if b := <-bodies; !strings.Contains(b, `"event":"done"`) {
			t.Errorf("an admitted stream: %s", b)
		}
	}
}

// A platform failure after a stage started ends the stream with an error
// event, which says no more than a 500 would.
func TestStreamPlatformFailureIsAnErrorEvent(t *testing.T) {
	ex := &scriptedExecutor{play: func(_ context.Context, _ execution.Plan, ev execution.Events) (*api.RunResponse, error) {
		ev.StageStarted("run", -1)
		ev.Output("run", -1, "stdout", []byte("partial"))
		return nil, errors.New("copy box: open /var/lib/runtimed/runs/runtimed/rt-1f2e3d/x: no space left on device")
	}}
	srv := streamServer(t, ex, 0, nil)
	resp := postStream(t, context.Background(), srv, `{"language":"python","files":[{"name":"a.py","content":""}]}`)
	defer resp.Body.Close()
	evs, lines := readLines(t, resp.Body)
	if resp.StatusCode != http.StatusOK || describeAll(evs) != "stage run | stdout run partial | error" {
		t.Fatalf("%d: %s", resp.StatusCode, describeAll(evs))
	}
	last := evs[len(evs)-1]
	if last.Error == nil || last.Error.Code != api.CodeInternal || !strings.Contains(last.Error.Message, "req-42") {
		t.Fatalf("error event %s", lines[len(lines)-1])
	}
	for _, secret := range []string{"/var/lib", "rt-1f2e3d", "no space"} {
		if bytes.Contains(lines[len(lines)-1], []byte(secret)) {
			t.Errorf("the error event shows %q: %s", secret, lines[len(lines)-1])
		}
	}
}

// A client that goes away, or stops reading, stops its execution: the
// sandbox is not held for it.
func TestStreamClientGoneStopsTheExecution(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave func(cancel context.CancelFunc, body io.ReadCloser)
	}{
		{"disconnects", func(cancel context.CancelFunc, _ io.ReadCloser) { cancel() }},
		// It keeps the connection and reads nothing more: a write times
		// out (the stream's cause, or the connection's, whichever comes
		// first).
		{"stops reading", func(context.CancelFunc, io.ReadCloser) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stopped := make(chan error, 1)
			ex := &scriptedExecutor{play: func(ctx context.Context, _ execution.Plan, ev execution.Events) (*api.RunResponse, error) {
				ev.StageStarted("run", -1)
				chunk := bytes.Repeat([]byte("y\n"), 8<<10)
				give := time.After(20 * time.Second)
				for {
					ev.Output("run", -1, "stdout", chunk)
					select {
					case <-ctx.Done():
						stopped <- context.Cause(ctx)
						return nil, ctx.Err()
					case <-give:
						stopped <- nil
						return nil, errors.New("never stopped")
					case <-time.After(time.Millisecond):
					}
				}
			}}
			srv := streamServer(t, ex, 200*time.Millisecond, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp := postStream(t, ctx, srv, `{"language":"python","files":[{"name":"a.py","content":""}]}`)
			defer resp.Body.Close()
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			if err != nil || !strings.Contains(line, `"event":"stage"`) {
				t.Fatalf("first line %q: %v", line, err)
			}
			tc.leave(cancel, resp.Body)
			select {
			case cause := <-stopped:
				if !errors.Is(cause, context.Canceled) && !errors.Is(cause, errStoppedReading) {
					t.Fatalf("the execution stopped with %v", cause)
				}
			case <-time.After(25 * time.Second):
				t.Fatal("the execution was not stopped")
			}
		})
	}
}

func TestWantsStream(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"application/json"}, false},
		{[]string{"application/x-ndjson"}, true},
		{[]string{"application/json, application/x-ndjson;q=0.9"}, true},
		{[]string{"text/plain", "Application/X-NDJSON"}, true},
		{[]string{"application/x-ndjson;q=0"}, false},
		{[]string{"*/*"}, false},
	} {
		r := httptest.NewRequest(http.MethodPost, "/v1/run", nil)
		for _, a := range tc.accept {
			r.Header.Add("Accept", a)
		}
		if got := wantsStream(r); got != tc.want {
			t.Errorf("Accept %q: %v, want %v", tc.accept, got, tc.want)
		}
	}
}

// The Go client hears the server's events and gets the answer Run gets.
func TestStreamWithTheClient(t *testing.T) {
	srv := streamServer(t, &scriptedExecutor{play: judged}, 0, nil)
	cl := api.NewHTTPClient(srv.URL, "", srv.Client())
	var req api.RunRequest
	if err := json.Unmarshal([]byte(judgedBody), &req); err != nil {
		t.Fatal(err)
	}
	var evs []api.Event
	got, err := cl.RunStream(context.Background(), &req, func(ev api.Event) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err := cl.Run(context.Background(), &req)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) || len(evs) != 10 || evs[9].Event != api.EventDone {
		t.Fatalf("streamed %s (%d events), plain %s", g, len(evs), w)
	}
	_, err = cl.RunStream(context.Background(), &api.RunRequest{Language: "cobol", Files: []api.File{{Name: "a"}}}, nil)
	var aerr *api.Error
	if !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusBadRequest || aerr.Code != api.CodeUnknownLanguage {
		t.Fatalf("a refused stream: %v", err)
	}
}
