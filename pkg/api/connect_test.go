package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A fake /v1/connect: it checks the token and the run message, echoes a
// stdin message, and ends with done at the stdin's close.
func fakeConnect(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/connect" || r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(ErrorBody{Error: Error{Code: CodeUnauthorized, Message: "a valid bearer token is required"}})
			return
		}
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = conn.CloseNow() }()
		ctx := r.Context()
		send := func(ev Event) {
			data, _ := json.Marshal(ev)
			_ = conn.Write(ctx, websocket.MessageText, data)
		}
		var stdin string
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			var m ConnectMessage
			if err := json.Unmarshal(data, &m); err != nil {
				t.Errorf("message %s: %v", data, err)
				return
			}
			switch m.Type {
			case ConnectRun:
				if m.Request == nil || m.Request.Language != "python" {
					t.Errorf("run message %s", data)
				}
				send(Event{Event: EventStage, Stage: "run"})
			case ConnectStdin:
				stdin += m.Data
				send(Event{Event: EventStdout, Stage: "run", Data: m.Data})
			case ConnectSignal:
				if m.Signal != "SIGINT" {
					t.Errorf("signal %q", m.Signal)
				}
			case ConnectStdinClose:
				res := StageResult{Status: StatusOK, Stdout: stdin}
				send(Event{Event: EventResult, Stage: "run", Result: &res})
				send(Event{Event: EventDone, Response: &RunResponse{Status: StatusOK, Run: &res}})
				_ = conn.Close(websocket.StatusNormalClosure, "")
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestConnect(t *testing.T) {
	srv := fakeConnect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := NewClient(srv.URL, "wrong").Connect(ctx, &RunRequest{Language: "python"})
	var aerr *Error
	if !errors.As(err, &aerr) || aerr.Code != CodeUnauthorized || aerr.HTTPStatus != http.StatusUnauthorized {
		t.Fatalf("without the token: %v", err)
	}

	s, err := NewClient(srv.URL, "tok").Connect(ctx, &RunRequest{Language: "python"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next := func(want EventKind) *Event {
		t.Helper()
		ev, err := s.Next(ctx)
		if err != nil || ev.Event != want {
			t.Fatalf("event %+v, %v; want %s", ev, err, want)
		}
		return ev
	}
	next(EventStage)
	if err := s.Signal(ctx, "SIGINT"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stdin(ctx, "a\n"); err != nil {
		t.Fatal(err)
	}
	if ev := next(EventStdout); ev.Data != "a\n" {
		t.Fatalf("stdout %q", ev.Data)
	}
	if err := s.CloseStdin(ctx); err != nil {
		t.Fatal(err)
	}
	next(EventResult)
	if ev := next(EventDone); ev.Response.Run.Stdout != "a\n" {
		t.Fatalf("done %+v", ev.Response)
	}
	if _, err := s.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after done: %v", err)
	}
}

func TestValidSignal(t *testing.T) {
	for name, want := range map[string]int{"SIGKILL": 9, "SIGINT": 2, "SIGRTMIN": 34, "SIGRTMIN+1": 35, "SIGRTMAX-1": 63, "SIGRTMAX": 64} {
		if n, ok := ValidSignal(name); !ok || n != want {
			t.Errorf("%s: %d %v, want %d", name, n, ok, want)
		}
	}
	for _, name := range []string{"", "KILL", "9", "SIGRTMIN+16", "sigkill"} {
		if _, ok := ValidSignal(name); ok {
			t.Errorf("%q is valid", name)
		}
	}
}
