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
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/runtimed/runtimed/pkg/api"
)

// fakeConnectDaemon plays /v1/connect: a program that answers each line
// of stdin in upper case, on stdout as it comes, and exits 4 at the
// stdin's end; python only, other languages are refused.
func fakeConnectDaemon(t *testing.T) *api.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = conn.CloseNow() }()
		ctx := r.Context()
		send := func(ev api.Event) {
			data, _ := json.Marshal(ev)
			_ = conn.Write(ctx, websocket.MessageText, data)
		}
		var out string
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			var m api.ConnectMessage
			_ = json.Unmarshal(data, &m)
			switch m.Type {
			case api.ConnectRun:
				if m.Request.Language != "python" {
					send(api.Event{Event: api.EventError, Error: &api.Error{Code: api.CodeUnknownLanguage, Message: "unknown language"}})
					_ = conn.Close(api.CloseError, string(api.CodeUnknownLanguage))
					return
				}
				send(api.Event{Event: api.EventStage, Stage: "run"})
				send(api.Event{Event: api.EventStderr, Stage: "run", Data: "ready\n"})
			case api.ConnectStdin:
				if !strings.HasSuffix(m.Data, "\n") {
					t.Errorf("stdin %q is not a line", m.Data)
				}
				out += strings.ToUpper(m.Data)
				send(api.Event{Event: api.EventStdout, Stage: "run", Data: strings.ToUpper(m.Data)})
			case api.ConnectStdinClose:
				res := api.StageResult{Status: api.StatusRuntimeError, ExitCode: 4, Stdout: out}
				send(api.Event{Event: api.EventResult, Stage: "run", Result: &res})
				send(api.Event{Event: api.EventDone, Response: &api.RunResponse{Status: api.StatusRuntimeError, Run: &res}})
				_ = conn.Close(websocket.StatusNormalClosure, "")
				return
			case api.ConnectSignal:
			}
		}
	}))
	t.Cleanup(srv.Close)
	return api.NewClient(srv.URL, "")
}

func TestRunInteractive(t *testing.T) {
	cl := fakeConnectDaemon(t)
	main := filepath.Join(t.TempDir(), "main.py")
	if err := os.WriteFile(main, []byte("print(1)"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	opts := runOptions{Language: "python", Files: []string{main}, Interactive: true}
	code, err := runFiles(ctx, cl, opts, strings.NewReader("one\ntwo\n"), &stdout, &stderr)
	if err != nil || code != 4 || stdout.String() != "ONE\nTWO\n" || stderr.String() != "ready\n" {
		t.Fatalf("exit %d, %v; stdout %q, stderr %q", code, err, stdout.String(), stderr.String())
	}

	opts.Language = "cobol"
	code, err = runFiles(ctx, cl, opts, strings.NewReader(""), &stdout, &stderr)
	if code != exitUsage || err == nil || !strings.Contains(err.Error(), "unknown language") {
		t.Fatalf("refused: exit %d, %v", code, err)
	}
}
