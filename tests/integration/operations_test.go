//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

func sleepRun(seconds string) *api.RunRequest {
	return &api.RunRequest{Language: "python", Files: files("s.py", "import time\ntime.sleep("+seconds+")\nprint('slept')"),
		Limits: api.Limits{WallTimeMS: 30000}}
}

// TestShutdownDrains: on SIGTERM, an execution that finishes within
// shutdown_timeout_ms gets its answer; one still running at the deadline
// is stopped and answered 503; runtimed exits 0 and leaves nothing.
func TestShutdownDrains(t *testing.T) {
	in, err := harness.NewInstance("drain", "shutdown_timeout_ms = 3000")
	if err != nil {
		t.Fatal(err)
	}
	d, err := harness.Start(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(in.Socket, "")
	type result struct {
		resp *api.RunResponse
		err  error
	}
	short, long := make(chan result, 1), make(chan result, 1)
	go func() { r, err := c.Run(context.Background(), sleepRun("1.5")); short <- result{r, err} }()
	go func() { r, err := c.Run(context.Background(), sleepRun("25")); long <- result{r, err} }()
	waitTasks(t, 2)
	start := time.Now()
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s := <-short
	if s.err != nil || s.resp.Status != api.StatusOK || s.resp.Run.Stdout != "slept\n" {
		t.Fatalf("the short execution: %v %+v", s.err, s.resp)
	}
	l := <-long
	var aerr *api.Error
	if !errors.As(l.err, &aerr) || aerr.HTTPStatus != http.StatusServiceUnavailable || !strings.Contains(aerr.Message, "shutting down") {
		t.Fatalf("the long execution: %v, want a 503 saying runtimed is shutting down", l.err)
	}
	if took := time.Since(start); took < 3*time.Second || took > 10*time.Second {
		t.Fatalf("the long execution was answered %s after SIGTERM; the deadline is 3 s", took)
	}
	select {
	case err := <-d.Exited():
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runtimed did not exit")
	}
	waitNoLeftovers(t, 5*time.Second)
}

// waitTasks waits until n tasks run in containerd.
func waitTasks(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(strings.Join(leftovers(), ";"), "task ") < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks did not start: %v", n, leftovers())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let them start their programs
}

// TestReload: SIGHUP applies new limits and languages without dropping a
// request under way; a configuration that fails validation is refused and
// the running one stays.
func TestReload(t *testing.T) {
	in, d := harness.StartInstance(t, "reload", "")
	c := api.NewClient(in.Socket, "")
	ask := func(wall int64) error {
		_, err := c.Run(context.Background(), &api.RunRequest{Language: "py3", Files: files("a.py", "print(1)"), Limits: api.Limits{WallTimeMS: wall}})
		return err
	}
	if err := ask(20000); err == nil || !strings.Contains(err.Error(), "unknown language") {
		t.Fatalf("before the reload, py3 is no alias: %v", err)
	}
	base, err := os.ReadFile(in.Config)
	if err != nil {
		t.Fatal(err)
	}
	during := make(chan error, 1)
	go func() { _, err := c.Run(context.Background(), sleepRun("2")); during <- err }()
	waitTasks(t, 1)

	newCfg := string(base) + `
[maximums]
memory_bytes = 536870912
cpu = 2.0
wall_time_ms = 10000
pids = 256
output_bytes = 1048576

[languages.python]
version = "3.11"
aliases = ["py3"]
extension = ".py"
image = "runtimed.local/python:3.11"
run = ["/usr/bin/python3.11", "-B", "{entry}"]
`
	if err := os.WriteFile(in.Config, []byte(newCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := <-during; err != nil {
		t.Fatalf("the request under way during the reload: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ask(20000)
		var aerr *api.Error
		if errors.As(err, &aerr) && aerr.Code == api.CodeLimitExceeded && aerr.Field == "limits.wall_time_ms" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the reload, 20 s over the new 10 s maximum: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := ask(5000); err != nil {
		t.Fatalf("the new alias under the new maximum: %v", err)
	}

	// A bad configuration is refused; the running one stays.
	if err := os.WriteFile(in.Config, []byte(newCfg+"\nbogus_key = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		log, _ := os.ReadFile(in.Log)
		if strings.Contains(string(log), "reload refused") && strings.Contains(string(log), "bogus_key") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refused reload was not logged")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := ask(5000); err != nil {
		t.Fatalf("after a refused reload: %v", err)
	}
	if _, err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A language whose command is not in its image: unavailable after
	// the reload that adds it, available after the one that fixes it.
	typo := func(interpreter string) {
		t.Helper()
		table := fmt.Sprintf("\n[languages.typo]\nversion = \"1.0.0\"\nextension = \".typo\"\nimage = \"runtimed.local/python:3.11\"\nrun = [%q, \"{entry}\"]\n", interpreter)
		if err := os.WriteFile(in.Config, []byte(newCfg+table), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	runTypo := func() (*api.RunResponse, error) {
		return c.Run(context.Background(), &api.RunRequest{Language: "typo", Files: files("a.typo", "print('typo')")})
	}
	typo("/usr/bin/python3.99")
	for deadline = time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := runTypo()
		var aerr *api.Error
		if errors.As(err, &aerr) && aerr.Code == api.CodeLanguageUnavailable && strings.Contains(aerr.Message, "/usr/bin/python3.99 is not in its image") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a language whose interpreter is not in its image: %v", err)
		}
	}
	typo("/usr/bin/python3.11")
	for deadline = time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := runTypo()
		if err == nil && resp.Run != nil && resp.Run.Stdout == "typo\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fixed language: %v %+v", err, resp)
		}
	}
}

// TestContainerdRestart: while containerd is down, /readyz says so and
// runs get a clear 503; when it is back, runtimed works again by itself.
func TestContainerdRestart(t *testing.T) {
	err := harness.RestartContainerd(func() {
		ready, err := env.Client.Ready(context.Background())
		var aerr *api.Error
		if !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusServiceUnavailable || ready.Ready || ready.Checks["containerd"] == "ok" {
			t.Errorf("/readyz with containerd down: %v %+v", err, ready)
		}
		if _, err := env.Client.Health(context.Background()); err == nil {
			t.Error("/healthz says containerd answers while it is down")
		}
		_, err = env.Client.Run(context.Background(), &api.RunRequest{Language: "python", Files: files("a.py", "print(1)")})
		if !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusServiceUnavailable || !strings.Contains(aerr.Message, "containerd") {
			t.Errorf("a run with containerd down: %v, want a 503 naming containerd", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The suite's config has a language whose image is never built, so
	// readiness is the containerd check here.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready, err := env.Client.Ready(context.Background())
		if ready != nil && ready.Checks["containerd"] == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready 30 s after containerd came back: %v %+v", err, ready)
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("a.py", "print('back')")})
	expectStatus(t, resp, api.StatusOK)
}
