//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
)

// byLanguage holds the same program in each language.
type byLanguage struct {
	language string
	files    []api.File
}

func TestHelloWorld(t *testing.T) {
	for _, c := range []byLanguage{
		{"python", files("main.py", `print("hello, world")`)},
		{"javascript", files("main.js", `console.log("hello, world")`)},
	} {
		t.Run(c.language, func(t *testing.T) {
			resp := runOK(t, &api.RunRequest{Language: c.language, Files: c.files})
			expectStatus(t, resp, api.StatusOK)
			if resp.Run.Stdout != "hello, world\n" || resp.Run.Stderr != "" || resp.Run.ExitCode != 0 {
				t.Fatalf("got stdout %q stderr %q exit %d", resp.Run.Stdout, resp.Run.Stderr, resp.Run.ExitCode)
			}
			if resp.Language != c.language || resp.Version == "" {
				t.Fatalf("language %q version %q", resp.Language, resp.Version)
			}
			if resp.Run.WallTimeMS <= 0 || resp.Run.CPUTimeMS <= 0 || resp.Run.MemoryBytes <= 0 {
				t.Fatalf("no usage figures: wall %d ms, cpu %d ms, memory %d", resp.Run.WallTimeMS, resp.Run.CPUTimeMS, resp.Run.MemoryBytes)
			}
		})
	}
}

func TestAliases(t *testing.T) {
	for _, alias := range []string{"py", "python3", "js", "node"} {
		t.Run(alias, func(t *testing.T) {
			code := `print(1+1)`
			name := "a.py"
			if alias == "js" || alias == "node" {
				code, name = `console.log(1+1)`, "a.js"
			}
			resp := runOK(t, &api.RunRequest{Language: alias, Files: files(name, code)})
			expectStatus(t, resp, api.StatusOK)
			if resp.Run.Stdout != "2\n" {
				t.Fatalf("stdout %q", resp.Run.Stdout)
			}
		})
	}
}

func TestStdinEchoed(t *testing.T) {
	stdin := "first line\nsecond line\n"
	for _, c := range []byLanguage{
		{"python", files("echo.py", "import sys\nsys.stdout.write(sys.stdin.read())")},
		{"javascript", files("echo.js", "process.stdout.write(require('fs').readFileSync(0, 'utf8'))")},
	} {
		t.Run(c.language, func(t *testing.T) {
			resp := runOK(t, &api.RunRequest{Language: c.language, Files: c.files, Stdin: stdin})
			expectStatus(t, resp, api.StatusOK)
			if resp.Run.Stdout != stdin {
				t.Fatalf("stdout %q, want %q", resp.Run.Stdout, stdin)
			}
		})
	}
}

func TestArgsPassed(t *testing.T) {
	args := []string{"one", "two words", "", "--flag=3"}
	for _, c := range []byLanguage{
		{"python", files("args.py", "import sys, json\nprint(json.dumps(sys.argv[1:]))")},
		{"javascript", files("args.js", "console.log(JSON.stringify(process.argv.slice(2)))")},
	} {
		t.Run(c.language, func(t *testing.T) {
			resp := runOK(t, &api.RunRequest{Language: c.language, Files: c.files, Args: args})
			expectStatus(t, resp, api.StatusOK)
			want := `["one","two words","","--flag=3"]`
			if got := strings.ReplaceAll(strings.TrimSpace(resp.Run.Stdout), `", "`, `","`); got != want {
				t.Fatalf("argv %s, want %s", got, want)
			}
		})
	}
}

func TestMultiFile(t *testing.T) {
	for _, c := range []byLanguage{
		{"python", files(
			"main.py", "from lib.greet import greet\nprint(greet('box'))",
			"lib/__init__.py", "",
			"lib/greet.py", "def greet(who):\n    return 'hello, ' + who",
		)},
		{"javascript", files(
			"main.js", "const { greet } = require('./lib/greet');\nconsole.log(greet('box'));",
			"lib/greet.js", "exports.greet = (who) => 'hello, ' + who;",
		)},
	} {
		t.Run(c.language, func(t *testing.T) {
			resp := runOK(t, &api.RunRequest{Language: c.language, Files: c.files})
			expectStatus(t, resp, api.StatusOK)
			if resp.Run.Stdout != "hello, box\n" {
				t.Fatalf("stdout %q", resp.Run.Stdout)
			}
		})
	}
}

