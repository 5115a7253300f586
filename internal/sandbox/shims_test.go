package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/fakeshim"
)

func TestShimsFindsOnlyOurContainerdsSandboxShims(t *testing.T) {
	proc := t.TempDir()
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link.sock")
	if err := os.Symlink(sock, link); err != nil {
		t.Fatal(err)
	}
	procs := map[string][]string{
		"101": {"/usr/bin/containerd-shim-runc-v2", "-namespace", "runtimed", "-id", "rt-0123456789abcdef", "-address", sock},
		// The same socket by another name.
		"102": {"containerd-shim-runc-v2", "-namespace", "runtimed", "-id", "rt-00000000000000ff", "-address", link},
		// Another containerd's.
		"103": {"/usr/bin/containerd-shim-runc-v2", "-namespace", "runtimed", "-id", "rt-1111111111111111", "-address", "/run/other.sock"},
		// Another namespace.
		"104": {"/usr/bin/containerd-shim-runc-v2", "-namespace", "k8s.io", "-id", "rt-2222222222222222", "-address", sock},
		// Not one of runtimed's ids.
		"105": {"/usr/bin/containerd-shim-runc-v2", "-namespace", "runtimed", "-id", "web", "-address", sock},
		// Not a shim, though it names one.
		"106": {"/usr/bin/runsc", "-namespace", "runtimed", "-id", "rt-3333333333333333", "-address", sock},
		// A zombie: no command line.
		"107":  {},
		"self": {"containerd-shim-runc-v2", "-namespace", "runtimed", "-id", "rt-4444444444444444", "-address", sock},
	}
	for pid, args := range procs {
		dir := filepath.Join(proc, pid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmdline := ""
		if len(args) > 0 {
			cmdline = strings.Join(args, "\x00") + "\x00"
		}
		if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(cmdline), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, s := range shims(proc, "runtimed", "unix://"+sock) {
		got = append(got, s.id)
	}
	slices.Sort(got)
	want := []string{"rt-00000000000000ff", "rt-0123456789abcdef"}
	if !slices.Equal(got, want) {
		t.Fatalf("shims = %v, want %v", got, want)
	}
}

// terminate signals a shim only if its pid still shows that shim: a pid
// that now belongs to another process (another sandbox's shim here) is
// left alone.
func TestTerminateChecksThePidAgain(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	cmd, done, err := fakeshim.Start(sock, "runtimed", "rt-00000000000000bb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM) })
	r := &Runner{cfg: Config{Namespace: "runtimed", Containerd: sock}}

	// Once the exec has happened, the process is listed as that shim.
	var found shimProcess
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, s := range shims("/proc", "runtimed", sock) {
			if s.pid == cmd.Process.Pid {
				found = s
			}
		}
		if found.pid != 0 {
			break
		}
	}
	if found.id != "rt-00000000000000bb" || found.uid != uint32(os.Getuid()) {
		t.Fatalf("found %+v", found)
	}

	other := found
	other.id = "rt-00000000000000cc"
	if stopped, err := r.terminate(other); stopped || err != nil {
		t.Fatalf("terminate of a pid that is another shim now: %v, %v", stopped, err)
	}
	select {
	case err := <-done:
		t.Fatalf("the process ended: %v", err)
	case <-time.After(200 * time.Millisecond):
	}

	if stopped, err := r.terminate(found); !stopped || err != nil {
		t.Fatalf("terminate: %v, %v", stopped, err)
	}
	if err := fakeshim.EndsBySIGTERM(done, 5*time.Second); err != nil {
		t.Fatalf("the terminated shim: %v", err)
	}
}

// A shim that ignores SIGTERM (one whose start containerd cut off does) is
// killed once shimStopGrace is over.
func TestTerminateKillsAShimThatStays(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	cmd, done, err := fakeshim.StartStubborn(sock, "runtimed", "rt-00000000000000dd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	r := &Runner{cfg: Config{Namespace: "runtimed", Containerd: sock}, log: logrus.NewEntry(logrus.New())}
	var found shimProcess
	for deadline := time.Now().Add(5 * time.Second); found.pid == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, s := range shims("/proc", "runtimed", sock) {
			if s.pid == cmd.Process.Pid {
				found = s
			}
		}
	}
	if found.pid == 0 {
		t.Fatal("the stubborn shim is not listed")
	}
	start := time.Now()
	if stopped, err := r.terminate(found); !stopped || err != nil {
		t.Fatalf("terminate: %v, %v", stopped, err)
	}
	if err := fakeshim.EndsBySIGKILL(done, 5*time.Second); err != nil {
		t.Fatalf("the stubborn shim: %v", err)
	}
	if took := time.Since(start); took < shimStopGrace {
		t.Fatalf("killed after %s, before its grace of %s", took, shimStopGrace)
	}
}
