//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runtimed/runtimed/internal/fakeshim"
	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

func TestPlatformFailuresLeaveNothing(t *testing.T) {
	ctx := context.Background()
	_, err := env.Client.Run(ctx, &api.RunRequest{Language: "noimage", Files: files("a.noimage", "")})
	var aerr *api.Error
	if !errors.As(err, &aerr) || aerr.HTTPStatus != 503 || aerr.Code != api.CodeImageMissing {
		t.Fatalf("missing image: %v, want 503 image_missing", err)
	}
	waitNoLeftovers(t, 5*time.Second)

	// A language whose command is not in its image (this suite's
	// "broken" runs /nonexistent/interpreter) is found out when the
	// images are looked at, and refused before anything is made.
	_, err = env.Client.Run(ctx, &api.RunRequest{Language: "broken", Files: files("a.broken", "")})
	if !errors.As(err, &aerr) || aerr.HTTPStatus != 503 || aerr.Code != api.CodeLanguageUnavailable ||
		!strings.Contains(aerr.Message, "/nonexistent/interpreter is not in its image runtimed.local/python:3.11") {
		t.Fatalf("missing interpreter: %v, want 503 language_unavailable", err)
	}
	rs, err := env.Client.Runtimes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.Runtimes {
		if (r.Unavailable != "") != (r.Language == "broken") {
			t.Errorf("%s %s: unavailable %q", r.Language, r.Version, r.Unavailable)
		}
	}
	ready, _ := env.Client.Ready(ctx)
	if ready == nil || !strings.Contains(ready.Checks["languages"], "broken 0 (/nonexistent/interpreter is not in its image") {
		t.Errorf("/readyz: %+v", ready)
	}

	// An interpreter looked for only in the sandbox ("failing": in /tmp,
	// which the run mounts) fails there: a platform failure.
	resp, err := env.Client.Run(ctx, &api.RunRequest{Language: "failing", Files: files("a.failing", "")})
	switch {
	case errors.As(err, &aerr):
		if aerr.HTTPStatus != 500 || aerr.Code != api.CodeInternal {
			t.Fatalf("missing interpreter in the sandbox: %v, want 500 internal_error", err)
		}
	case err != nil:
		t.Fatal(err)
	default:
		// runsc may start the sandbox and report the failed exec as the
		// program's exit instead.
		if resp.Status != api.StatusRuntimeError {
			t.Fatalf("missing interpreter in the sandbox: %+v", resp)
		}
	}
	waitNoLeftovers(t, 5*time.Second)
	waitNoLeftovers(t, 5*time.Second)
}

// TestCrashRecovery kills runtimed in the middle of executions, checks
// that they left sandboxes behind, and that the next start removes them.
func TestCrashRecovery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A load: more executions than run at once (4); the rest queue.
	const load = 6
	errs := make(chan error, load)
	for i := 0; i < load; i++ {
		go func() {
			_, err := env.Client.Run(ctx, &api.RunRequest{Language: "python", Files: files("s.py", "import time\ntime.sleep(60)"),
				Limits: api.Limits{WallTimeMS: 30000}})
			errs <- err
		}()
	}
	// Wait until the four sandboxes that may run at once exist (besides
	// the ready ones in the warm pools).
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := 0
		for _, l := range leftovers() {
			if strings.HasPrefix(l, "container ") {
				n++
			}
		}
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sandboxes at work after 30 s, want 4", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let the tasks start
	env.Daemon.Kill()
	for i := 0; i < load; i++ {
		if err := <-errs; err == nil {
			t.Fatal("a request succeeded although runtimed was killed")
		}
	}
	left := leftovers()
	if len(left) == 0 {
		t.Fatal("the crash left nothing behind: the test proves nothing")
	}
	if !strings.Contains(fmt.Sprint(left), "task") || !strings.Contains(fmt.Sprint(left), "run directory") {
		t.Fatalf("expected tasks and run directories among the leftovers: %v", left)
	}

	// A shim whose task creation the crash cut off can outlive its
	// sandbox, with containerd no longer knowing it (it happens now and
	// then when the kill lands inside a pool's task create). One is made
	// here for sure: a process with such a shim's command line, for a
	// sandbox containerd has no container of.
	orphan, orphanGone, err := fakeshim.Start(env.Containerd, harness.Namespace, "rt-00000000000000aa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = orphan.Process.Signal(syscall.SIGTERM) })

	start := time.Now()
	d, err := harness.StartRuntimed(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	env.Daemon = d
	waitNoLeftovers(t, 5*time.Second)
	t.Logf("removed %d leftovers in %s", len(left), time.Since(start).Round(time.Millisecond))
	if err := fakeshim.EndsBySIGTERM(orphanGone, 5*time.Second); err != nil {
		t.Fatalf("the orphaned shim, after the restart: %v", err)
	}

	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("ok.py", "print('back')")})
	expectStatus(t, resp, api.StatusOK)
}

func TestImagesAreSlim(t *testing.T) {
	code := `import os
for d in ['/usr/share/doc', '/usr/share/man', '/usr/share/info', '/var/lib/apt/lists', '/var/cache/apt', '/usr/share/locale']:
    n = len(os.listdir(d)) if os.path.isdir(d) else 0
    print(d, n)
`
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("slim.py", code)})
	expectStatus(t, resp, api.StatusOK)
	for _, line := range strings.Split(strings.TrimSpace(resp.Run.Stdout), "\n") {
		if !strings.HasSuffix(line, " 0") {
			t.Errorf("not slim: %s entries", line)
		}
	}
}

func TestImageBuildSkipsCurrentImages(t *testing.T) {
	out, err := harness.ImageBuild(env.Config).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, lang := range []string{"python", "javascript"} {
		if !strings.Contains(string(out), lang+": runtimed.local/") || !strings.Contains(string(out), "is up to date") {
			t.Errorf("%s was not found up to date:\n%s", lang, out)
		}
	}
	if strings.Contains(string(out), "built") || strings.Contains(string(out), "imported") {
		t.Fatalf("an unchanged image was rebuilt or reimported:\n%s", out)
	}
}

// TestSlowKillKeepsTheVerdict: on a loaded host a killed sandbox can take
// longer to show its exit than runtimed waits for it. A program stopped at
// its time limit gets its verdict all the same — not a 500 — and its
// sandbox is removed after. The runtime here is runsc behind a wrapper
// whose kill takes 7 s (runtimed waits 5 s).
func TestSlowKillKeepsTheVerdict(t *testing.T) {
	wrapper := filepath.Join(t.TempDir(), "runsc-slow-kill")
	script := `#!/bin/sh
case " $* " in *" kill "*) sleep 7 ;; esac
exec /usr/lib/runtimed/runsc-runtimed "$@"
`
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	in, _ := harness.StartInstance(t, "slowkill", fmt.Sprintf("[runtime]\nbinary = %q\n[pool]\nenabled = false\n", wrapper))
	c := api.NewClient(in.Socket, "")
	start := time.Now()
	resp, err := c.Run(context.Background(), &api.RunRequest{Language: "python", Files: files("spin.py", "while True:\n    pass\n"),
		Limits: api.Limits{WallTimeMS: 1000}})
	if err != nil {
		t.Fatalf("a timeout whose kill is slow: %v", err)
	}
	if resp.Status != api.StatusTimeout || resp.Run == nil || !strings.Contains(resp.Run.Message, "wall time") {
		t.Fatalf("status %s, run %+v; want timeout", resp.Status, resp.Run)
	}
	t.Logf("timeout answered in %s", time.Since(start).Round(time.Millisecond))
	waitNoLeftovers(t, 60*time.Second)
}
