package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// streamDaemon answers POST /v1/run with the lines given, as a stream,
// keeping the request's Accept header.
func streamDaemon(t *testing.T, lines []string, accept *string) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/run" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		*accept = r.Header.Get("Accept")
		w.Header().Set("Content-Type", ContentTypeNDJSON)
		for _, l := range lines {
			_, _ = io.WriteString(w, l+"\n")
			_ = http.NewResponseController(w).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return NewClient(srv.URL, "")
}

func TestRunStream(t *testing.T) {
	var accept string
	cl := streamDaemon(t, []string{
		`{"event":"stage","stage":"compile"}`,
		`{"event":"stderr","stage":"compile","data":"warning\n"}`,
		`{"event":"result","stage":"compile","result":{"status":"ok","exit_code":0,"stdout":"","stderr":"warning\n","wall_time_ms":300,"cpu_time_ms":200,"memory_bytes":1,"stdout_truncated":false,"stderr_truncated":false}}`,
		`{"event":"stage","stage":"test","test":0}`,
		`{"event":"stdout","stage":"test","test":0,"data":"3\n"}`,
		`{"event":"result","stage":"test","test":0,"result":{"status":"ok","exit_code":0,"stdout":"3\n","stderr":"","wall_time_ms":5,"cpu_time_ms":4,"memory_bytes":1,"stdout_truncated":false,"stderr_truncated":false}}`,
		`{"event":"done","response":{"language":"c","version":"12","status":"ok","tests":[{"status":"ok","exit_code":0,"stdout":"3\n","stderr":"","wall_time_ms":5,"cpu_time_ms":4,"memory_bytes":1,"stdout_truncated":false,"stderr_truncated":false}],"summary":{"ok":1}}}`,
	}, &accept)
	var got []string
	resp, err := cl.RunStream(context.Background(), &RunRequest{Language: "c"}, func(ev Event) error {
		s := string(ev.Event) + " " + ev.Stage
		if ev.Test != nil {
			s += " test"
		}
		got = append(got, s+" "+ev.Data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(accept, ContentTypeNDJSON) {
		t.Fatalf("Accept %q", accept)
	}
	want := []string{"stage compile ", "stderr compile warning\n", "result compile ", "stage test test ", "stdout test test 3\n", "result test test ", "done  "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events %q, want %q", got, want)
	}
	if resp.Status != StatusOK || len(resp.Tests) != 1 || resp.Tests[0].Stdout != "3\n" || resp.Summary[StatusOK] != 1 {
		t.Fatalf("response %+v", resp)
	}
}

func TestRunStreamFailures(t *testing.T) {
	var accept string
	for _, tc := range []struct {
		name  string
		lines []string
		check func(error) bool
	}{
		{"error event", []string{`{"event":"stage","stage":"run"}`, `{"event":"error","error":{"code":"internal_error","message":"the sandbox failed; request id 42"}}`},
			func(err error) bool {
				var aerr *Error
				return errors.As(err, &aerr) && aerr.Code == CodeInternal && aerr.HTTPStatus == 0 && strings.Contains(aerr.Message, "42")
			}},
		{"cut short", []string{`{"event":"stage","stage":"run"}`, `{"event":"stdout","stage":"run","data":"x"}`},
			func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"not JSON", []string{`{"event":"stage","stage":"run"}`, `<html>`},
			func(err error) bool { return err != nil && strings.Contains(err.Error(), "stream") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := streamDaemon(t, tc.lines, &accept).RunStream(context.Background(), &RunRequest{}, nil)
			if resp != nil || !tc.check(err) {
				t.Fatalf("%+v, %v", resp, err)
			}
		})
	}

	// fn's error stops the stream, and is returned.
	stop := errors.New("enough")
	n := 0
	_, err := streamDaemon(t, []string{`{"event":"stage","stage":"run"}`, `{"event":"stdout","stage":"run","data":"x"}`}, &accept).
		RunStream(context.Background(), &RunRequest{}, func(Event) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("%d events, %v", n, err)
	}
}

// A refusal is an *Error with its status; a runtimed that does not
// stream answers the whole response, told as the done event.
func TestRunStreamPlainAnswers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var req RunRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Language == "cobol" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(ErrorBody{Error: Error{Code: CodeUnknownLanguage, Message: "unknown language", Field: "language"}})
			return
		}
		_ = json.NewEncoder(w).Encode(RunResponse{Language: req.Language, Status: StatusOK, Run: &StageResult{Status: StatusOK, Stdout: "hi\n"}})
	}))
	defer srv.Close()
	cl := NewClient(srv.URL, "")
	_, err := cl.RunStream(context.Background(), &RunRequest{Language: "cobol"}, func(Event) error {
		t.Error("an event for a refused request")
		return nil
	})
	var aerr *Error
	if !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusBadRequest || aerr.Code != CodeUnknownLanguage || aerr.Field != "language" {
		t.Fatalf("%v", err)
	}
	var events []EventKind
	resp, err := cl.RunStream(context.Background(), &RunRequest{Language: "python"}, func(ev Event) error {
		events = append(events, ev.Event)
		return nil
	})
	if err != nil || resp.Run.Stdout != "hi\n" || len(events) != 1 || events[0] != EventDone {
		t.Fatalf("%+v %v, events %v", resp, err, events)
	}
}