func TestNonZeroExit(t *testing.T) {
	for _, c := range []byLanguage{
		{"python", files("exit.py", "import sys\nprint('bye', file=sys.stderr)\nsys.exit(3)")},
		{"javascript", files("exit.js", "console.error('bye'); process.exit(3)")},
	} {
		t.Run(c.language, func(t *testing.T) {
			resp := runOK(t, &api.RunRequest{Language: c.language, Files: c.files})
			expectStatus(t, resp, api.StatusRuntimeError)
			if resp.Run.ExitCode != 3 || resp.Run.Stderr != "bye\n" || resp.Run.Signal != "" {
				t.Fatalf("exit %d signal %q stderr %q", resp.Run.ExitCode, resp.Run.Signal, resp.Run.Stderr)
			}
		})
	}
}

func TestUncaughtException(t *testing.T) {
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("boom.py", "raise ValueError('boom')")})
	expectStatus(t, resp, api.StatusRuntimeError)
	if resp.Run.ExitCode != 1 || !strings.Contains(resp.Run.Stderr, "ValueError: boom") {
		t.Fatalf("exit %d stderr %q", resp.Run.ExitCode, resp.Run.Stderr)
	}
}

func TestInfiniteLoopTimesOut(t *testing.T) {
	const limit = 2000
	for _, c := range []byLanguage{
		{"python", files("loop.py", "while True:\n    pass")},
		{"javascript", files("loop.js", "for (;;) {}")},
	} {
		t.Run(c.language, func(t *testing.T) {
			start := time.Now()
			resp := runOK(t, &api.RunRequest{Language: c.language, Files: c.files, Limits: api.Limits{WallTimeMS: limit}})
			took := time.Since(start)
			expectStatus(t, resp, api.StatusTimeout)
			if resp.Run.WallTimeMS < limit || resp.Run.WallTimeMS > limit+1000 {
				t.Fatalf("run wall time %d ms; want within [%d, %d]", resp.Run.WallTimeMS, limit, limit+1000)
			}
			if took > (limit+1000)*time.Millisecond {
				t.Fatalf("the request took %s; the limit is %d ms", took, limit)
			}
			// 0.5 CPU for 2 s: the CPU time stays near 1 s.
			if resp.Run.CPUTimeMS > limit {
				t.Fatalf("cpu time %d ms over a %d ms wall limit at 0.5 CPU", resp.Run.CPUTimeMS, limit)
			}
		})
	}
}

// limits.cpu_time_ms bounds the CPU time of all the program's processes
// together: two busy processes at 1 CPU reach a 600 ms budget in about
// 600 ms of wall time, and the verdict says which limit it was.
func TestCPUTimeLimit(t *testing.T) {
	const limit = 600
	code := "import os\nos.fork()\nwhile True:\n    pass"
	start := time.Now()
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("burn.py", code),
		Limits: api.Limits{CPUTimeMS: limit, CPU: 1, WallTimeMS: 10000}})
	took := time.Since(start)
	expectStatus(t, resp, api.StatusTimeout)
	if !strings.Contains(resp.Run.Message, "CPU time limit of 600 ms") {
		t.Fatalf("message %q", resp.Run.Message)
	}
	// The count goes on past the limit by one CFS period's quota at most
	// (100 ms at 1 CPU), the watch's lateness, and what the program burns
	// while the sandbox is being stopped (up to a few hundred ms on a
	// loaded machine).
	if resp.Run.CPUTimeMS < limit || resp.Run.CPUTimeMS > limit+500 {
		t.Fatalf("cpu time %d ms, want within [%d, %d]", resp.Run.CPUTimeMS, limit, limit+500)
	}
	if took > 5*time.Second {
		t.Fatalf("the request took %s for a %d ms CPU budget", took, limit)
	}
}

