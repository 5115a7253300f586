//go:build integration

package security

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// sleeper is a Python program that sleeps for its stdin's seconds.
var sleeper = py("sleeper", "import sys, time\ntime.sleep(float(sys.stdin.read() or 0))\nprint('slept')\n")

func sleepTests(n int, seconds string) []api.Test {
	tests := make([]api.Test, n)
	for i := range tests {
		tests[i] = api.Test{Stdin: seconds}
	}
	return tests
}

// waitForTasks waits until at least n sandboxes run a program (tasks the
// pools do not hold).
func waitForTasks(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := harness.Leftovers()
		if strings.Count(fmt.Sprint(left), "task ") >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d executions did not start: %v", n, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLongRequestsDoNotHoldTheService: requests with many tests hold all
// the daemon's sandboxes; a plain print sent meanwhile waits for one test
// to end, not for the requests: each test queues again for its sandbox.
func TestLongRequestsDoNotHoldTheService(t *testing.T) {
	base := readHost(t)
	const long, tests = 4, 6 // max_concurrent is 4
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	results := make([]*api.RunResponse, long)
	errs := make([]error, long)
	for i := range long {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = env.Client.Run(ctx, &api.RunRequest{Language: "python", Files: sleeper, Tests: sleepTests(tests, "1.5")})
		}()
	}
	waitForTasks(t, long)
	start := time.Now()
	resp, err := env.Client.Run(ctx, &api.RunRequest{Language: "python", Files: py("hello", "print('hello')")})
	waited := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	stdoutIs(t, resp, "hello\n")
	// Each long request takes about 6 × 1.7 s; a test ends every ~0.4 s.
	if waited > 5*time.Second {
		t.Fatalf("a plain print waited %s behind four requests of %d tests", waited, tests)
	}
	t.Logf("a plain print answered in %s while four requests of %d tests ran", waited.Round(time.Millisecond), tests)
	wg.Wait()
	for i := range long {
		if errs[i] != nil {
			t.Fatalf("long request %d: %v", i, errs[i])
		}
		if results[i].Status != api.StatusOK || results[i].Summary[api.StatusOK] != tests {
			t.Fatalf("long request %d: %s %v %s", i, results[i].Status, results[i].Summary, results[i].Message)
		}
	}
	hostIsFine(t, base)
}

// TestRequestDeadline: at the request's deadline the test running is
// stopped, saying why, the rest are skipped, and the answer comes then.
func TestRequestDeadline(t *testing.T) {
	base := readHost(t)
	start := time.Now()
	resp := harness.RunOK(t, &api.RunRequest{Language: "python", Files: sleeper, Tests: sleepTests(10, "1"), DeadlineMS: 3000})
	took := time.Since(start)
	if took > 5*time.Second {
		t.Fatalf("a request with a 3 s deadline took %s", took)
	}
	if resp.Summary[api.StatusOK] < 1 || resp.Summary[api.StatusSkipped] < 5 || resp.Status != api.StatusTimeout && resp.Status != api.StatusSkipped {
		t.Fatalf("status %s summary %v", resp.Status, resp.Summary)
	}
	if !strings.Contains(resp.Message, "deadline") || !strings.Contains(resp.Message, "skipped") {
		t.Fatalf("message %q", resp.Message)
	}
	seenSkip := false
	for i, r := range resp.Tests {
		switch r.Status {
		case api.StatusOK:
			if seenSkip {
				t.Fatalf("test %d ran after a skipped one", i)
			}
		case api.StatusTimeout:
			if !strings.Contains(r.Message, "deadline") {
				t.Fatalf("test %d stopped by the deadline says %q", i, r.Message)
			}
		case api.StatusSkipped:
			seenSkip = true
			if r.WallTimeMS != 0 || !strings.Contains(r.Message, "deadline") {
				t.Fatalf("skipped test %d: %+v", i, r)
			}
		default:
			t.Fatalf("test %d: %s", i, r.Status)
		}
	}

	// A single run: stopped at the deadline, before its own wall time.
	start = time.Now()
	resp = harness.RunOK(t, &api.RunRequest{Language: "python", Files: sleeper, Stdin: "20", Limits: api.Limits{WallTimeMS: 30000}, DeadlineMS: 2000})
	if took := time.Since(start); took > 4*time.Second {
		t.Fatalf("a run with a 2 s deadline took %s", took)
	}
	if resp.Status != api.StatusTimeout || !strings.Contains(resp.Run.Message, "deadline") {
		t.Fatalf("status %s message %q", resp.Status, resp.Run.Message)
	}
	hostIsFine(t, base)
}

