//go:build integration

package integration

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
)

// minimumHellos are the programs run at each limit's minimum: an
// interpreter that starts a runtime of its own, and a compiled program
// with nothing but libc.
var minimumHellos = []byLanguage{
	{"python", files("hello.py", "print('hello')\n")},
	{"c", files("hello.c", "#include <stdio.h>\nint main(void) { printf(\"hello\\n\"); return 0; }\n")},
}

// agentFailures are what runtimed-init or the Go runtime under it say
// when the sandbox's limits left the agent no room to start the program.
var agentFailures = []string{"runtimed-init", "failed to create new OS thread", "resource temporarily unavailable", "fork/exec"}

// TestMinimumLimits holds every limit's minimum (api.MinLimits) to what
// it promises: with one limit at its minimum and the others at their
// defaults, a hello in Python and in C runs to a verdict — never a 500 or
// the agent's own failure — and at the minimums of memory, cpu and pids,
// which a hello does not exhaust, to ok. The same limit at its minimum in
// the compile stage (C) ends in a verdict too. A value under a minimum is
// a 400 that names the field.
func TestMinimumLimits(t *testing.T) {
	minimum := api.MinLimits()
	// under is a value below each minimum that is not "the default" (0).
	under := func(n int64) int64 {
		if n > 1 {
			return n - 1
		}
		return -1
	}
	below := map[string]api.Limits{
		"memory_bytes": {MemoryBytes: under(minimum.MemoryBytes)},
		"cpu":          {CPU: minimum.CPU / 2},
		"wall_time_ms": {WallTimeMS: under(minimum.WallTimeMS)},
		"cpu_time_ms":  {CPUTimeMS: under(minimum.CPUTimeMS)},
		"pids":         {Pids: under(minimum.Pids)},
		"output_bytes": {OutputBytes: under(minimum.OutputBytes)},
	}
	mustRun := map[string]bool{"memory_bytes": true, "cpu": true, "pids": true}
	// All the minimums together: runtimed-init's start of the program
	// under the smallest pids limit fits in the smallest memory and CPU.
	for _, c := range minimumHellos {
		t.Run("all/"+c.language, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			resp, err := env.Client.Run(ctx, &api.RunRequest{Language: c.language, Files: c.files, Limits: minimum})
			if err != nil {
				t.Fatalf("every limit at its minimum: %v", err)
			}
			if resp.Run == nil || resp.Run.Status == api.StatusInternalError {
				t.Fatalf("status %s, run %+v: %s", resp.Status, resp.Run, resp.Message)
			}
			t.Logf("all minimums: %s (run wall %d ms, memory %d), stdout %q", resp.Run.Status, resp.Run.WallTimeMS, resp.Run.MemoryBytes, resp.Run.Stdout)
			for _, s := range agentFailures {
				if strings.Contains(resp.Run.Stderr, s) {
					t.Fatalf("the agent failed (%q in stderr): %q", s, trim(resp.Run.Stderr))
				}
			}
		})
	}
	for _, f := range api.LimitFields() {
		var at api.Limits
		f.Copy(&at, minimum)
		for _, c := range minimumHellos {
			t.Run(f.Name+"/"+c.language, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				start := time.Now()
				resp, err := env.Client.Run(ctx, &api.RunRequest{Language: c.language, Files: c.files, Limits: at})
				if err != nil {
					t.Fatalf("%s at its minimum %s: %v", f.Name, f.Format(minimum), err)
				}
				if resp.Compile != nil && resp.Compile.Status != api.StatusOK {
					t.Fatalf("compile %s: %s", resp.Compile.Status, trim(resp.Compile.Stderr))
				}
				if resp.Run == nil {
					t.Fatalf("status %s with no run: %s", resp.Status, resp.Message)
				}
				r := resp.Run
				t.Logf("%s=%s: %s in %v (run wall %d ms, cpu %d ms, memory %d), stdout %q",
					f.Name, f.Format(minimum), r.Status, time.Since(start).Round(time.Millisecond), r.WallTimeMS, r.CPUTimeMS, r.MemoryBytes, r.Stdout)
				if r.Status == api.StatusInternalError || r.Status == "" {
					t.Fatalf("status %q: %s; stderr %q", r.Status, r.Message, trim(r.Stderr))
				}
				for _, s := range agentFailures {
					if strings.Contains(r.Stderr, s) {
						t.Fatalf("the agent failed (%q in stderr): %q", s, trim(r.Stderr))
					}
				}
				if mustRun[f.Name] && (r.Status != api.StatusOK || r.Stdout != "hello\n") {
					t.Fatalf("status %s (%s), stdout %q, stderr %q; want ok and hello", r.Status, r.Message, r.Stdout, trim(r.Stderr))
				}
			})
		}
		// The compile stage is held to the same minimums: gcc at them
		// ends in a verdict too, if not always ok.
		t.Run(f.Name+"/c-compile", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			resp, err := env.Client.Run(ctx, &api.RunRequest{Language: "c", Files: minimumHellos[1].files, CompileLimits: at})
			if err != nil {
				t.Fatalf("compile_limits.%s at its minimum %s: %v", f.Name, f.Format(minimum), err)
			}
			cs := resp.Compile
			if cs == nil {
				t.Fatalf("status %s with no compile: %s", resp.Status, resp.Message)
			}
			t.Logf("compile_limits.%s=%s: %s in %v (compile wall %d ms, cpu %d ms, memory %d)",
				f.Name, f.Format(minimum), cs.Status, time.Since(start).Round(time.Millisecond), cs.WallTimeMS, cs.CPUTimeMS, cs.MemoryBytes)
			if cs.Status == api.StatusInternalError || cs.Status == "" || resp.Status == api.StatusInternalError {
				t.Fatalf("status %q (compile %q): %s; stderr %q", resp.Status, cs.Status, cs.Message, trim(cs.Stderr))
			}
			for _, s := range agentFailures {
				if strings.Contains(cs.Stderr, s) {
					t.Fatalf("the agent failed (%q in stderr): %q", s, trim(cs.Stderr))
				}
			}
		})
		t.Run(f.Name+"/below", func(t *testing.T) {
			l, ok := below[f.Name]
			if !ok {
				t.Fatalf("no value below the minimum of %s", f.Name)
			}
			_, err := env.Client.Run(context.Background(), &api.RunRequest{Language: "python", Files: minimumHellos[0].files, Limits: l})
			var aerr *api.Error
			if !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusBadRequest || aerr.Field != "limits."+f.Name {
				t.Fatalf("%s below its minimum (%+v): %v, want a 400 naming limits.%s", f.Name, l, err, f.Name)
			}
			if !strings.Contains(aerr.Message, "limits."+f.Name) {
				t.Errorf("message %q does not name the field", aerr.Message)
			}
			_, err = env.Client.Run(context.Background(), &api.RunRequest{Language: "c", Files: minimumHellos[1].files, CompileLimits: l})
			if !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusBadRequest || aerr.Field != "compile_limits."+f.Name {
				t.Fatalf("compile_limits.%s below its minimum (%+v): %v, want a 400 naming it", f.Name, l, err)
			}
		})
	}
}

// TestMinimumPidsHeld: at the pids minimum the program is its only task.
// It has RLIMIT_NPROC 0, soft and hard (runtimed-init's larger one is
// not its), cannot raise it, and cannot fork.
func TestMinimumPidsHeld(t *testing.T) {
	code := `import os, resource
print(resource.getrlimit(resource.RLIMIT_NPROC))
try:
    resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
    print("raised")
except (ValueError, OSError) as e:
    print("not raised")
try:
    if os.fork() == 0:
        os._exit(0)
    print("forked")
except OSError as e:
    print("fork", e.errno)
`
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("pids.py", code), Limits: api.Limits{Pids: api.MinLimits().Pids}})
	expectStatus(t, resp, api.StatusOK)
	if want := "(0, 0)\nnot raised\nfork 11\n"; resp.Run.Stdout != want {
		t.Fatalf("stdout %q, want %q; stderr %q", resp.Run.Stdout, want, trim(resp.Run.Stderr))
	}
}