func TestMemoryLimit(t *testing.T) {
	for _, c := range []byLanguage{
		{"python", files("mem.py", "x = bytearray(400 * 1024 * 1024)\nx[::4096] = b'1' * len(x[::4096])\nprint('allocated')")},
		{"javascript", files("mem.js", "const b = Buffer.alloc(400 * 1024 * 1024, 1); console.log('allocated', b.length)")},
	} {
		t.Run(c.language, func(t *testing.T) {
			resp := runOK(t, &api.RunRequest{Language: c.language, Files: c.files})
			expectStatus(t, resp, api.StatusMemoryLimit)
			if strings.Contains(resp.Run.Stdout, "allocated") {
				t.Fatalf("the allocation succeeded: %q", resp.Run.Stdout)
			}
		})
	}
}

func TestMemoryWithinLimitIsFine(t *testing.T) {
	resp := runOK(t, &api.RunRequest{Language: "python",
		Files:  files("mem.py", "x = bytearray(100 * 1024 * 1024)\nprint(len(x))"),
		Limits: api.Limits{MemoryBytes: 256 << 20}})
	expectStatus(t, resp, api.StatusOK)
	if resp.Run.MemoryBytes < 100<<20 || resp.Run.MemoryBytes > 256<<20 {
		t.Fatalf("peak memory %d, want between 100 MiB and the 256 MiB limit", resp.Run.MemoryBytes)
	}
}

// TestPidsLimit: the program's processes and threads are held by the pids
// limit, and the next run is not affected.
func TestPidsLimit(t *testing.T) {
	code := `import os, threading, time
n = 0
try:
    for _ in range(200):
        threading.Thread(target=time.sleep, args=(2,), daemon=True).start()
        n += 1
except RuntimeError:
    pass
forks = 0
try:
    for _ in range(50):
        if os.fork() == 0:
            time.sleep(2)
            os._exit(0)
        forks += 1
except OSError as e:
    print("fork", e.errno)
print("threads", n)
`
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("pids.py", code), Limits: api.Limits{Pids: 16, MemoryBytes: 256 << 20}})
	expectStatus(t, resp, api.StatusOK)
	// 16 tasks: the main thread and 15 more; the threads took them all, so
	// fork fails with EAGAIN (11).
	if resp.Run.Stdout != "fork 11\nthreads 15\n" {
		t.Fatalf("stdout %q", resp.Run.Stdout)
	}
	resp = runOK(t, &api.RunRequest{Language: "python", Files: files("after.py", "print('fine')")})
	expectStatus(t, resp, api.StatusOK)
}

func TestOutputLimit(t *testing.T) {
	const capBytes = 64 << 10 // the default
	for _, c := range []byLanguage{
		{"python", files("flood.py", "import sys\nsys.stdout.write('x' * (10 * 1024 * 1024))")},
		{"javascript", files("flood.js", "process.stdout.write('x'.repeat(10 * 1024 * 1024))")},
	} {
		t.Run(c.language, func(t *testing.T) {
			resp := runOK(t, &api.RunRequest{Language: c.language, Files: c.files})
			expectStatus(t, resp, api.StatusOutputLimit)
			if len(resp.Run.Stdout) != capBytes || !resp.Run.StdoutTruncated {
				t.Fatalf("stdout holds %d bytes (truncated %v), want exactly %d", len(resp.Run.Stdout), resp.Run.StdoutTruncated, capBytes)
			}
			if strings.Trim(resp.Run.Stdout, "x") != "" {
				t.Fatalf("stdout holds other bytes than the program wrote")
			}
			if resp.Run.StderrTruncated {
				t.Fatalf("stderr marked truncated")
			}
		})
	}
}

func TestFilesDoNotPersist(t *testing.T) {
	write := "open('/box/left.txt', 'w').write('x')\nopen('/tmp/left.txt', 'w').write('x')\nprint('written')"
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("w.py", write)})
	expectStatus(t, resp, api.StatusOK)
	if resp.Run.Stdout != "written\n" {
		t.Fatalf("stdout %q", resp.Run.Stdout)
	}
	check := "import os\nprint(os.path.exists('/box/left.txt'), os.path.exists('/tmp/left.txt'), sorted(os.listdir('/box')))"
	resp = runOK(t, &api.RunRequest{Language: "python", Files: files("r.py", check)})
	expectStatus(t, resp, api.StatusOK)
	if resp.Run.Stdout != "False False ['r.py']\n" {
		t.Fatalf("stdout %q: a file of the previous run is visible", resp.Run.Stdout)
	}
}

