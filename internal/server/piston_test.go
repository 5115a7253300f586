package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/pkg/api"
)

func postPiston(t *testing.T, srv *httptest.Server, contentType, body string) (int, []byte) {
	t.Helper()
	return postTo(t, srv, "/api/v2/execute", contentType, body)
}

// The plan a Piston request becomes: names given to unnamed files,
// encodings decoded, Piston's limit fields mapped onto runtimed's.
func TestPistonPlan(t *testing.T) {
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}
	srv := newTestServer(t, executor, nil)
	def := config.Default()
	tests := []struct {
		name          string
		body          string
		names         []string
		contents      []string
		limits        api.Limits
		compileLimits api.Limits
	}{
		{"defaults", `{"language":"python","version":"*","files":[{"content":"print(1)"},{"content":"x"}]}`,
			[]string{"file0.code", "file1.code"}, []string{"print(1)", "x"}, resolved(def.Defaults, 0, 0, 0), resolved(def.CompileDefaults, 0, 0, 0)},
		{"minus one is the default", `{"language":"py","version":"3","files":[{"name":"a.py","content":""}],"run_memory_limit":-1,"compile_memory_limit":-1,"run_timeout":-1}`,
			[]string{"a.py"}, []string{""}, resolved(def.Defaults, 0, 0, 0), resolved(def.CompileDefaults, 0, 0, 0)},
		{"limits", `{"language":"python","version":"3.11.x","files":[{"content":""}],"run_timeout":1500,"run_cpu_time":700,"run_memory_limit":67108864,"compile_timeout":9000,"compile_cpu_time":8000,"compile_memory_limit":268435456}`,
			[]string{"file0.code"}, []string{""}, resolved(def.Defaults, 1500, 700, 64<<20), resolved(def.CompileDefaults, 9000, 8000, 256<<20)},
		{"encodings", `{"language":"python","version":"3.11.2","files":[{"content":"cHJpbnQoMSk=","encoding":"base64"},{"name":"b","content":"00ff","encoding":"hex"},{"name":"c","content":"é","encoding":"utf8"}]}`,
			[]string{"file0.code", "b", "c"}, []string{"print(1)", "\x00\xff", "é"}, resolved(def.Defaults, 0, 0, 0), resolved(def.CompileDefaults, 0, 0, 0)},
		{"compiled: the extension", `{"language":"c","version":"*","files":[{"content":"int main(){}"},{"content":"int f;"}]}`,
			[]string{"file0.code.c", "file1.code.c"}, []string{"int main(){}", "int f;"}, resolved(def.Defaults, 0, 0, 0), resolved(def.CompileDefaults, 0, 0, 0)},
		{"java: named after its public class", `{"language":"java","version":"17","files":[{"content":"import x;\npublic final class Hello_1 {}"},{"content":"class B {}"}]}`,
			[]string{"Hello_1.java", "file1.code.java"}, []string{"import x;\npublic final class Hello_1 {}", "class B {}"}, resolved(def.Defaults, 0, 0, 0), resolved(def.CompileDefaults, 0, 0, 0)},
		{"java: a named file too", `{"language":"java","version":"17","files":[{"name":"test.java","content":"public class Main {}"}]}`,
			[]string{"Main.java"}, []string{"public class Main {}"}, resolved(def.Defaults, 0, 0, 0), resolved(def.CompileDefaults, 0, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(executor.plans)
			status, body := postPiston(t, srv, "application/json; charset=utf-8", tt.body)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			plan := executor.plans[before]
			for i, f := range plan.Files {
				if f.Name != tt.names[i] || f.Content != tt.contents[i] {
					t.Errorf("file %d: %q %q, want %q %q", i, f.Name, f.Content, tt.names[i], tt.contents[i])
				}
			}
			if plan.Limits != tt.limits || plan.CompileLimits != tt.compileLimits {
				t.Errorf("limits %+v / %+v, want %+v / %+v", plan.Limits, plan.CompileLimits, tt.limits, tt.compileLimits)
			}
		})
	}
}

