package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/pkg/api"
)

// TestExitCodes: one table of exit codes for every command (run's
// program codes and limits are TestRunFilesExitCodes').
func TestExitCodes(t *testing.T) {
	answer := map[string]struct {
		status int
		code   api.ErrorCode
	}{
		"/v1/images/build":  {404, api.CodeNotFound},
		"/v1/images/pull":   {400, api.CodeInvalidRequest},
		"/v1/images/remove": {403, api.CodeForbidden},
		"/v1/sessions":      {429, api.CodeRateLimited},
		"/v1/pools":         {500, api.CodeInternal},
		"/healthz":          {503, api.CodeUnavailable},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := answer[r.URL.Path]; ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(a.status)
			_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: a.code, Message: "no"}})
			return
		}
		_ = json.NewEncoder(w).Encode(api.RuntimesResponse{Runtimes: []api.Runtime{}})
	}))
	defer srv.Close()
	absent := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		args string
		want int
	}{
		{"runtimes", 0},
		{"--socket " + absent + " runtimes", exitFailure},
		{"--socket " + absent + " run x.py", exitUsage}, // x.py is not there
		{"pools", exitFailure},
		{"health", exitFailure},
		{"images build nosuch", exitUsage},
		{"images pull Not-A-Ref", exitUsage},
		{"images rm python", exitUsage},
		{"session ls --nosuch", exitUsage},
		{"session create", exitUsage},
		{"runtimes -o xml", exitUsage},
		{"nosuchcommand", exitUsage},
	} {
		args := strings.Fields(tc.args)
		if !strings.HasPrefix(tc.args, "--socket") {
			args = append([]string{"--socket", srv.URL}, args...)
		}
		if got := runMain(append([]string{"runtimectl"}, args...), io.Discard, io.Discard); got != tc.want {
			t.Errorf("runtimectl %s: exit %d, want %d", tc.args, got, tc.want)
		}
	}
	// A 429 on a session's creation is a refusal too.
	if got := runMain([]string{"runtimectl", "--socket", srv.URL, "session", "create", "python"}, io.Discard, io.Discard); got != exitUsage {
		t.Errorf("a rate-limited session create: exit %d", got)
	}
}
