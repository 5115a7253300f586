//go:build vm

// Package vm tests runtimed on the second host kind: Debian 13 with cgroup
// v2 only, systemd as PID 1 and containerd 1.7, then containerd 2.x. It
// builds (once per recipe, image.sh) a guest image, boots it under QEMU in
// software emulation with runtimed's package, the python and c image
// layouts and suite.sh on 9p shares; the guest installs and starts
// runtimed through its units, runs the checks and powers off; this test
// reads their results from the share. Run it as root with make test-vm,
// which builds the package and the images first.
package vm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The checks suite.sh reports, in each round: containerd 1.7 (c17), then
// containerd 2.x (c2).
var (
	setupChecks = []string{"host_kind", "install", "images", "socket_activation", "enable_now",
		"status_line", "reload"}
	executionChecks = []string{"hello", "memory_limit", "timeout", "cpu_quota", "cpu_time_limit",
		"pids_limit", "fork_bomb", "output_limit", "c_compile_run", "peak_memory", "pooled_peak", "judged_peaks"}
	afterChecks = []string{"journal", "kill_restart", "after_kill", "leftovers"}
	c2Checks    = []string{"containerd2", "images"}
)

func expected() []string {
	var want []string
	for _, round := range []struct {
		name   string
		checks [][]string
	}{
		{"c17", [][]string{setupChecks, executionChecks, afterChecks}},
		{"c2", [][]string{c2Checks, executionChecks, {"leftovers"}}},
	} {
		for _, cs := range round.checks {
			for _, c := range cs {
				want = append(want, c+"@"+round.name)
			}
		}
	}
	return want
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestVM(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the VM suite needs root (debootstrap, mkfs, the image cache)")
	}
	deb := os.Getenv("RUNTIMED_DEB")
	if deb == "" {
		t.Fatal("RUNTIMED_DEB names the package to install in the guest (make test-vm sets it)")
	}
	images := env("RUNTIMED_IMAGE_CACHE", "/var/cache/runtimed-build/images")
	// python and c: their newest versions' recipes.
	for _, lang := range []string{"python-3.13", "c-gcc14"} {
		if m, _ := filepath.Glob(filepath.Join(images, lang, "*", "index.json")); len(m) == 0 {
			t.Fatalf("no %s image layout in %s (make images-cache)", lang, images)
		}
	}
	for _, tool := range []string{"qemu-system-x86_64", "debootstrap", "mkfs.ext4", "busybox", "cpio"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (make test-vm installs it: packaging/scripts/deps.sh --vm)", tool)
		}
	}

	// The guest image, built unless cached.
	start := time.Now()
	cmd := exec.Command("./image.sh", env("RUNTIMED_VM_CACHE", "/var/cache/runtimed-build/vm"))
	cmd.Stderr = testWriter{t}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("image.sh: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	built, _ := os.ReadFile(filepath.Join(dir, "done"))
	t.Logf("guest image %s (%s): %s", dir, time.Since(start).Round(time.Second), strings.TrimSpace(string(built)))

	// The share: the package, the suite; the guest writes its results,
	// logs and journal back into it.
	share := t.TempDir()
	copyFile(t, deb, filepath.Join(share, "runtimed.deb"))
	copyFile(t, "suite.sh", filepath.Join(share, "suite.sh"))

	timeout, err := time.ParseDuration(env("RUNTIMED_VM_TIMEOUT", "42m"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// KVM here is nested and cannot boot a stock kernel: software
	// emulation, two vCPUs, each a host thread. Emulation now and then
	// crashes the guest's kernel while it boots (an int3 oops where the
	// kernel patches its own code while the other vCPU runs it): a guest
	// whose kernel failed before the suite began is booted once more.
	var took time.Duration
	for attempt := 1; ; attempt++ {
		took, err = runGuest(ctx, dir, images, share)
		t.Logf("QEMU ran %s: %v", took, err)
		if attempt > 1 || !kernelFailedBeforeSuite(share) {
			break
		}
		t.Logf("the guest's kernel failed before the suite began; booting it again. Its console:\n%s", tail(filepath.Join(share, "console.log"), 40))
	}

	results, _ := os.ReadFile(filepath.Join(share, "results.txt"))
	got := map[string]string{}
	details := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(results)))
	for sc.Scan() {
		st, rest, _ := strings.Cut(sc.Text(), " ")
		name, detail, _ := strings.Cut(rest, " ")
		if st != "OK" && st != "FAIL" && st != "INFO" {
			continue
		}
		t.Logf("%-4s %-28s %s", st, name, detail)
		if st == "INFO" {
			continue
		}
		if st == "FAIL" || got[name] == "" {
			got[name], details[name] = st, detail
		}
	}
	var failures []string
	for _, name := range expected() {
		switch got[name] {
		case "OK":
		case "FAIL":
			failures = append(failures, name+" failed: "+details[name])
		default:
			failures = append(failures, name+" did not report")
		}
	}
	if ctx.Err() != nil {
		failures = append(failures, fmt.Sprintf("the guest did not power off within %s", timeout))
	}
	if !strings.Contains(string(results), "\nEND\n") && !strings.HasPrefix(string(results), "END\n") {
		failures = append(failures, "the suite did not finish")
	}
	if len(failures) == 0 {
		return
	}
	// The guest's logs first, the failures last: a reader of the end of
	// the output sees what failed.
	for _, f := range []string{"suite.log", "runtimed.log", "console.log"} {
		t.Logf("---- the guest's %s (its end) ----\n%s", f, tail(filepath.Join(share, f), 300))
	}
	if keep := os.Getenv("RUNTIMED_VM_KEEP"); keep != "" {
		if err := exec.Command("cp", "-a", share+"/.", keep).Run(); err == nil {
			t.Logf("the share is kept in %s", keep)
		}
	}
	for _, f := range failures {
		t.Error(f)
	}
}

