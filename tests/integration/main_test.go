//go:build integration

// Package integration runs runtimed end to end against a real containerd
// and runsc: TestMain starts a private containerd (root, state and socket
// in a temporary directory), imports the language images from the image
// cache, starts the runtimed binary, and after the tests checks that
// nothing was left behind, then stops both.
package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/runtimed/runtimed/pkg/api"
)

// env is what the tests share.
var env struct {
	dir        string // the temporary root of everything
	bin        string // built binaries
	socket     string // runtimed's socket
	containerd string // containerd's socket
	stateDir   string
	tcp        string // runtimed's TCP listener, host:port
	config     string // runtimed's config file
	imageCache string
	daemon     *daemon // the runtimed under test
	client     *api.Client
	ctr        *containerd.Client
}

const namespace = "runtimed"

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "integration tests need root: they start containerd and gVisor sandboxes (run `make test` as root)")
		return 1
	}
	var err error
	env.dir, err = os.MkdirTemp("", "runtimed-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(env.dir)

	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "integration setup: "+format+"\n", args...)
		return 1
	}

	if err := buildBinaries(); err != nil {
		return fail("build: %v", err)
	}
	stop, err := startContainerd()
	if err != nil {
		return fail("containerd: %v", err)
	}
	stops = append(stops, stop)

	cfgPath, err := writeConfig()
	if err != nil {
		return fail("config: %v", err)
	}
	env.imageCache = os.Getenv("RUNTIMED_IMAGE_CACHE")
	if env.imageCache == "" {
		env.imageCache = "/var/cache/runtimed/images"
	}
	imp := imageBuild(cfgPath)
	imp.Stdout, imp.Stderr = os.Stderr, os.Stderr
	if err := imp.Run(); err != nil {
		return fail("import images: %v", err)
	}

	env.config = cfgPath
	if env.daemon, err = startRuntimed(cfgPath); err != nil {
		return fail("runtimed: %v", err)
	}
	code = m.Run()
	env.daemon.stop()

	// After the suite, nothing of any execution may remain.
	if leaks := leftovers(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: leftovers after the suite:\n  %s\n", strings.Join(leaks, "\n  "))
		code = 1
	}
	return code
}