func resolved(l config.Limits, wall, cpuTime, memory int64) api.Limits {
	out := l
	if wall > 0 {
		out.WallTimeMS = wall
	}
	if cpuTime > 0 {
		out.CPUTimeMS = cpuTime
	}
	if memory > 0 {
		out.MemoryBytes = memory
	}
	return out
}

// Every refusal is {"message": ...} with its status, and nothing runs.
func TestPistonErrors(t *testing.T) {
	executor := &fakeExecutor{}
	srv := newTestServer(t, executor, nil)
	maximums := config.Default().Maximums
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		message     string
	}{
		{"not json", "text/plain", `{"language":"python","version":"*","files":[{"content":""}]}`, 415, "application/json"},
		{"no content type", "", `{}`, 415, "application/json"},
		{"unknown language", "application/json", `{"language":"cobol","version":"1.0.0","files":[{"content":""}]}`, 400, "cobol-1.0.0 runtime is unknown"},
		{"unknown version", "application/json", `{"language":"python","version":"2.7","files":[{"content":""}]}`, 400, "python-2.7 runtime is unknown"},
		{"bad selector", "application/json", `{"language":"python","version":"latest!","files":[{"content":""}]}`, 400, "python-latest! runtime is unknown"},
		{"no language", "application/json", `{"version":"*","files":[{"content":""}]}`, 400, "language is required"},
		{"no files", "application/json", `{"language":"python","version":"*"}`, 400, "files is required"},
		{"no content", "application/json", `{"language":"python","version":"*","files":[{"name":"a.py"}]}`, 400, "files[0].content is required"},
		{"bad base64", "application/json", `{"language":"python","version":"*","files":[{"content":"@@","encoding":"base64"}]}`, 400, "not valid base64"},
		{"bad hex", "application/json", `{"language":"python","version":"*","files":[{"content":"zz","encoding":"hex"}]}`, 400, "not valid hex"},
		{"bad encoding", "application/json", `{"language":"python","version":"*","files":[{"content":"","encoding":"rot13"}]}`, 400, "encoding must be"},
		{"bad name", "application/json", `{"language":"python","version":"*","files":[{"name":"../x","content":""}]}`, 400, "../x"},
		{"name like an option", "application/json", `{"language":"c","version":"*","files":[{"name":"-specs=d/x.c","content":""}]}`, 400, `"-specs=d/x.c" starts with '-'`},
		{"name like a response file", "application/json", `{"language":"java","version":"*","files":[{"content":"public class A {}"},{"name":"@args","content":"LXByb2M6b25seQ==","encoding":"base64"}]}`, 400, `"@args" starts with '@'`},
		{"run timeout over", "application/json", `{"language":"python","version":"*","files":[{"content":""}],"run_timeout":` + itoa(maximums.WallTimeMS+1) + `}`, 400, "run_timeout"},
		{"run cpu time over", "application/json", `{"language":"python","version":"*","files":[{"content":""}],"run_cpu_time":` + itoa(maximums.CPUTimeMS+1) + `}`, 400, "run_cpu_time"},
		{"run memory over", "application/json", `{"language":"python","version":"*","files":[{"content":""}],"run_memory_limit":` + itoa(maximums.MemoryBytes+1) + `}`, 400, "run_memory_limit"},
		{"compile memory over", "application/json", `{"language":"c","version":"*","files":[{"content":""}],"compile_memory_limit":` + itoa(config.Default().CompileMaximums.MemoryBytes+1) + `}`, 400, "compile_memory_limit"},
		{"zero timeout", "application/json", `{"language":"python","version":"*","files":[{"content":""}],"run_timeout":0}`, 400, "run_timeout must be a positive number"},
		{"timeout not a number", "application/json", `{"language":"python","version":"*","files":[{"content":""}],"run_timeout":"1s"}`, 400, "run_timeout"},
		{"malformed", "application/json", `{"language":`, 400, "cut short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := postPiston(t, srv, tt.contentType, tt.body)
			var e map[string]any
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			msg, _ := e["message"].(string)
			if status != tt.status || len(e) != 1 || !strings.Contains(msg, tt.message) {
				t.Fatalf("status %d %s, want %d and a message with %q", status, body, tt.status, tt.message)
			}
		})
	}
	if n := executor.calls.Load(); n != 0 {
		t.Fatalf("%d executions ran", n)
	}
	resp, err := http.Get(srv.URL + "/api/v2/execute")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET /api/v2/execute: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// Each verdict in Piston's terms.