// testWriter sends a command's output to the test's log, a line at a time.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprint(err)
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// runGuest boots the guest, which runs the suite from share and powers
// off, and waits until QEMU exits or ctx ends. Its console goes to
// share/console.log.
func runGuest(ctx context.Context, dir, images, share string) (time.Duration, error) {
	console, err := os.Create(filepath.Join(share, "console.log"))
	if err != nil {
		return 0, err
	}
	defer console.Close()
	qemu := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "3G",
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", filepath.Join(dir, "vmlinuz"), "-initrd", filepath.Join(dir, "initrd.img"),
		"-append", "console=ttyS0 quiet panic=-1 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1",
		"-drive", "file="+filepath.Join(dir, "root.img")+",format=raw,if=virtio,snapshot=on",
		"-virtfs", "local,path="+share+",mount_tag=host,security_model=none,id=host",
		"-virtfs", "local,path="+images+",mount_tag=images,security_model=none,readonly=on,id=images",
	)
	qemu.Stdout, qemu.Stderr = console, console
	qemu.WaitDelay = 10 * time.Second
	boot := time.Now()
	err = qemu.Run()
	return time.Since(boot).Round(time.Second), err
}

// kernelFailedBeforeSuite reports whether the guest's kernel oopsed or
// panicked before the suite wrote anything: nothing ran, and booting
// again is safe (the root disk is a snapshot).
func kernelFailedBeforeSuite(share string) bool {
	if _, err := os.Stat(filepath.Join(share, "suite.log")); err == nil {
		return false
	}
	if _, err := os.Stat(filepath.Join(share, "results.txt")); err == nil {
		return false
	}
	console, _ := os.ReadFile(filepath.Join(share, "console.log"))
	for _, sign := range []string{"Oops:", "Kernel panic", "BUG:", "general protection fault"} {
		if strings.Contains(string(console), sign) {
			return true
		}
	}
	return false
}

// A guest is booted again only when its kernel failed before the suite
// wrote anything.
func TestKernelFailedBeforeSuite(t *testing.T) {
	for _, c := range []struct {
		files map[string]string
		want  bool
	}{
		{map[string]string{"console.log": "[ 4.96] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n"}, true},
		{map[string]string{"console.log": "Kernel panic - not syncing: Attempted to kill init!\n"}, true},
		{map[string]string{"console.log": "[ OK ] Reached target multi-user.target\n"}, false},
		{map[string]string{"console.log": "Oops: int3\n", "suite.log": "suite: start\n"}, false},
		{map[string]string{"console.log": "Oops: int3\n", "results.txt": "OK install\n"}, false},
	} {
		share := t.TempDir()
		for name, content := range c.files {
			if err := os.WriteFile(filepath.Join(share, name), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if got := kernelFailedBeforeSuite(share); got != c.want {
			t.Errorf("%v: %v, want %v", c.files, got, c.want)
		}
	}
}
