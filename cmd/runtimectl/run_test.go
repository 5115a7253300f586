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
			code, err := runFiles(context.Background(), cl, runOptions{Files: []string{main, lib}, Args: []string{"a"}}, strings.NewReader(""), &stdout, &stderr)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.want {
				t.Fatalf("exit %d, want %d", code, tc.want)
			}
			if stdout.String() != "out" || !strings.HasPrefix(stderr.String(), "err") || !strings.Contains(stderr.String(), tc.reason) {
				t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
			}
			if got.Language != "python" || len(got.Files) != 2 || got.Files[0].Name != "main.py" || got.Files[1].Name != "pkg/lib.py" || got.Args[0] != "a" {
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
