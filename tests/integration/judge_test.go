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

// spinCPU keeps a CPU busy for the milliseconds its stdin names, and
// prints how often it was stopped for longer than 20 ms on the way: the
// sandbox's CPU quota throttling it (its CPU time is no measure of that:
// gVisor counts the time the program is scheduled to run). The stops do
// not count as running.
const spinCPU = `#include <stdio.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }
int main(void) {
	int target, stops = 0;
	if (scanf("%d", &target) != 1) return 2;
	volatile unsigned long x = 0;
	double ran = 0, last = now();
	while (ran < target) {
		for (int i = 0; i < 10000; i++) x += i;
		double t = now();
		if (t - last > 20) stops++; else ran += t - last;
		last = t;
	}
	printf("%d\n", stops);
	return 0;
}
`

// TestJudgedTestsStartWithTheirOwnCPU: each test starts with the CPU
// allowance of an idle sandbox (its quota for a period and the burst:
// 100 ms at 0.5 CPU), whatever the tests before it used: four tests that
// each keep a CPU busy for 70 ms run without a stop, one after the other
// (without the refill, each starts with what the ones before it left: the
// third and fourth were stopped). The last test, 400 ms, is stopped: the
// quota holds within a test.
func TestJudgedTestsStartWithTheirOwnCPU(t *testing.T) {
	in, _ := harness.StartInstance(t, "judge-cpu", "")
	cl := api.NewClient(in.Socket, "")
	var tests []api.Test
	for _, ms := range []string{"70", "70", "70", "70", "400"} {
		tests = append(tests, api.Test{Stdin: ms})
	}
	resp, err := cl.Run(context.Background(), &api.RunRequest{Language: "c", Files: harness.Files("spin.c", spinCPU), Tests: tests,
		Limits: api.Limits{CPU: 0.5}})
	if err != nil {
		t.Fatal(err)
	}
	compiledOK(t, resp)
	var stops []int
	for i, r := range resp.Tests {
		n, err := strconv.Atoi(strings.TrimSpace(r.Stdout))
		if r.Status != api.StatusOK || err != nil {
			t.Fatalf("test %d: %s %q %q", i, r.Status, r.Stdout, r.Stderr)
		}
		stops = append(stops, n)
	}
	t.Logf("stops of over 20 ms: %v", stops)
	for i, n := range stops[:4] {
		if n > 0 {
			t.Errorf("test %d (70 ms) was stopped %d times: throttled by what the tests before it used (all: %v)", i, n, stops)
		}
	}
	if stops[4] == 0 {
		t.Errorf("400 ms at 0.5 CPU ran without a stop: the quota did not hold (all: %v)", stops)
	}
}
