package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
)

// fakeDaemon answers /v1/runtimes and answers /v1/run with resp, keeping
// the request it got.
func fakeDaemon(t *testing.T, resp api.RunResponse, got *api.RunRequest) *api.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/runtimes":
			_ = json.NewEncoder(w).Encode(api.RuntimesResponse{Runtimes: []api.Runtime{{Language: "python", Extension: ".py"}}})
		case "/v1/run":
			if err := json.NewDecoder(r.Body).Decode(got); err != nil {
				t.Error(err)
			}
			_ = json.NewEncoder(w).Encode(resp)
		}
	}))
	t.Cleanup(srv.Close)
	return api.NewClient(srv.URL, "")
}

func TestRunFilesExitCodes(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "main.py")
	lib := filepath.Join(dir, "pkg", "lib.py")
	if err := os.MkdirAll(filepath.Dir(lib), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{main: "print(1)", lib: "x = 1"} {
		if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		status api.Status
		exit   int
		want   int
		reason string
	}{
		{api.StatusOK, 0, 0, ""},
		{api.StatusRuntimeError, 3, 3, ""},
		{api.StatusTimeout, 137, 124, "timed out"},
		{api.StatusMemoryLimit, 137, 137, "memory limit"},
		{api.StatusOutputLimit, 137, 125, "output limit"},
		{api.StatusCompileError, 0, 1, "compile error"},
	} {
		t.Run(string(tc.status), func(t *testing.T) {
			var got api.RunRequest
			cl := fakeDaemon(t, api.RunResponse{Status: tc.status, Run: &api.StageResult{Status: tc.status, ExitCode: tc.exit, Stdout: "out", Stderr: "err"}}, &got)
			var stdout, stderr bytes.Buffer
			code, err := runFiles(context.Background(), cl, runOptions{Version: "3.x", Files: []string{main, lib}, Args: []string{"a"}}, strings.NewReader(""), &stdout, &stderr)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Fatalf("exit %d, want %d", code, tc.want)
			}
			if stdout.String() != "out" || !strings.HasPrefix(stderr.String(), "err") || !strings.Contains(stderr.String(), tc.reason) {
				t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
			}
			if got.Language != "" || got.Version != "3.x" || len(got.Files) != 2 || got.Files[0].Name != "main.py" || got.Files[1].Name != "pkg/lib.py" || got.Args[0] != "a" {
				t.Fatalf("request %+v", got)
			}
		})
	}
}

func TestRunFilesRefusedRequest(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(400)
		_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: api.CodeLimitExceeded, Message: "limits.cpu too high", Field: "limits.cpu"}})
	}))
	defer srv.Close()
	f := filepath.Join(t.TempDir(), "a.py")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, err := runFiles(context.Background(), api.NewClient(srv.URL, ""), runOptions{Language: "python", Files: []string{f}}, nil, &bytes.Buffer{}, &bytes.Buffer{})
	if code != exitUsage || err == nil || !strings.Contains(err.Error(), "limits.cpu") {
		t.Fatalf("exit %d err %v", code, err)
	}
}

// notifyingWriter is a buffer that says when something is written to it.
type notifyingWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func (w *notifyingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.written <- struct{}{}:
	default:
	}
	return w.buf.Write(p)
}

func (w *notifyingWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// The program's output is printed as it comes: the daemon sends the rest
// of the stream only once the first piece is on runtimectl's stdout.
func TestRunFilesPrintsOutputAsItComes(t *testing.T) {
	stdout := &notifyingWriter{written: make(chan struct{}, 1)}
	var stderr bytes.Buffer
	run := api.StageResult{Status: api.StatusRuntimeError, ExitCode: 3, Stdout: "first\nsecond\n", Stderr: "oops\n"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept"), api.ContentTypeNDJSON) {
			t.Errorf("Accept %q", r.Header.Get("Accept"))
		}
		w.Header().Set("Content-Type", api.ContentTypeNDJSON)
		enc := json.NewEncoder(w)
		send := func(ev api.Event) {
			_ = enc.Encode(ev)
			_ = http.NewResponseController(w).Flush()
		}
		send(api.Event{Event: api.EventStage, Stage: "run"})
		send(api.Event{Event: api.EventStdout, Stage: "run", Data: "first\n"})
		select {
		case <-stdout.written:
		case <-time.After(10 * time.Second):
			t.Error("the first output was not printed before the run ended")
		}
		send(api.Event{Event: api.EventStderr, Stage: "run", Data: "oops\n"})
		send(api.Event{Event: api.EventStdout, Stage: "run", Data: "second\n"})
		send(api.Event{Event: api.EventResult, Stage: "run", Result: &run})
		send(api.Event{Event: api.EventDone, Response: &api.RunResponse{Language: "python", Status: run.Status, Run: &run}})
	}))
	defer srv.Close()
	f := filepath.Join(t.TempDir(), "a.py")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, err := runFiles(context.Background(), api.NewClient(srv.URL, ""), runOptions{Language: "python", Files: []string{f}}, nil, stdout, &stderr)
	if err != nil || code != 3 {
		t.Fatalf("exit %d, %v", code, err)
	}
	// Printed once, as it came; not again at the end.
	if stdout.String() != "first\nsecond\n" || stderr.String() != "oops\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

// With --json the result is printed whole at the end, and nothing else.
func TestRunFilesJSON(t *testing.T) {
	var got api.RunRequest
	cl := fakeDaemon(t, api.RunResponse{Status: api.StatusOK, Run: &api.StageResult{Status: api.StatusOK, Stdout: "out"}}, &got)
	f := filepath.Join(t.TempDir(), "a.py")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code, err := runFiles(context.Background(), cl, runOptions{Language: "python", Files: []string{f}, JSON: true}, nil, &stdout, &stderr)
	var resp api.RunResponse
	if err != nil || code != 0 || json.Unmarshal(stdout.Bytes(), &resp) != nil || resp.Run.Stdout != "out" || stderr.Len() != 0 {
		t.Fatalf("exit %d, %v: stdout %q stderr %q", code, err, stdout.String(), stderr.String())
	}
}
