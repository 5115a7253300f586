//go:build install

// Package install installs runtimed's .deb on this machine, uses what it
// installed (the image build command, the daemon, runtimectl, the units,
// the completion and manual pages), and removes and purges it. It changes
// the host: run it as root, on a machine where the package may come and
// go (make test-install, which builds the package first).
package install

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "the install test needs root: it installs and removes a package")
		os.Exit(1)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "runtimed-install-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	harness.Env.Dir = dir
	stop, err := harness.StartContainerd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "containerd:", err)
		return 1
	}
	defer stop()
	return m.Run()
}

// The files the package installs, and the conffiles among them.
var (
	installed = []string{
		"/usr/bin/runtimed", "/usr/bin/runtimectl",
		"/usr/lib/runtimed/runtimed-init", "/usr/lib/runtimed/runsc", "/usr/lib/runtimed/runsc-runtimed",
		"/lib/systemd/system/runtimed.service", "/lib/systemd/system/runtimed.socket",
		"/usr/share/runtimed/images/python.toml", "/usr/share/runtimed/images/typescript.toml",
		"/usr/share/bash-completion/completions/runtimectl", "/usr/share/bash-completion/completions/runtimed",
		"/usr/share/zsh/vendor-completions/_runtimectl",
		"/usr/share/man/man1/runtimectl.1.gz", "/usr/share/man/man8/runtimed.8.gz",
		"/usr/share/doc/runtimed/api.md",
	}
	conffiles = []string{"/etc/runtimed/runtimed.toml", "/etc/nginx/sites-available/runtimed.conf"}
)

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func packageStatus(t *testing.T) string {
	out, _ := exec.Command("dpkg-query", "-W", "-f", "${Status}", "runtimed").Output()
	return string(out)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestInstallUseRemovePurge(t *testing.T) {
	deb := os.Getenv("RUNTIMED_DEB")
	if deb == "" {
		t.Fatal("RUNTIMED_DEB names the package to test (make test-install sets it)")
	}
	if st := packageStatus(t); st != "" && !strings.Contains(st, "not-installed") {
		t.Fatalf("runtimed is already installed here (%q): the test would replace it", st)
	}
	t.Cleanup(func() {
		// Whatever happened, the machine is left without the package.
		if out, err := exec.Command("dpkg", "--purge", "runtimed").CombinedOutput(); err != nil {
			t.Logf("dpkg --purge: %v %s", err, out)
		}
	})

	sh(t, "dpkg", "-i", deb)
	if st := packageStatus(t); st != "install ok installed" {
		t.Fatalf("after dpkg -i: %q", st)
	}
	for _, p := range append(installed, conffiles...) {
		if !exists(p) {
			t.Errorf("%s was not installed", p)
		}
	}
	listed := sh(t, "dpkg-query", "-W", "-f", "${Conffiles}", "runtimed")
	for _, c := range conffiles {
		if !strings.Contains(listed, c+" ") {
			t.Errorf("%s is not a conffile: %q", c, listed)
		}
	}
	if out := sh(t, "getent", "group", "runtimed"); !strings.HasPrefix(out, "runtimed:") {
		t.Errorf("group runtimed: %q", out)
	}
	// The units are valid where they are installed, and nothing was
	// started.
	sh(t, "systemd-analyze", "verify", "/lib/systemd/system/runtimed.socket", "/lib/systemd/system/runtimed.service")
	if out, err := exec.Command("pgrep", "-x", "runtimed").Output(); err == nil {
		t.Errorf("the package started runtimed: %s", out)
	}
	version := sh(t, "/usr/bin/runtimed", "--version")
	if !strings.HasPrefix(version, "runtimed version ") || strings.Contains(version, " dev") {
		t.Errorf("runtimed --version: %q", version)
	}
	// One version for the binaries and the package.
	if deb := sh(t, "dpkg-query", "-W", "-f", "${Version}", "runtimed"); "runtimed version "+deb+"\n" != version {
		t.Errorf("the package's version %q, the binary's %q", deb, version)
	}
	// (runtimectl version fails after its own line: no daemon answers.)
	ctl, _ := exec.Command("/usr/bin/runtimectl", "--socket", "/nonexistent", "version").CombinedOutput()
	if !strings.HasPrefix(string(ctl), "runtimectl "+strings.TrimPrefix(version, "runtimed version ")) {
		t.Errorf("runtimectl version: %q, runtimed's %q", ctl, version)
	}

	checkDocs(t)

	// Images, with the installed command (from the build cache the suites
	// use, so that nothing is built twice).
	cache := os.Getenv("RUNTIMED_IMAGE_CACHE")
	if cache == "" {
		cache = "/var/cache/runtimed-build/images"
	}
	out := sh(t, "/usr/bin/runtimed", "--containerd", harness.Env.Containerd, "image", "build", "--cache", cache, "python")
	if !strings.Contains(out, "python-3.13: imported runtimed.local/python:3.13") {
		t.Fatalf("runtimed image build python: %s", out)
	}

	// The installed daemon, with the installed configuration, as its unit
	// runs it; then the installed runtimectl.
	socket := filepath.Join(harness.Env.Dir, "runtimed.sock")
	in := harness.Instance{Name: "installed", Socket: socket, Log: filepath.Join(harness.Env.Dir, "runtimed.log")}
	d, err := harness.StartWith(in, nil, "/usr/bin/runtimed", "--config", "/etc/runtimed/runtimed.toml",
		"--containerd", harness.Env.Containerd, "--socket", socket, "--log-format", "json")
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			d.Stop()
		}
	}()
	prog := filepath.Join(t.TempDir(), "hello.py")
	if err := os.WriteFile(prog, []byte("import sys\nprint('hello from the package', sys.version_info[:2])\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out = sh(t, "/usr/bin/runtimectl", "--socket", socket, "run", prog)
	if out != "hello from the package (3, 13)\n" {
		t.Errorf("runtimectl run: %q", out)
	}
	out = sh(t, "/usr/bin/runtimectl", "--socket", socket, "images", "ls")
	if !strings.Contains(out, "runtimed.local/python:3.13") || !strings.Contains(out, "python-3.13: current") {
		t.Errorf("runtimectl images ls:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := api.NewClient(socket, "").Health(ctx)
	if err != nil || !strings.HasPrefix(version, "runtimed version "+h.Version) {
		t.Errorf("the daemon's version %+v %v, the binary's %q", h, err, version)
	}
	d.Stop()
	stopped = true

	// Removal: binaries, units and the rest go; the conffiles stay (and
	// an admin's edit of one is kept) until the purge.
	edited := "\n# an admin's edit\n"
	f, err := os.OpenFile(conffiles[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(f, edited); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sh(t, "dpkg", "-r", "runtimed")
	if st := packageStatus(t); st != "deinstall ok config-files" {
		t.Errorf("after dpkg -r: %q", st)
	}
	for _, p := range installed {
		if exists(p) {
			t.Errorf("%s is still there after dpkg -r", p)
		}
	}
	for _, c := range conffiles {
		if !exists(c) {
			t.Errorf("conffile %s was removed by dpkg -r", c)
		}
	}
	if data, _ := os.ReadFile(conffiles[0]); !bytes.HasSuffix(data, []byte(edited)) {
		t.Errorf("the admin's edit of %s was lost", conffiles[0])
	}

	sh(t, "dpkg", "--purge", "runtimed")
	if st := packageStatus(t); st != "" && !strings.Contains(st, "not-installed") {
		t.Errorf("after dpkg --purge: %q", st)
	}
	for _, p := range append(conffiles, "/etc/runtimed", "/var/lib/runtimed", "/usr/lib/runtimed") {
		if exists(p) {
			t.Errorf("%s is still there after the purge", p)
		}
	}
}

// checkDocs checks the manual pages and the shell completion that the
// package installed, with the installed binaries.
func checkDocs(t *testing.T) {
	t.Helper()
	for page, want := range map[string][]string{
		"/usr/share/man/man1/runtimectl.1.gz": {".TH runtimectl 1", "images", "run"},
		"/usr/share/man/man8/runtimed.8.gz":   {".TH runtimed 8", "image", "--config"},
	} {
		f, err := os.Open(page)
		if err != nil {
			t.Error(err)
			continue
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Errorf("%s: %v", page, err)
			f.Close()
			continue
		}
		data, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", page, err)
		}
		for _, w := range want {
			if !bytes.Contains(data, []byte(w)) {
				t.Errorf("%s lacks %q", page, w)
			}
		}
	}

	// bash: the completion bash-completion would load for runtimectl,
	// asked what follows "runtimectl images " and "runtimectl run --me".
	script := `source /usr/share/bash-completion/completions/runtimectl
COMP_WORDS=(runtimectl images ""); COMP_CWORD=2; _runtimed_complete; echo "${COMPREPLY[*]}"
COMP_WORDS=(runtimectl run --me); COMP_CWORD=2; _runtimed_complete; echo "${COMPREPLY[*]}"
COMP_WORDS=(runtimed im); COMP_CWORD=1; _runtimed_complete; echo "${COMPREPLY[*]}"`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	want := "ls list build import pull rm remove help h\n--memory\nimage\n"
	if err != nil || string(out) != want {
		t.Errorf("bash completion: %v\n%q, want\n%q", err, out, want)
	}
	// zsh: the completion function parses.
	if out, err := exec.Command("zsh", "-n", "/usr/share/zsh/vendor-completions/_runtimectl").CombinedOutput(); err != nil {
		t.Errorf("zsh -n _runtimectl: %v %s", err, out)
	}
}
