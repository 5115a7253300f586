//go:build integration

package integration

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

func pistonExecute(t *testing.T, body string) (int, []byte) {
	t.Helper()
	return harness.Do(t, unixHTTP(), "POST", "http://runtimed/api/v2/execute", "application/json", "", body)
}

// pistonJSON builds a request body from a map, so that cases read as the
// JSON a Piston client sends.
func pistonJSON(t *testing.T, v map[string]any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

// stageCheck is what a case expects of a stage. Status and signal are
// "<null>" for JSON null; code is -1 for null.
type stageCheck struct {
	stdout, stderr, output string // exact, unless "*" (anything)
	code                   int
	signal, status         string
	message                string // a substring; "<null>" for null
	minWall, minCPU        int64
}

func (c stageCheck) check(t *testing.T, name string, st api.PistonStage) {
	t.Helper()
	code := -1
	if st.Code != nil {
		code = *st.Code
	}
	bad := func(field string, got, want any) {
		t.Errorf("%s.%s = %#v, want %#v (stdout %q, stderr %q)", name, field, got, want, harness.Trim(st.Stdout), harness.Trim(st.Stderr))
	}
	if c.stdout != "*" && st.Stdout != c.stdout {
		bad("stdout", st.Stdout, c.stdout)
	}
	if c.stderr != "*" && st.Stderr != c.stderr {
		bad("stderr", st.Stderr, c.stderr)
	}
	if c.output != "*" && st.Output != c.output {
		bad("output", st.Output, c.output)
	}
	if code != c.code && c.signal != "*" {
		bad("code", code, c.code)
	}
	if str(st.Signal) != c.signal && c.signal != "*" {
		bad("signal", str(st.Signal), c.signal)
	}
	if str(st.Status) != c.status && c.status != "*" {
		bad("status", str(st.Status), c.status)
	}
	if c.status == "*" && str(st.Status) != "RE" && str(st.Status) != "SG" {
		bad("status", str(st.Status), "RE or SG")
	}
	if c.message == "<null>" && st.Message != nil || c.message != "<null>" && !strings.Contains(str(st.Message), c.message) {
		bad("message", str(st.Message), c.message)
	}
	if st.WallTime < max(c.minWall, 1) || st.CPUTime < max(c.minCPU, 1) || st.Memory <= 0 {
		t.Errorf("%s: wall_time %d ms (want ≥ %d), cpu_time %d ms (want ≥ %d), memory %d", name, st.WallTime, c.minWall, st.CPUTime, c.minCPU, st.Memory)
	}
}

// TestPistonExecute is the contract of POST /api/v2/execute against the
// real daemon: every field of the answer, every status.
func TestPistonExecute(t *testing.T) {
	const null = "<null>"
	ok := func(stdout string) stageCheck {
		return stageCheck{stdout: stdout, stderr: "", output: stdout, code: 0, signal: null, status: null, message: null}
	}
	hello := "public class HelloWorld {\n  public static void main(String[] a) { System.out.println(\"hi from java\"); }\n}\n"
	tests := []struct {
		name    string
		req     map[string]any
		version string
		run     stageCheck
		compile *stageCheck
	}{
		{"hello", map[string]any{"language": "python", "version": "3.x", "files": []any{map[string]any{"content": "print('hello, world')"}}},
			"3.13.5", ok("hello, world\n"), nil},
		{"alias and any version", map[string]any{"language": "py", "version": "*", "files": []any{map[string]any{"name": "m.py", "content": "print(1)"}}},
			"3.13.5", ok("1\n"), nil},
		{"stdin and args", map[string]any{"language": "python", "version": "3.11.2",
			"files": []any{map[string]any{"content": "import sys\nprint(sys.stdin.read().upper(), sys.argv[1:])"}},
			"stdin": "abc", "args": []string{"x", "y z"}},
			"3.11.2", ok("ABC ['x', 'y z']\n"), nil},
		{"output in the order written", map[string]any{"language": "python", "version": "*", "files": []any{map[string]any{"content": "import sys, time\n" +
			"for s, t in [(sys.stdout, 'a'), (sys.stderr, 'b'), (sys.stdout, 'c')]:\n    s.write(t + '\\n'); s.flush(); time.sleep(0.05)"}}},
			"3.13.5", stageCheck{stdout: "a\nc\n", stderr: "b\n", output: "a\nb\nc\n", code: 0, signal: null, status: null, message: null}, nil},
		{"base64 and hex files", map[string]any{"language": "python", "version": "*", "files": []any{
			map[string]any{"content": base64.StdEncoding.EncodeToString([]byte("import lib\nprint(lib.X)")), "encoding": "base64"},
			map[string]any{"name": "lib.py", "content": hex.EncodeToString([]byte("X = 'hex'")), "encoding": "hex"}}},
			"3.13.5", ok("hex\n"), nil},
		{"runtime error", map[string]any{"language": "python", "version": "*", "files": []any{map[string]any{"content": "import sys\nprint('x')\nsys.exit(3)"}}},
			"3.13.5", stageCheck{stdout: "x\n", stderr: "", output: "x\n", code: 3, signal: null, status: "RE", message: "status 3"}, nil},
		{"signal", map[string]any{"language": "python", "version": "*", "files": []any{map[string]any{"content": "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"}}},
			"3.13.5", stageCheck{stdout: "", stderr: "*", output: "*", code: -1, signal: "SIGSEGV", status: "SG", message: "SIGSEGV"}, nil},
		{"wall timeout", map[string]any{"language": "python", "version": "*", "run_timeout": 500, "files": []any{map[string]any{"content": "import time\nprint('start', flush=True)\ntime.sleep(10)"}}},
			"3.13.5", stageCheck{stdout: "start\n", stderr: "", output: "start\n", code: -1, signal: "SIGKILL", status: "TO", message: "wall time", minWall: 500}, nil},
		{"cpu time", map[string]any{"language": "python", "version": "*", "run_cpu_time": 300, "run_timeout": 10000, "files": []any{map[string]any{"content": "while True: pass"}}},
			"3.13.5", stageCheck{stdout: "", stderr: "", output: "", code: -1, signal: "SIGKILL", status: "TO", message: "CPU time", minCPU: 300}, nil},
		{"memory limit", map[string]any{"language": "python", "version": "*", "run_memory_limit": 64 << 20, "files": []any{map[string]any{"content": "x = bytearray(200 * 1024 * 1024)\nx[::4096] = b'1' * len(x[::4096])\nprint('allocated')"}}},
			"3.13.5", stageCheck{stdout: "", stderr: "*", output: "*", code: 1, signal: "*", status: "*", message: "memory limit of 64 MiB"}, nil},
		{"stdout limit", map[string]any{"language": "python", "version": "*", "files": []any{map[string]any{"content": "import sys\nsys.stdout.write('x' * 1000000)"}}},
			"3.13.5", stageCheck{stdout: "*", stderr: "", output: "*", code: -1, signal: "SIGKILL", status: "OL", message: "stdout exceeded"}, nil},
		{"stderr limit", map[string]any{"language": "python", "version": "*", "files": []any{map[string]any{"content": "import sys\nsys.stderr.write('x' * 1000000)"}}},
			"3.13.5", stageCheck{stdout: "", stderr: "*", output: "*", code: -1, signal: "SIGKILL", status: "EL", message: "stderr exceeded"}, nil},
		{"c", map[string]any{"language": "c", "version": "12", "files": []any{map[string]any{"content": "#include <stdio.h>\nint main(void){puts(\"hi from c\");return 0;}"}}},
			"12.2.0", ok("hi from c\n"), &stageCheck{stdout: "", stderr: "", output: "", code: 0, signal: null, status: null, message: null}},
		{"java named after its class", map[string]any{"language": "java", "version": "17", "files": []any{map[string]any{"content": hello}}},
			"17.0.", ok("hi from java\n"), &stageCheck{stdout: "", stderr: "", output: "", code: 0, signal: null, status: null, message: null}},
		{"javascript", map[string]any{"language": "node", "version": "18", "files": []any{map[string]any{"content": "console.log([1,2].map(x => x * 2).join(','))"}}},
			"18.20.4", ok("2,4\n"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := pistonExecute(t, pistonJSON(t, tt.req))
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			var resp api.PistonExecuteResponse
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(body, &raw); err != nil {
				t.Fatal(err)
			}
			lang, _ := tt.req["language"].(string)
			// A version ending in "." is a prefix (Java's follows Debian's updates).
			versionOK := resp.Version == tt.version || (strings.HasSuffix(tt.version, ".") && strings.HasPrefix(resp.Version, tt.version))
			if !versionOK || (resp.Language != lang && lang != "py" && lang != "node") {
				t.Errorf("language %q version %q, want %q", resp.Language, resp.Version, tt.version)
			}
			tt.run.check(t, "run", resp.Run)
			_, hasCompile := raw["compile"]
			if (tt.compile != nil) != hasCompile {
				t.Fatalf("compile present: %v, want %v: %s", hasCompile, tt.compile != nil, body)
			}
			if tt.compile != nil {
				tt.compile.check(t, "compile", *resp.Compile)
			}
		})
	}
}

// A failed compile: compile reports it, and run is a copy of compile.
func TestPistonCompileError(t *testing.T) {
	status, body := pistonExecute(t, `{"language":"c","version":"*","files":[{"content":"int main(void) { return nope; }"}]}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	var resp api.PistonExecuteResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	c := resp.Compile
	if c == nil || str(c.Status) != "RE" || c.Code == nil || *c.Code == 0 || !strings.Contains(c.Stderr, "nope") || c.Output != c.Stderr {
		t.Fatalf("compile %s", body)
	}
	if !strings.Contains(c.Stderr, "file0.code.c") {
		t.Errorf("the unnamed file is not file0.code.c: %q", c.Stderr)
	}
	if !reflect.DeepEqual(resp.Run, *c) {
		t.Fatalf("run is not a copy of compile: %s", body)
	}
}

// Every refusal: its status, {"message": ...} alone, and nothing left.
func TestPistonErrors(t *testing.T) {
	tests := []struct {
		name, contentType, body string
		status                  int
		message                 string
	}{
		{"not json", "text/plain", `{"language":"python","version":"*","files":[{"content":"print(1)"}]}`, 415, "application/json"},
		{"unknown language", "application/json", `{"language":"cobol","version":"1.0.0","files":[{"content":""}]}`, 400, "cobol-1.0.0 runtime is unknown"},
		{"unknown version", "application/json", `{"language":"python","version":"2.7.18","files":[{"content":""}]}`, 400, "python-2.7.18 runtime is unknown"},
		{"run timeout over the maximum", "application/json", `{"language":"python","version":"*","run_timeout":3600000,"files":[{"content":""}]}`, 400, "run_timeout = 3600000 exceeds"},
		{"run cpu time over the maximum", "application/json", `{"language":"python","version":"*","run_cpu_time":3600000,"files":[{"content":""}]}`, 400, "run_cpu_time = 3600000 exceeds"},
		{"run memory over the maximum", "application/json", `{"language":"python","version":"*","run_memory_limit":107374182400,"files":[{"content":""}]}`, 400, "run_memory_limit = 107374182400 (100 GiB) exceeds"},
		{"compile timeout over the maximum", "application/json", `{"language":"c","version":"*","compile_timeout":3600000,"files":[{"content":""}]}`, 400, "compile_timeout = 3600000 exceeds"},
		{"compile cpu time over the maximum", "application/json", `{"language":"c","version":"*","compile_cpu_time":3600000,"files":[{"content":""}]}`, 400, "compile_cpu_time = 3600000 exceeds"},
		{"compile memory over the maximum", "application/json", `{"language":"c","version":"*","compile_memory_limit":107374182400,"files":[{"content":""}]}`, 400, "compile_memory_limit = 107374182400 (100 GiB) exceeds"},
		{"no files", "application/json", `{"language":"python","version":"*","files":[]}`, 400, "files is required"},
		{"escaping name", "application/json", `{"language":"python","version":"*","files":[{"name":"../../etc/x","content":""}]}`, 400, "../../etc/x"},
		{"malformed", "application/json", `{"language":"python",`, 400, "cut short"},
		// Platform failures are errors, never a stage's XX.
		{"the language's command is not in its image", "application/json", `{"language":"broken","version":"*","files":[{"content":""}]}`, 503, "/nonexistent/interpreter is not in its image"},
		{"the sandbox fails", "application/json", `{"language":"failing","version":"*","files":[{"content":""}]}`, 500, "the sandbox failed"},
		{"no image", "application/json", `{"language":"noimage","version":"*","files":[{"content":""}]}`, 503, "image is not installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := harness.Do(t, unixHTTP(), "POST", "http://runtimed/api/v2/execute", tt.contentType, "", tt.body)
			var e map[string]any
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("status %d, body %s: %v", status, body, err)
			}
			msg, _ := e["message"].(string)
			if status != tt.status || len(e) != 1 || !strings.Contains(msg, tt.message) {
				t.Fatalf("status %d %s, want %d with a message holding %q", status, body, tt.status, tt.message)
			}
		})
	}
	waitNoLeftovers(t, 10*time.Second)
}

// GET /api/v2/runtimes lists the languages whose image is installed, with
// Piston's runtime names; /api/v2/packages every language.
func TestPistonRuntimesAndPackages(t *testing.T) {
	status, body := harness.Do(t, unixHTTP(), "GET", "http://runtimed/api/v2/runtimes", "", "", "")
	if status != http.StatusOK {
		t.Fatalf("runtimes: %d %s", status, body)
	}
	var runtimes []map[string]any
	if err := json.Unmarshal(body, &runtimes); err != nil {
		t.Fatal(err)
	}
	byName := map[string]map[string]any{}
	for _, r := range runtimes {
		name, ok := r["language"].(string)
		if !ok {
			t.Fatalf("a runtime without a language: %v", r)
		}
		if byName[name] == nil { // the newest version comes first
			byName[name] = r
		}
		if _, ok := r["aliases"].([]any); !ok {
			t.Errorf("%v: aliases is not an array", r)
		}
	}
	for lang, want := range map[string]struct{ version, runtime string }{
		"python": {"3.13.", ""}, "javascript": {"20.", "node"}, "c": {"14.2.", "gcc"}, "cpp": {"14.2.", "gcc"}, "java": {"25.", ""},
	} {
		r := byName[lang]
		if r == nil {
			t.Errorf("%s missing from %s", lang, body)
			continue
		}
		rt, _ := r["runtime"].(string)
		if v, _ := r["version"].(string); !strings.HasPrefix(v, want.version) || rt != want.runtime {
			t.Errorf("%s: %v, want version %s runtime %q", lang, r, want.version, want.runtime)
		}
	}
	if byName["noimage"] != nil {
		t.Errorf("a language without its image is listed: %v", byName["noimage"])
	}
	if a, _ := byName["python"]["aliases"].([]any); len(a) == 0 || a[0] != "py" {
		t.Errorf("python aliases %v", byName["python"]["aliases"])
	}

	status, body = harness.Do(t, unixHTTP(), "GET", "http://runtimed/api/v2/packages", "", "", "")
	if status != http.StatusOK {
		t.Fatalf("packages: %d %s", status, body)
	}
	var pkgs []api.PistonPackage
	if err := json.Unmarshal(body, &pkgs); err != nil {
		t.Fatal(err)
	}
	installed := map[string]bool{}
	for _, p := range pkgs {
		installed[p.Language+"-"+p.LanguageVersion] = p.Installed
	}
	if v, ok := installed["noimage-0"]; !ok || v {
		t.Errorf("noimage: %v, want listed and not installed: %s", v, body)
	}
	if !installed["python-3.11.2"] || !installed["c-12.2.0"] {
		t.Errorf("python and c should be installed: %s", body)
	}
	// Read-only: installing is runtimed's own image commands' work.
	status, body = harness.Do(t, unixHTTP(), "POST", "http://runtimed/api/v2/packages", "application/json", "", `{"language":"ruby","version":"3"}`)
	if status != http.StatusMethodNotAllowed || !strings.Contains(string(body), `"message"`) {
		t.Fatalf("POST packages: %d %s", status, body)
	}
}

// On the TCP listener the Piston API takes the token like the rest; with
// piston_without_token, /api/v2 alone goes without.
func TestPistonOverTCP(t *testing.T) {
	body := `{"language":"python","version":"*","files":[{"content":"print('tcp')"}]}`
	base := "http://" + env.TCP
	status, data := harness.Do(t, http.DefaultClient, "POST", base+"/api/v2/execute", "application/json", "", body)
	if status != http.StatusUnauthorized || !strings.HasPrefix(string(data), `{"message":`) {
		t.Fatalf("without a token: %d %s", status, data)
	}
	status, data = harness.Do(t, http.DefaultClient, "POST", base+"/api/v2/execute", "application/json", harness.TestToken, body)
	if status != http.StatusOK || !strings.Contains(string(data), `"stdout":"tcp\n"`) {
		t.Fatalf("with the token: %d %s", status, data)
	}

	addr := harness.FreeAddr(t)
	harness.StartInstance(t, "piston-open", fmt.Sprintf("listen_tcp = %q\npiston_without_token = true\n[pool]\nenabled = false", addr))
	base = "http://" + addr
	status, data = harness.Do(t, http.DefaultClient, "POST", base+"/api/v2/execute", "application/json", "", body)
	if status != http.StatusOK || !strings.Contains(string(data), `"stdout":"tcp\n"`) {
		t.Fatalf("piston_without_token: %d %s", status, data)
	}
	status, data = harness.Do(t, http.DefaultClient, "GET", base+"/v1/runtimes", "", "", "")
	if status != http.StatusUnauthorized {
		t.Fatalf("/v1 went without a token: %d %s", status, data)
	}
}
