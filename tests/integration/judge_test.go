//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// programsRun reads runtimed_sandbox_programs_total from an instance's
// /metrics: the programs run in a sandbox of their own (first) and again
// in the sandbox of their request's previous test.
func programsRun(t *testing.T, socket string) (first, again int) {
	t.Helper()
	status, body := harness.Do(t, harness.UnixHTTPTo(socket), http.MethodGet, "http://runtimed/metrics", "", "", "")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	count := func(label string) int {
		m := regexp.MustCompile(`runtimed_sandbox_programs_total\{sandbox="` + label + `"\} (\d+)`).FindSubmatch(body)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	return count("first"), count("again")
}

const aPlusB = "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; std::cout << a + b << std::endl; }\n"

// TestJudgedInOneSandbox: a C++ submission's 20 tests run in one run
// sandbox after its compile: 19 programs run again in a sandbox.
func TestJudgedInOneSandbox(t *testing.T) {
	in, _ := harness.StartInstance(t, "judge", "")
	cl := api.NewClient(in.Socket, "")
	var tests []api.Test
	for i := range 20 {
		want := strconv.Itoa(i + 1000*i)
		tests = append(tests, api.Test{Stdin: fmt.Sprintf("%d %d\n", i, 1000*i), ExpectedOutput: &want})
	}
	first0, again0 := programsRun(t, in.Socket)
	resp, err := cl.Run(context.Background(), &api.RunRequest{Language: "cpp", Files: harness.Files("ab.cpp", aPlusB), Tests: tests})
	if err != nil {
		t.Fatal(err)
	}
	compiledOK(t, resp)
	if resp.Status != api.StatusOK || resp.Summary[api.StatusOK] != 20 {
		t.Fatalf("status %s summary %v", resp.Status, resp.Summary)
	}
	first, again := programsRun(t, in.Socket)
	if first-first0 != 2 || again-again0 != 19 {
		t.Fatalf("programs: %d in a sandbox of their own, %d again; want 2 (compile, test 0) and 19", first-first0, again-again0)
	}
}

// TestJudgedLimitsEndOnlyTheirTest: a test stopped at its wall time, at
// its output limit, and one whose memory kill took its sandbox, each end
// only themselves; the tests after them pass.
func TestJudgedLimitsEndOnlyTheirTest(t *testing.T) {
	in, _ := harness.StartInstance(t, "judge-limits", "")
	cl := api.NewClient(in.Socket, "")
	prog := `import sys, time
w = sys.stdin.read().strip()
if w == "sleep":
    time.sleep(30)
elif w == "spam":
    while True:
        sys.stdout.write("x" * 4096)
elif w == "eat":
    b = []
    while True:
        b.append(bytearray(16 << 20))
print("ok", w)
`
	want := func(w string) *string { s := "ok " + w; return &s }
	var tests []api.Test
	for _, w := range []string{"a", "sleep", "b", "spam", "c", "eat", "d", "e"} {
		tests = append(tests, api.Test{Stdin: w, ExpectedOutput: want(w)})
	}
	first0, again0 := programsRun(t, in.Socket)
	start := time.Now()
	resp, err := cl.Run(context.Background(), &api.RunRequest{Language: "python", Files: harness.Files("j.py", prog), Tests: tests,
		Limits: api.Limits{WallTimeMS: 2000, MemoryBytes: 128 << 20, OutputBytes: 64 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range resp.Tests {
		got = append(got, string(r.Status))
	}
	wantStatus := "ok timeout ok output_limit ok memory_limit ok ok"
	if strings.Join(got, " ") != wantStatus {
		t.Fatalf("tests %v, want %s (in %s)", got, wantStatus, time.Since(start))
	}
	first, again := programsRun(t, in.Socket)
	t.Logf("programs: %d in a sandbox of their own, %d again, in %s", first-first0, again-again0, time.Since(start))
	if first-first0 > 2 || again-again0 < 6 {
		t.Fatalf("programs: %d in a sandbox of their own, %d again; want at most 2 (the first, the one after the memory kill)", first-first0, again-again0)
	}
	// stop_on_first_failure: the tests after the first failure are skipped.
	resp, err = cl.Run(context.Background(), &api.RunRequest{Language: "python", Files: harness.Files("j.py", prog),
		Tests: tests[:4], StopOnFirstFailure: true, Limits: api.Limits{WallTimeMS: 2000}})
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, r := range resp.Tests {
		got = append(got, string(r.Status))
	}
	if strings.Join(got, " ") != "ok timeout skipped skipped" || resp.Status != api.StatusTimeout || resp.Summary[api.StatusSkipped] != 2 {
		t.Fatalf("stop_on_first_failure: tests %v, status %s, summary %v", got, resp.Status, resp.Summary)
	}
	harness.WaitNoLeftovers(t, 30*time.Second)
}