func TestSandboxHardening(t *testing.T) {
	code := `import os
print(os.getuid(), os.getgid())
print('root read-only' if os.statvfs('/').f_flag & os.ST_RDONLY else 'root writable')
status = open('/proc/self/status').read()
print([l for l in status.splitlines() if l.startswith('CapEff')][0].split()[1])
print([l for l in status.splitlines() if l.startswith('NoNewPrivs')][0].split()[1])
print(os.getcwd())
`
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("h.py", code)})
	expectStatus(t, resp, api.StatusOK)
	lines := strings.Split(strings.TrimSpace(resp.Run.Stdout), "\n")
	want := []string{"65534 65534", "root read-only", "0000000000000000", "1", "/box"}
	if len(lines) != len(want) {
		t.Fatalf("stdout %q", resp.Run.Stdout)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, lines[i], want[i])
		}
	}
}

func TestBoxIsCapped(t *testing.T) {
	code := `import errno
try:
    with open('/box/big', 'wb') as f:
        for _ in range(64):
            f.write(b'x' * (1 << 20))
    print('wrote 64 MiB')
except OSError as e:
    print('stopped', e.errno)
`
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("fill.py", code), Limits: api.Limits{MemoryBytes: 256 << 20}})
	if strings.Contains(resp.Run.Stdout, "wrote 64 MiB") {
		t.Fatalf("/box took 64 MiB: %q", resp.Run.Stdout)
	}
	// ENOSPC (28) from the box's size, or EFBIG (27) from RLIMIT_FSIZE, which
	// gVisor may turn into SIGXFSZ.
	if !strings.Contains(resp.Run.Stdout, "stopped 28") && !strings.Contains(resp.Run.Stdout, "stopped 27") && resp.Run.Signal != "SIGXFSZ" {
		t.Fatalf("status %s stdout %q stderr %q signal %q", resp.Status, resp.Run.Stdout, trim(resp.Run.Stderr), resp.Run.Signal)
	}
}

func TestRuntimes(t *testing.T) {
	rs, err := env.Client.Runtimes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]api.Runtime{}
	for _, r := range rs.Runtimes {
		got[r.Language] = r
	}
	for lang, ext := range map[string]string{"python": ".py", "javascript": ".js"} {
		r, ok := got[lang]
		if !ok {
			t.Fatalf("%s missing from %+v", lang, rs.Runtimes)
		}
		if r.Extension != ext || !r.ImagePresent || r.Version == "" || len(r.Aliases) == 0 {
			t.Errorf("%s: %+v", lang, r)
		}
	}
}

func TestHealth(t *testing.T) {
	h, err := env.Client.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || h.Containerd == "" {
		t.Fatalf("%+v", h)
	}
}