func TestPistonStage(t *testing.T) {
	tests := []struct {
		name   string
		res    api.StageResult
		status string
		signal string
		code   int
	}{
		{"ok", api.StageResult{Status: api.StatusOK}, "", "", 0},
		{"runtime error", api.StageResult{Status: api.StatusRuntimeError, ExitCode: 3, Message: "exited with status 3"}, "RE", "", 3},
		{"signal", api.StageResult{Status: api.StatusRuntimeError, ExitCode: 139, Signal: "SIGSEGV"}, "SG", "SIGSEGV", 0},
		{"timeout", api.StageResult{Status: api.StatusTimeout, ExitCode: 137, Signal: "SIGKILL"}, "TO", "SIGKILL", 0},
		{"timeout without a signal", api.StageResult{Status: api.StatusTimeout}, "TO", "SIGKILL", 0},
		{"stdout", api.StageResult{Status: api.StatusOutputLimit, StdoutTruncated: true}, "OL", "SIGKILL", 0},
		{"stderr", api.StageResult{Status: api.StatusOutputLimit, StderrTruncated: true}, "EL", "SIGKILL", 0},
		{"both", api.StageResult{Status: api.StatusOutputLimit, StdoutTruncated: true, StderrTruncated: true}, "OL", "SIGKILL", 0},
		{"memory, killed", api.StageResult{Status: api.StatusMemoryLimit, ExitCode: 137, Signal: "SIGKILL"}, "SG", "SIGKILL", 0},
		{"memory, exited", api.StageResult{Status: api.StatusMemoryLimit, ExitCode: 3}, "RE", "", 3},
		{"internal", api.StageResult{Status: api.StatusInternalError, ExitCode: 1}, "XX", "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := pistonStage(&tt.res)
			status, signal := "", ""
			if st.Status != nil {
				status = *st.Status
			}
			if st.Signal != nil {
				signal = *st.Signal
			}
			if status != tt.status || signal != tt.signal {
				t.Fatalf("status %q signal %q, want %q %q", status, signal, tt.status, tt.signal)
			}
			if (signal == "") != (st.Code != nil) || (st.Code != nil && *st.Code != tt.code) {
				t.Fatalf("code %v with signal %q, want %d", st.Code, signal, tt.code)
			}
			if (st.Message != nil) != (tt.res.Message != "") {
				t.Fatalf("message %v", st.Message)
			}
		})
	}
}

// A language's own default limits are what its requests get when they
// set none, on /v1 and on /api/v2.
func TestLanguageDefaults(t *testing.T) {
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}
	srv := newTestServer(t, executor, func(c *config.Config) {
		py := c.Languages["python-3.13"]
		py.Limits = config.Limits{MemoryBytes: 256 << 20, WallTimeMS: 8000}
		c.Languages["python-3.13"] = py
	})
	if status, body := post(t, srv, `{"language":"python","files":[{"name":"a.py","content":""}]}`); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	if status, body := postPiston(t, srv, "application/json", `{"language":"python","files":[{"content":""}],"run_timeout":-1}`); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	for _, p := range executor.plans {
		if p.Limits.MemoryBytes != 256<<20 || p.Limits.WallTimeMS != 8000 || p.Limits.CPU != config.Default().Defaults.CPU {
			t.Fatalf("limits %+v", p.Limits)
		}
	}
}
