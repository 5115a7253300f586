package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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

// TestJudgeTestsDir: --tests sends the N.in/N.out pairs in N's order,
// prints a verdict per test and a summary, and exits 1 unless all are ok.
func TestJudgeTestsDir(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"2.in": "2", "2.out": "4", "10.in": "10", "10.out": "100", "1.in": "1", "1.out": "1", "main.py": "print(int(input())**2)"} {
		writeTemp(t, dir, name, content)
	}
	var got api.RunRequest
	verdicts := []api.Status{api.StatusOK, api.StatusOK, api.StatusWrongAnswer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		resp := api.RunResponse{Status: api.StatusOK}
		for _, v := range verdicts {
			resp.Tests = append(resp.Tests, api.StageResult{Status: v, WallTimeMS: 5})
			if v != api.StatusOK {
				resp.Status = v
			}
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
	defer srv.Close()
	var out strings.Builder
	var errOut strings.Builder
	code := runMain([]string{"runtimectl", "--socket", srv.URL, "run", filepath.Join(dir, "main.py"), "--tests", dir, "--compile-timeout", "20s"}, &out, &errOut)
	if code != exitFailure {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if len(got.Tests) != 3 || got.Tests[0].Stdin != "1" || got.Tests[1].Stdin != "2" || got.Tests[2].Stdin != "10" || *got.Tests[2].ExpectedOutput != "100" || got.CompileLimits.WallTimeMS != 20000 {
		t.Fatalf("request: %+v", got)
	}
	if !strings.Contains(out.String(), "test 10: wrong_answer") || !strings.Contains(out.String(), "2 of 3 tests ok") {
		t.Fatalf("output: %s", out.String())
	}
	verdicts = verdicts[:2]
	if code := runMain([]string{"runtimectl", "--socket", srv.URL, "run", "--tests", dir, filepath.Join(dir, "main.py")}, io.Discard, io.Discard); code != 0 {
		t.Fatalf("all ok: exit %d", code)
	}
}

// TestCompletion: after -l, and for images build, the languages a
// running runtimed knows; its sessions for session rm; flags after "-".
func TestCompletion(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/runtimes":
			_ = json.NewEncoder(w).Encode(api.RuntimesResponse{Runtimes: []api.Runtime{{Language: "python", Version: "3.13.5"}, {Language: "python", Version: "3.11.2"}, {Language: "lua", Version: "5.4.7"}}})
		case "/v1/sessions":
			_ = json.NewEncoder(w).Encode(api.Sessions{Sessions: []api.Session{{ID: "ses-abc"}}})
		case "/v1/tokens":
			_ = json.NewEncoder(w).Encode(api.Tokens{Tokens: []api.Token{{Name: "judge"}, {Name: "gone", Revoked: true}}})
		}
	}))
	defer srv.Close()
	saved := os.Args
	defer func() { os.Args = saved }()
	for _, tc := range []struct {
		args string
		want []string
	}{
		{"run -l", []string{"lua", "python", "python@3.13.5", "python@3.11.2"}},
		{"images build", []string{"lua", "python@3.11.2"}},
		{"session rm", []string{"ses-abc"}},
		{"token revoke", []string{"judge"}},
		{"run -", []string{"--language", "--memory"}},
	} {
		os.Args = append(append([]string{"runtimectl", "--socket", srv.URL}, strings.Fields(tc.args)...), "--generate-bash-completion")
		var out strings.Builder
		runMain(os.Args, &out, io.Discard)
		for _, w := range tc.want {
			if !strings.Contains("\n"+out.String(), "\n"+w+"\n") {
				t.Errorf("%s: %q lacks %s", tc.args, out.String(), w)
			}
		}
		if tc.args == "token revoke" && strings.Contains(out.String(), "gone") {
			t.Errorf("a revoked token is offered: %q", out.String())
		}
	}
}

// TestProgramExitCodeThree: a program's own exit code 3 is runtimectl's,
// not taken for urfave/cli's "no such command" (also 3).
func TestProgramExitCodeThree(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(api.RunResponse{Status: api.StatusRuntimeError, Run: &api.StageResult{Status: api.StatusRuntimeError, ExitCode: 3}})
	}))
	defer srv.Close()
	main := writeTemp(t, t.TempDir(), "main.py", "raise SystemExit(3)")
	if code := runMain([]string{"runtimectl", "--socket", srv.URL, "run", "--json", main}, io.Discard, io.Discard); code != 3 {
		t.Fatalf("exit %d, want the program's 3", code)
	}
}