// TestQueueWaitIsBounded: with every sandbox in use, a new request waits
// at most max_queue_wait_ms, then is told the daemon is busy.
func TestQueueWaitIsBounded(t *testing.T) {
	in, _ := harness.StartInstance(t, "queue-wait", "[requests]\nmax_concurrent = 1\nmax_queue_wait_ms = 1000\n[pool]\nenabled = false\n")
	client := api.NewClient(in.Socket, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	held := make(chan error, 1)
	go func() {
		_, err := client.Run(ctx, &api.RunRequest{Language: "python", Files: sleeper, Stdin: "4"})
		held <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if r, _ := runningOn(t, in.Socket); r >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first request did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	status, body := harness.Do(t, harness.UnixHTTPTo(in.Socket), http.MethodPost, "http://runtimed/v1/run", "application/json", "",
		`{"language": "python", "files": [{"name": "a.py", "content": "print(1)"}]}`)
	waited := time.Since(start)
	var aerr api.Error
	if err := harness.DecodeErrorBody(body, &aerr); err != nil || status != http.StatusServiceUnavailable || aerr.Code != api.CodeBusy {
		t.Fatalf("a request behind a busy daemon: %d %s, want 503 busy", status, body)
	}
	if waited < 900*time.Millisecond || waited > 3*time.Second {
		t.Fatalf("refused after %s, want after the 1 s maximum wait", waited)
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
}

// runningOn reads the daemon's load from its metrics: the sandboxes in
// use and the stages waiting.
func runningOn(t *testing.T, socket string) (running, queued int) {
	t.Helper()
	status, body := harness.Do(t, harness.UnixHTTPTo(socket), http.MethodGet, "http://runtimed/metrics", "", "", "")
	if status != http.StatusOK {
		t.Fatalf("metrics: %d", status)
	}
	for _, line := range strings.Split(string(body), "\n") {
		var n float64
		if _, err := fmt.Sscanf(line, "runtimed_executions_in_flight %g", &n); err == nil {
			running = int(n)
		}
		if _, err := fmt.Sscanf(line, "runtimed_executions_queued %g", &n); err == nil {
			queued = int(n)
		}
	}
	return running, queued
}

// TestPlatformFailureShowsNothingOfTheHost: a sandbox that cannot run its
// program is a 500 that names the request id and nothing of the host.
func TestPlatformFailureShowsNothingOfTheHost(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://runtimed/v1/run",
		strings.NewReader(`{"language": "failing", "files": [{"name": "a.failing", "content": ""}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "hide-the-host")
	resp, err := harness.UnixHTTP().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusInternalServerError || eb.Error.Code != api.CodeInternal {
		t.Fatalf("%d %+v, want 500 internal_error", resp.StatusCode, eb.Error)
	}
	msg := eb.Error.Message
	for _, secret := range []string{env.StateDir, env.Dir, "/var/lib", "runs/", "rt-", "no-such-interpreter"} {
		if strings.Contains(msg, secret) {
			t.Fatalf("the answer shows %q: %s", secret, msg)
		}
	}
	if !strings.Contains(msg, "hide-the-host") {
		t.Fatalf("the answer does not give the request id: %s", msg)
	}
	// The log has the details under that id.
	log, err := os.ReadFile(env.Daemon.Log)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "hide-the-host") && strings.Contains(line, "/tmp/no-such-interpreter") {
			found = true
		}
	}
	if !found {
		t.Fatal("the daemon's log has no line with the request id and the failure")
	}
}
