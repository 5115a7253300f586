//go:build integration

// Package security runs hostile programs and hostile requests against
// runtimed on a real containerd and runsc (see tests/harness). Each case
// asserts what happened inside the sandbox — the verdict, the error the
// program saw — and that the host and the daemon are fine afterwards.
package security

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
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

// host is what the host has to spare: free memory, processes, free disk,
// and the disk the suite's own containerd and runtimed hold.
type host struct {
	memAvailable int64 // bytes
	procs        int
	diskFree     map[uint64]int64 // bytes, by file system (device)
	diskPath     map[uint64]string
	suiteUsed    int64 // bytes allocated under the suite's directory, logs aside
	suiteBy      map[string]int64
}

func readHost(t *testing.T) host {
	t.Helper()
	h := host{diskFree: map[uint64]int64{}, diskPath: map[uint64]string{}}
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
	// The warm pools grow and shrink with the load: the processes of
	// their sandboxes (shim, gofer, sentry, stubs) are not counted.
	pooled := harness.PooledSandboxes()
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil && !ofPooled(e.Name(), pooled) {
			h.procs++
		}
	}
	for _, dir := range []string{"/", env.StateDir, os.TempDir()} {
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		if _, seen := h.diskFree[st.Dev]; seen {
			continue
		}
		var fs syscall.Statfs_t
		if err := syscall.Statfs(dir, &fs); err != nil {
			t.Fatal(err)
		}
		h.diskFree[st.Dev] = int64(fs.Bavail) * fs.Bsize
		h.diskPath[st.Dev] = dir
	}
	h.suiteUsed, h.suiteBy = allocated(t, env.Dir)
	return h
}

// ofPooled reports whether process pid belongs to a pooled sandbox: it is
// in the sandbox's cgroup, or its command line names the sandbox (its
// shim).
func ofPooled(pid string, pooled map[string]bool) bool {
	if len(pooled) == 0 {
		return false
	}
	cg, _ := os.ReadFile("/proc/" + pid + "/cgroup")
	cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
	for _, field := range strings.FieldsFunc(string(cg)+"\x00"+string(cmd), func(r rune) bool { return r == '/' || r == '\n' || r == 0 || r == ':' }) {
		if pooled[field] {
			return true
		}
	}
	return false
}

// allocated sums the blocks allocated to the files under dir: containerd's
// root and state, runtimed's state, the run directories. Logs grow with
// every request and are left out, as are containerd's bolt databases, which
// grow in steps (their records are checked by harness.Leftovers), and the
// built binaries.
func allocated(t *testing.T, dir string) (int64, map[string]int64) {
	t.Helper()
	// Mount points under it — a sandbox's root file system (a bind mount
	// of the image's layer, or an overlay), a box's tmpfs — are not disk
	// the suite holds.
	mountPoints := map[string]bool{}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, line := range strings.Split(string(mi), "\n") {
			if f := strings.Fields(line); len(f) > 4 && f[4] != dir {
				mountPoints[f[4]] = true
			}
		}
	}
	var sum int64
	by := map[string]int64{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if d.IsDir() && (path == env.Bin || mountPoints[path]) {
			return filepath.SkipDir
		}
		if strings.HasSuffix(d.Name(), ".log") || strings.HasSuffix(d.Name(), ".db") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		sum += st.Blocks * 512
		if rel, err := filepath.Rel(dir, path); err == nil {
			parts := strings.SplitN(rel, string(filepath.Separator), 4)
			by[filepath.Join(parts[:min(len(parts), 3)]...)] += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sum, by
}

// grown names the directories whose allocation grew by more than 8 MiB.
func grown(before, after map[string]int64) string {
	var out []string
	for k, v := range after {
		if v-before[k] > 8<<20 {
			out = append(out, k+" +"+strconv.FormatInt((v-before[k])>>20, 10)+" MiB")
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// Tolerances for "back to its baseline". The suite's own directory holds
// containerd and runtimed and nothing else writes there, so a leak of a few
// MiB shows; free disk on the host's file systems moves with whatever else
// the machine does (build caches, journals), so its slack is wider.
const (
	memSlack       = 256 << 20
	procSlack      = 10
	suiteDiskSlack = 16 << 20
	hostDiskSlack  = 512 << 20
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
		for dev, free := range base.diskFree {
			if now.diskFree[dev] < free-hostDiskSlack {
				bad = append(bad, "free disk on "+base.diskPath[dev]+" "+strconv.FormatInt(now.diskFree[dev]>>20, 10)+" MiB, was "+strconv.FormatInt(free>>20, 10))
			}
		}
		if now.suiteUsed > base.suiteUsed+suiteDiskSlack {
			bad = append(bad, "disk held by containerd and runtimed "+strconv.FormatInt(now.suiteUsed>>20, 10)+" MiB, was "+strconv.FormatInt(base.suiteUsed>>20, 10)+" ("+grown(base.suiteBy, now.suiteBy)+")")
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
