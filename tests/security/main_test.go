//go:build integration

// Package security runs hostile programs and hostile requests against
// runtimed on a real containerd and runsc (see tests/harness). Each case
// asserts what happened inside the sandbox — the verdict, the error the
// program saw — and that the host and the daemon are fine afterwards.
package security

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

var (
	env   = &harness.Env
	files = harness.Files
	trim  = harness.Trim
)

// host is what the host has to spare: free memory, processes, free disk.
type host struct {
	memAvailable int64 // bytes
	procs        int
	diskFree     map[string]int64 // bytes, by mount point
}

func readHost(t *testing.T) host {
	t.Helper()
	h := host{diskFree: map[string]int64{}}
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			h.memAvailable = kb << 10
		}
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			h.procs++
		}
	}
	for _, dir := range []string{"/", env.StateDir, os.TempDir()} {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		h.diskFree[dir] = int64(st.Bavail) * st.Bsize
	}
	return h
}

// Tolerances for "back to its baseline": the machine runs other things.
const (
	memSlack  = 256 << 20
	procSlack = 10
	diskSlack = 64 << 20
)

// hostIsFine checks that the daemon answers /healthz within a second and
// that free memory, the process count and free disk come back to the
// baseline within ten seconds.
func hostIsFine(t *testing.T, base host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := env.Client.Health(ctx)
	cancel()
	if err != nil {
		t.Fatalf("runtimed did not answer /healthz within a second: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		now := readHost(t)
		var bad []string
		if now.memAvailable < base.memAvailable-memSlack {
			bad = append(bad, "free memory "+strconv.FormatInt(now.memAvailable>>20, 10)+" MiB, was "+strconv.FormatInt(base.memAvailable>>20, 10))
		}
		if now.procs > base.procs+procSlack {
			bad = append(bad, "processes "+strconv.Itoa(now.procs)+", was "+strconv.Itoa(base.procs))
		}
		for dir, free := range base.diskFree {
			if now.diskFree[dir] < free-diskSlack {
				bad = append(bad, "free disk on "+dir+" "+strconv.FormatInt(now.diskFree[dir]>>20, 10)+" MiB, was "+strconv.FormatInt(free>>20, 10))
			}
		}
		if left := harness.Leftovers(); len(left) > 0 {
			bad = append(bad, "leftovers "+strings.Join(left, ", "))
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the host did not come back to its baseline: %s", strings.Join(bad, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hostile runs one hostile program and checks the host after it.
func hostile(t *testing.T, req *api.RunRequest) *api.RunResponse {
	t.Helper()
	base := readHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := env.Client.Run(ctx, req)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if resp.Compile != nil && resp.Compile.Status != api.StatusOK {
		t.Fatalf("compile: %s", resp.Compile.Stderr)
	}
	hostIsFine(t, base)
	return resp
}

func statusIn(t *testing.T, resp *api.RunResponse, want ...api.Status) {
	t.Helper()
	for _, w := range want {
		if resp.Status == w {
			return
		}
	}
	t.Fatalf("status %s, want one of %v; exit %d signal %q stdout %q stderr %q", resp.Status, want,
		resp.Run.ExitCode, resp.Run.Signal, trim(resp.Run.Stdout), trim(resp.Run.Stderr))
}

func stdoutIs(t *testing.T, resp *api.RunResponse, want string) {
	t.Helper()
	if resp.Run.Stdout != want {
		t.Fatalf("stdout %q, want %q (status %s, stderr %q)", resp.Run.Stdout, want, resp.Status, trim(resp.Run.Stderr))
	}
}

func py(name, code string) []api.File { return files(name+".py", code) }
func c(name, code string) []api.File  { return files(name+".c", code) }
