//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/pkg/api"
)

// runtimectl runs the CLI against the test daemon and returns its stdout,
// stderr and exit code.
func runtimectl(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	return runtimectlAt(t, env.Socket, stdin, args...)
}

// runtimectlAt is runtimectl against the daemon listening on socket.
func runtimectlAt(t *testing.T, socket, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(env.Bin, "runtimectl"), append([]string{"--socket", socket}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	default:
		t.Fatalf("runtimectl: %v", err)
		return "", "", -1
	}
}

func writeFiles(t *testing.T, nameContent ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i+1 < len(nameContent); i += 2 {
		p := filepath.Join(dir, nameContent[i])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(nameContent[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCLIRun(t *testing.T) {
	dir := writeFiles(t,
		"main.py", "import sys\nfrom helper import twice\nprint(twice(sys.stdin.read().strip()), sys.argv[1:])\nprint('to stderr', file=sys.stderr)\nsys.exit(5)",
		"helper.py", "def twice(s):\n    return s * 2",
		"loop.js", "for (;;) {}",
		"mem.py", "x = bytearray(300 * 1024 * 1024)",
	)
	p := func(name string) string { return filepath.Join(dir, name) }

	t.Run("output, stdin, args and exit code", func(t *testing.T) {
		stdout, stderr, code := runtimectl(t, "ab\n", "run", "--stdin", "-", p("main.py"), p("helper.py"), "--", "x", "y")
		if stdout != "abab ['x', 'y']\n" || stderr != "to stderr\n" || code != 5 {
			t.Fatalf("stdout %q stderr %q exit %d", stdout, stderr, code)
		}
	})
	t.Run("timeout exits 124", func(t *testing.T) {
		_, stderr, code := runtimectl(t, "", "run", "--timeout", "1s", p("loop.js"))
		if code != 124 || !strings.Contains(stderr, "timed out") {
			t.Fatalf("exit %d stderr %q", code, stderr)
		}
	})
	t.Run("cpu time exits 124", func(t *testing.T) {
		_, stderr, code := runtimectl(t, "", "run", "--cpu-time", "300ms", "--timeout", "10s", p("loop.js"))
		if code != 124 || !strings.Contains(stderr, "CPU time limit of 300 ms exceeded") {
			t.Fatalf("exit %d stderr %q", code, stderr)
		}
	})
	t.Run("memory exits 137", func(t *testing.T) {
		_, stderr, code := runtimectl(t, "", "run", "--memory", "64M", p("mem.py"))
		if code != 137 || !strings.Contains(stderr, "memory limit") {
			t.Fatalf("exit %d stderr %q", code, stderr)
		}
	})
	t.Run("json", func(t *testing.T) {
		stdout, _, code := runtimectl(t, "z", "run", "--json", "--language", "python3", "--stdin", "-", p("main.py"), p("helper.py"))
		var resp api.RunResponse
		if err := json.Unmarshal([]byte(stdout), &resp); err != nil {
			t.Fatalf("%v: %q", err, stdout)
		}
		if code != 5 || resp.Status != api.StatusRuntimeError || resp.Run.ExitCode != 5 || resp.Run.Stdout != "zz []\n" {
			t.Fatalf("exit %d, %+v", code, resp)
		}
	})
	t.Run("refused request exits 2", func(t *testing.T) {
		_, stderr, code := runtimectl(t, "", "run", "--cpu", "64", p("main.py"))
		if code != 2 || !strings.Contains(stderr, "limits.cpu") {
			t.Fatalf("exit %d stderr %q", code, stderr)
		}
	})
}

func TestCLIInfo(t *testing.T) {
	stdout, _, code := runtimectl(t, "", "runtimes")
	if code != 0 {
		t.Fatalf("runtimes: exit %d\n%s", code, stdout)
	}
	// The test config adds a language whose image is never built.
	want := map[string]bool{"python": false, "javascript": false, "noimage": true}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n")[1:] {
		lang := strings.Fields(line)[0]
		if missing, ok := want[lang]; ok {
			if strings.Contains(line, "(missing)") != missing {
				t.Errorf("runtimes line %q: want missing=%v", line, missing)
			}
			delete(want, lang)
		}
	}
	if len(want) > 0 {
		t.Fatalf("runtimes lacks %v:\n%s", want, stdout)
	}
	stdout, _, code = runtimectl(t, "", "health")
	if code != 0 || !strings.HasPrefix(stdout, "ok") {
		t.Fatalf("health: exit %d %q", code, stdout)
	}
	stdout, _, code = runtimectl(t, "", "version")
	if code != 0 || !strings.Contains(stdout, "runtimectl") || !strings.Contains(stdout, "containerd") {
		t.Fatalf("version: exit %d %q", code, stdout)
	}
}

// TestCLIRunTests: runtimectl run --tests DIR judges a program against
// N.in/N.out pairs, a verdict per test, and exits 1 when one fails.
func TestCLIRunTests(t *testing.T) {
	dir := writeFiles(t, "sum.c", "#include <stdio.h>\nint main(void){int a,b;if(scanf(\"%d %d\",&a,&b)!=2)return 1;printf(\"%d\\n\",a+b);return 0;}\n",
		"tests/1.in", "1 2\n", "tests/1.out", "3\n", "tests/2.in", "5 5\n", "tests/2.out", "10\n", "tests/3.in", "2 2\n", "tests/3.out", "5\n")
	stdout, stderr, code := runtimectl(t, "", "run", filepath.Join(dir, "sum.c"), "--tests", filepath.Join(dir, "tests"), "--compile-timeout", "20s")
	if code != 1 || !strings.Contains(stdout, "test 1: ok") || !strings.Contains(stdout, "test 3: wrong_answer") || !strings.Contains(stdout, "2 of 3 tests ok") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if err := os.Remove(filepath.Join(dir, "tests", "3.in")); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := runtimectl(t, "", "run", "--tests", filepath.Join(dir, "tests"), filepath.Join(dir, "sum.c")); code != 0 || !strings.Contains(stdout, "2 of 2 tests ok") {
		t.Fatalf("all ok: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