func TestSocketMode(t *testing.T) {
	fi, err := os.Stat(env.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v, want a socket with 0660", fi.Mode())
	}
	// make deps creates the group; the socket belongs to it.
	g, err := user.LookupGroup("runtimed")
	if err != nil {
		t.Fatalf("group runtimed: %v", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("no stat of %s", fi.Name())
	}
	if gid := fmt.Sprint(st.Gid); gid != g.Gid {
		t.Fatalf("socket group %s, want runtimed (%s)", gid, g.Gid)
	}
}

// TestBadInputCreatesNothing sends bad requests and checks each gets its
// 4xx and that no container or run directory appears.
func TestBadInputCreatesNothing(t *testing.T) {
	big := strings.Repeat("x", 3<<20)
	cases := []struct {
		name   string
		body   string
		status int
		code   api.ErrorCode
		field  string
	}{
		{"malformed JSON", `{"language": "python", "files": [`, 400, api.CodeInvalidJSON, ""},
		{"unknown field", `{"language": "python", "files": [{"name": "a.py", "content": ""}], "bogus": 1}`, 400, api.CodeInvalidRequest, "bogus"},
		{"unknown language", `{"language": "cobol", "files": [{"name": "a.cob", "content": ""}]}`, 400, api.CodeUnknownLanguage, "language"},
		{"no files", `{"language": "python", "files": []}`, 400, api.CodeInvalidRequest, "files"},
		{"absolute name", `{"language": "python", "files": [{"name": "/etc/passwd", "content": ""}]}`, 400, api.CodeInvalidFile, "files[0].name"},
		{"dot-dot name", `{"language": "python", "files": [{"name": "a.py", "content": ""}, {"name": "../x", "content": ""}]}`, 400, api.CodeInvalidFile, "files[1].name"},
		{"NUL in name", `{"language": "python", "files": [{"name": "a\u0000.py", "content": ""}]}`, 400, api.CodeInvalidFile, "files[0].name"},
		{"empty part", `{"language": "python", "files": [{"name": "a//b.py", "content": ""}]}`, 400, api.CodeInvalidFile, "files[0].name"},
		{"too many files", tooManyFiles(40), 400, api.CodeInvalidRequest, "files"},
		{"limit over maximum", `{"language": "python", "files": [{"name": "a.py", "content": ""}], "limits": {"memory_bytes": 4294967296}}`, 400, api.CodeLimitExceeded, "limits.memory_bytes"},
		{"negative limit", `{"language": "python", "files": [{"name": "a.py", "content": ""}], "limits": {"wall_time_ms": -1}}`, 400, api.CodeInvalidRequest, "limits.wall_time_ms"},
		{"body over cap", `{"language": "python", "files": [{"name": "a.py", "content": "` + big + `"}]}`, 413, api.CodeBodyTooLarge, ""},
		{"code over cap", `{"language": "python", "files": [{"name": "a.py", "content": "` + strings.Repeat("y", 65*1024) + `"}]}`, 413, api.CodeBodyTooLarge, "files"},
	}
	// What earlier tests released is removed in the background.
	waitNoLeftovers(t, 10*time.Second)
	before := sandboxState(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := postRaw(t, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, body)
			}
			var e api.Error
			if err := decodeErrorBody(body, &e); err != nil {
				t.Fatalf("error body %q: %v", body, err)
			}
			if e.Code != c.code || e.Field != c.field || e.Message == "" {
				t.Fatalf("error %+v, want code %q field %q", e, c.code, c.field)
			}
		})
	}
	if after := sandboxState(t); after != before {
		t.Fatalf("bad requests changed sandbox state: before %q, after %q", before, after)
	}
}

func tooManyFiles(n int) string {
	var b strings.Builder
	b.WriteString(`{"language": "python", "files": [`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"name": "f%d.py", "content": ""}`, i)
	}
	b.WriteString("]}")
	return b.String()
}

// sandboxState sums up what exists: container count and run directories.
func sandboxState(t *testing.T) string {
	t.Helper()
	return strings.Join(leftovers(), ";")
}

func TestClientGoneCleansUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := env.Client.Run(ctx, &api.RunRequest{Language: "python", Files: files("sleep.py", "import time\ntime.sleep(30)")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the client's deadline", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := leftovers()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the client went away: %v", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A client that goes away while its sandbox is being made, at whatever
// step: nothing of that sandbox may stay, its shim process included (a
// creation cut off inside containerd's task create leaves the shim
// running with no task to delete it by). The request's limits are not the
// pool's, so each makes its sandbox while the client waits.
func TestClientGoneDuringCreation(t *testing.T) {
	waitNoLeftovers(t, 10*time.Second)
	for after := 20 * time.Millisecond; after <= 400*time.Millisecond; after += 20 * time.Millisecond {
		ctx, cancel := context.WithTimeout(t.Context(), after)
		_, err := env.Client.Run(ctx, &api.RunRequest{Language: "python", Files: files("main.py", "print('hello')"),
			Limits: api.Limits{MemoryBytes: 96 << 20}})
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("gone after %s: err = %v, want the client's deadline or an answer", after, err)
		}
	}
	waitNoLeftovers(t, 15*time.Second)
}

func TestUnknownEndpoint(t *testing.T) {
	resp, err := unixHTTP().Get("http://runtimed/v1/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestRunDirectoryIsPrivate(t *testing.T) {
	fi, err := os.Stat(filepath.Join(env.StateDir, "runs", "runtimed"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("run directory mode %v, want 0700", fi.Mode().Perm())
	}
}