// imageBuild is `runtimed image build` for the test's containerd.
func imageBuild(cfgPath string) *exec.Cmd {
	return exec.Command(filepath.Join(env.bin, "runtimed"), "--config", cfgPath, "image", "build",
		"--recipes", filepath.Join(repoRoot(), "packaging", "images"), "--cache", env.imageCache)
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

func buildBinaries() error {
	env.bin = filepath.Join(env.dir, "bin")
	cmd := exec.Command("go", "build", "-o", env.bin+"/", "./cmd/runtimed", "./cmd/runtimectl")
	cmd.Dir = repoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

func startContainerd() (func(), error) {
	root := filepath.Join(env.dir, "containerd")
	env.containerd = filepath.Join(root, "containerd.sock")
	conf := filepath.Join(root, "config.toml")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
`, filepath.Join(root, "root"), filepath.Join(root, "state"), env.containerd)), 0o600)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(root, "containerd.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("containerd", "--config", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		if env.ctr != nil {
			env.ctr.Close()
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		unmountUnder(root)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := containerd.New(env.containerd, containerd.WithTimeout(time.Second))
		if err == nil {
			if _, err = c.Version(context.Background()); err == nil {
				env.ctr = c
				return stop, nil
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(filepath.Join(root, "containerd.log"))
			return nil, fmt.Errorf("containerd did not answer: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unmountUnder detaches every mount below dir, deepest first, so that the
// temporary directory can be removed.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

// testToken is the secret of the test daemon's one API token.
const testToken = "rtd_integration-test-token"

func writeConfig() (string, error) {
	env.socket = filepath.Join(env.dir, "runtimed.sock")
	env.stateDir = filepath.Join(env.dir, "state")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	env.tcp = l.Addr().String()
	l.Close()
	sum := sha256.Sum256([]byte(testToken))
	path := filepath.Join(env.dir, "runtimed.toml")
	return path, os.WriteFile(path, []byte(fmt.Sprintf(`socket = %q
containerd = %q
state_dir = %q
log_level = "debug"
listen_tcp = %q

# Short, so that the slow-client tests are quick.
[http]
read_header_timeout_ms = 1000
read_timeout_ms = 3000
idle_timeout_ms = 10000
max_header_bytes = 16384

[[tokens]]
name = "integration"
sha256 = %q
rate_per_minute = 6000.0
burst = 100
max_concurrent = 2

# A language whose interpreter is not in its image, and one whose image was
# never built: the platform-failure paths.
[languages.broken]
version = "0"
extension = ".broken"
image = "runtimed.local/python:3.11"
run = ["/nonexistent/interpreter", "{entry}"]

[languages.noimage]
version = "0"
extension = ".noimage"
image = "runtimed.local/noimage:0"
run = ["/bin/true"]
`, env.socket, env.containerd, env.stateDir, env.tcp, hex.EncodeToString(sum[:]))), 0o600)
}

// daemon is a runtimed process under test.
type daemon struct {
	cmd    *exec.Cmd
	exited chan error
	log    string
	logf   *os.File
}

func startRuntimed(cfgPath string) (*daemon, error) {
	d := &daemon{exited: make(chan error, 1), log: filepath.Join(env.dir, "runtimed.log")}
	var err error
	if d.logf, err = os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	d.cmd = exec.Command(filepath.Join(env.bin, "runtimed"), "--config", cfgPath, "--log-format", "json")
	d.cmd.Stdout, d.cmd.Stderr = d.logf, d.logf
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.exited <- d.cmd.Wait() }()
	env.client = api.NewClient(env.socket, "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := env.client.Health(ctx)
		cancel()
		if err == nil {
			return d, nil
		}
		select {
		case err := <-d.exited:
			d.logf.Close()
			data, _ := os.ReadFile(d.log)
			return nil, fmt.Errorf("runtimed exited: %v\n%s", err, data)
		default:
		}
		if time.Now().After(deadline) {
			d.stop()
			data, _ := os.ReadFile(d.log)
			return nil, fmt.Errorf("runtimed did not answer: %v\n%s", err, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for runtimed to exit.
func (d *daemon) stop() { d.signal(syscall.SIGTERM) }

// kill is a crash: SIGKILL, and no chance to clean up.
func (d *daemon) kill() { d.signal(syscall.SIGKILL) }

func (d *daemon) signal(sig syscall.Signal) {
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.exited:
	case <-time.After(90 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	d.logf.Close()
	if os.Getenv("RUNTIMED_TEST_LOG") != "" {
		data, _ := os.ReadFile(d.log)
		os.Stderr.Write(data)
	}
}

// leftovers lists what executions left: containers, tasks, snapshots
// other than the images' committed layers, and per-run directories.
func leftovers() []string {
	var out []string
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), namespace), 10*time.Second)
	defer cancel()
	cs, err := env.ctr.Containers(ctx)
	if err != nil {
		return []string{"list containers: " + err.Error()}
	}
	for _, c := range cs {
		out = append(out, "container "+c.ID())
	}
	tasks, err := env.ctr.TaskService().List(ctx, nil)
	if err != nil {
		out = append(out, "list tasks: "+err.Error())
	} else {
		for _, t := range tasks.Tasks {
			out = append(out, "task "+t.ID)
		}
	}
	err = env.ctr.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindCommitted {
			out = append(out, "snapshot "+info.Name)
		}
		return nil
	})
	if err != nil {
		out = append(out, "walk snapshots: "+err.Error())
	}
	runs := filepath.Join(env.stateDir, "runs", "runtimed")
	entries, _ := os.ReadDir(runs)
	for _, e := range entries {
		out = append(out, "run directory "+filepath.Join(runs, e.Name()))
	}
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && bytes.Contains(mi, []byte(runs+"/")) {
		out = append(out, "mounts under "+runs)
	}
	return out
}
