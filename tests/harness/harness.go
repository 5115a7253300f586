//go:build integration

// Package harness runs runtimed for the integration and security suites,
// against a real containerd and runsc: Main starts a private containerd
// (root, state and socket in a temporary directory), imports the language
// images from the image cache, starts the runtimed binary, runs the tests,
// checks that nothing was left behind, then stops both.
package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/runtimed/runtimed/pkg/api"
)

// Env is what the tests share; Main fills it.
var Env struct {
	Dir        string // the temporary root of everything
	Bin        string // built binaries
	Socket     string // runtimed's socket
	Containerd string // containerd's socket
	StateDir   string
	TCP        string // runtimed's TCP listener, host:port
	Config     string // runtimed's config file
	ImageCache string
	Daemon     *Daemon // the runtimed under test
	Client     *api.Client
	Ctr        *containerd.Client
}

// Namespace is the containerd namespace runtimed works in.
const Namespace = "runtimed"

// Main sets the suite up, runs it, and returns its exit code. A package's
// TestMain calls os.Exit(harness.Main(m)).
func Main(m *testing.M) (code int) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "integration tests need root: they start containerd and gVisor sandboxes (run `make test` as root)")
		return 1
	}
	var err error
	Env.Dir, err = os.MkdirTemp("", "runtimed-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(Env.Dir)

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
	stop, err := StartContainerd()
	if err != nil {
		return fail("containerd: %v", err)
	}
	stops = append(stops, stop)

	cfgPath, err := writeConfig()
	if err != nil {
		return fail("config: %v", err)
	}
	Env.ImageCache = os.Getenv("RUNTIMED_IMAGE_CACHE")
	if Env.ImageCache == "" {
		Env.ImageCache = "/var/cache/runtimed-build/images"
	}
	imp := ImageBuild(cfgPath)
	imp.Stdout, imp.Stderr = os.Stderr, os.Stderr
	if err := imp.Run(); err != nil {
		return fail("import images: %v", err)
	}

	Env.Config = cfgPath
	if Env.Daemon, err = StartRuntimed(cfgPath); err != nil {
		return fail("runtimed: %v", err)
	}
	code = m.Run()
	Env.Daemon.Stop()

	// After the suite, nothing of any execution may remain.
	if leaks := Leftovers(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: leftovers after the suite:\n  %s\n", strings.Join(leaks, "\n  "))
		code = 1
	}
	return code
}

// imageBuild is `runtimed image build` for the test's containerd.
func ImageBuild(cfgPath string) *exec.Cmd {
	return exec.Command(filepath.Join(Env.Bin, "runtimed"), "--config", cfgPath, "image", "build",
		"--recipes", filepath.Join(RepoRoot(), "packaging", "images"), "--cache", Env.ImageCache)
}

func RepoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

func buildBinaries() error {
	Env.Bin = filepath.Join(Env.Dir, "bin")
	cmd := exec.Command("go", "build", "-o", Env.Bin+"/", "./cmd/runtimed", "./cmd/runtimectl")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	// runtimed-init runs inside the sandboxes: static, as make builds it.
	cmd = exec.Command("go", "build", "-o", Env.Bin+"/", "./cmd/runtimed-init")
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// containerdProc is the suite's containerd.
type containerdProc struct {
	root, conf string
	cmd        *exec.Cmd
	logf       *os.File
}

var ctrd containerdProc

// StartContainerd starts a containerd of the suite's own, with its root,
// state and socket under Env.Dir, sets Env.Containerd and Env.Ctr, and
// returns what stops it.
func StartContainerd() (func(), error) {
	root := filepath.Join(Env.Dir, "containerd")
	Env.Containerd = filepath.Join(root, "containerd.sock")
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
`, filepath.Join(root, "root"), filepath.Join(root, "state"), Env.Containerd)), 0o600)
	if err != nil {
		return nil, err
	}
	ctrd = containerdProc{root: root, conf: conf}
	if err := ctrd.start(); err != nil {
		return nil, err
	}
	return func() {
		ctrd.stop()
		unmountUnder(root)
	}, nil
}

func (p *containerdProc) start() error {
	var err error
	if p.logf, err = os.OpenFile(filepath.Join(p.root, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return err
	}
	p.cmd = exec.Command("containerd", "--config", p.conf)
	p.cmd.Stdout, p.cmd.Stderr = p.logf, p.logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := containerd.New(Env.Containerd, containerd.WithTimeout(time.Second))
		if err == nil {
			if _, err = c.Version(context.Background()); err == nil {
				Env.Ctr = c
				return nil
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			p.stop()
			log, _ := os.ReadFile(filepath.Join(p.root, "containerd.log"))
			return fmt.Errorf("containerd did not answer: %w\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *containerdProc) stop() {
	if Env.Ctr != nil {
		Env.Ctr.Close()
		Env.Ctr = nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.logf.Close()
}

// RestartContainerd stops the suite's containerd, calls during while it
// is down, and starts it again.
func RestartContainerd(during func()) error {
	ctrd.stop()
	during()
	return ctrd.start()
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

// TestToken is the secret of the test daemon's one API token.
const TestToken = "rtd_integration-test-token"

func writeConfig() (string, error) {
	Env.Socket = filepath.Join(Env.Dir, "runtimed.sock")
	Env.StateDir = filepath.Join(Env.Dir, "state")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	Env.TCP = l.Addr().String()
	l.Close()
	sum := sha256.Sum256([]byte(TestToken))
	path := filepath.Join(Env.Dir, "runtimed.toml")
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

# A language whose interpreter is not in its image (found out when the
# images are looked at: unavailable), one whose interpreter is looked for
# only in the sandbox (in /tmp, which a run mounts: the exec fails there,
# a platform failure), and one whose image was never built.
[languages.broken]
version = "0"
extension = ".broken"
image = "runtimed.local/python:3.11"
run = ["/nonexistent/interpreter", "{entry}"]

[languages.failing]
version = "0"
extension = ".failing"
image = "runtimed.local/python:3.11"
run = ["/tmp/no-such-interpreter", "{entry}"]

[languages.noimage]
version = "0"
extension = ".noimage"
image = "runtimed.local/noimage:0"
run = ["/bin/true"]
`, Env.Socket, Env.Containerd, Env.StateDir, Env.TCP, hex.EncodeToString(sum[:]))), 0o600)
}

// Daemon is a runtimed process under test.
type Daemon struct {
	cmd    *exec.Cmd
	exited chan error
	Log    string
	logf   *os.File
}

// StartRuntimed starts the suite's runtimed with the config at cfgPath
// and waits until it answers.
func StartRuntimed(cfgPath string) (*Daemon, error) {
	Env.Client = api.NewClient(Env.Socket, "")
	return Start(Instance{Config: cfgPath, Socket: Env.Socket, Log: filepath.Join(Env.Dir, "runtimed.log")}, nil)
}

// Instance is one runtimed's files: more than one may share the suite's
// containerd.
type Instance struct {
	Name, Config, Socket, StateDir, Log string
}

// NewInstance writes the config of another runtimed named name, on the
// suite's containerd, with its own socket and state; extra is appended to
// its config.
func NewInstance(name, extra string) (Instance, error) {
	dir := filepath.Join(Env.Dir, "instance-"+name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Instance{}, err
	}
	in := Instance{
		Name: name, Config: filepath.Join(dir, "runtimed.toml"), Socket: filepath.Join(dir, "runtimed.sock"),
		StateDir: filepath.Join(dir, "state"), Log: filepath.Join(dir, "runtimed.log"),
	}
	return in, os.WriteFile(in.Config, []byte(fmt.Sprintf(`instance = %q
socket = %q
containerd = %q
state_dir = %q
log_level = "debug"
%s
`, name, in.Socket, Env.Containerd, in.StateDir, extra)), 0o600)
}

// Start starts runtimed for in, with extra environment variables, and
// waits until it answers on its socket. The daemon runs as its systemd
// unit has it: with no new privileges and a umask of 077.
func Start(in Instance, environ []string) (*Daemon, error) {
	return StartWith(in, environ, filepath.Join(Env.Bin, "runtimed"), "--config", in.Config, "--log-format", "json")
}

// StartWith is Start with the command line argv (another runtimed binary,
// or other flags).
func StartWith(in Instance, environ []string, argv ...string) (*Daemon, error) {
	d, err := Spawn(in, environ, argv...)
	if err != nil {
		return nil, err
	}
	client := api.NewClient(in.Socket, "")
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Health(ctx)
		cancel()
		if err == nil {
			return d, nil
		}
		select {
		case err := <-d.exited:
			d.logf.Close()
			data, _ := os.ReadFile(d.Log)
			return nil, fmt.Errorf("runtimed exited: %v\n%s", err, data) //nolint:errorlint // err may be nil (it exited 0)
		default:
		}
		if time.Now().After(deadline) {
			d.Stop()
			data, _ := os.ReadFile(d.Log)
			return nil, fmt.Errorf("runtimed did not answer: %w\n%s", err, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Spawn starts argv (runtimed, or a wrapper of it) for in under
// setpriv --no-new-privs and umask 077, and returns at once.
func Spawn(in Instance, environ []string, argv ...string) (*Daemon, error) {
	d := &Daemon{exited: make(chan error, 1), Log: in.Log}
	var err error
	if d.logf, err = os.OpenFile(d.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, err
	}
	d.cmd = exec.Command("sh", append([]string{"-c", `umask 077 && exec setpriv --no-new-privs "$@"`, "sh"}, argv...)...)
	d.cmd.Env = append(os.Environ(), environ...)
	d.cmd.Stdout, d.cmd.Stderr = d.logf, d.logf
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	client := api.NewClient(in.Socket, "")
	live.Lock()
	live.clients[d] = client
	live.Unlock()
	go func() {
		err := d.cmd.Wait()
		live.Lock()
		delete(live.clients, d)
		live.Unlock()
		d.exited <- err
	}()
	return d, nil
}

// live are the daemons the suite started and that have not exited: their
// warm pools hold sandboxes that are not leftovers.
var live = struct {
	sync.Mutex
	clients map[*Daemon]*api.Client
}{clients: map[*Daemon]*api.Client{}}

// Signal sends sig to the daemon without waiting.
func (d *Daemon) Signal(sig syscall.Signal) error { return d.cmd.Process.Signal(sig) }

// Pid is the daemon's process id (the wrappers exec it).
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Exited returns the daemon's exit once it has exited.
func (d *Daemon) Exited() <-chan error { return d.exited }

// Stop sends SIGTERM and waits for runtimed to exit.
func (d *Daemon) Stop() { d.signal(syscall.SIGTERM) }

// Kill is a crash: SIGKILL, and no chance to clean up.
func (d *Daemon) Kill() { d.signal(syscall.SIGKILL) }

func (d *Daemon) signal(sig syscall.Signal) {
	_ = d.cmd.Process.Signal(sig)
	var err error
	select {
	case err = <-d.exited:
	case <-time.After(90 * time.Second):
		_ = d.cmd.Process.Kill()
		err = <-d.exited
	}
	fmt.Fprintf(d.logf, "harness: runtimed ended after %v: %v\n", sig, err)
	d.logf.Close()
	if os.Getenv("RUNTIMED_TEST_LOG") != "" {
		data, _ := os.ReadFile(d.Log)
		os.Stderr.Write(data)
	}
}

// Leftovers lists what executions left: containers, tasks, snapshots
// other than the images' committed layers, per-run directories, mounts,
// and processes (shims, the sandboxes' runsc processes). The sandboxes that
// running daemons hold in their warm pools are not leftovers.
func Leftovers() []string {
	pooled := PooledSandboxes()
	var out []string
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), Namespace), 10*time.Second)
	defer cancel()
	cs, err := Env.Ctr.Containers(ctx)
	if err != nil {
		return []string{"list containers: " + err.Error()}
	}
	tasks, terr := Env.Ctr.TaskService().List(ctx, nil)
	var snaps []string
	serr := Env.Ctr.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindCommitted {
			snaps = append(snaps, info.Name)
		}
		return nil
	})
	runs := filepath.Join(Env.StateDir, "runs", "runtimed")
	entries, _ := os.ReadDir(runs)
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	// A sandbox that a pool was making when it was first asked may be
	// ready by now: ask again.
	for id := range PooledSandboxes() {
		pooled[id] = true
	}

	for _, c := range cs {
		if !pooled[c.ID()] {
			out = append(out, "container "+c.ID())
		}
	}
	if terr != nil {
		out = append(out, "list tasks: "+terr.Error())
	} else {
		for _, t := range tasks.Tasks {
			if !pooled[t.ID] {
				out = append(out, "task "+t.ID)
			}
		}
	}
	if serr != nil {
		out = append(out, "walk snapshots: "+serr.Error())
	}
	for _, name := range snaps {
		if !pooled[name] {
			out = append(out, "snapshot "+name)
		}
	}
	for _, e := range entries {
		if !pooled[runOwner(filepath.Join(runs, e.Name()))] {
			out = append(out, "run directory "+filepath.Join(runs, e.Name()))
		}
	}
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], runs+"/") && !pooled[runOwner(f[4])] {
			out = append(out, "mount "+f[4])
		}
	}
	for _, p := range sandboxProcesses() {
		if !pooled[p.id] {
			out = append(out, fmt.Sprintf("process %d of %s: %s", p.pid, p.id, Trim(p.cmdline)))
		}
	}
	return out
}

// sandboxIDPattern matches the ids runtimed gives its sandboxes.
var sandboxIDPattern = regexp.MustCompile(`\brt-[0-9a-f]{16}\b`)

type sandboxProcess struct {
	pid     int
	id      string
	cmdline string
}

// sandboxProcesses are the live processes of the suite's containerd's
// sandboxes: the shims, whose command line has its address, and runsc's
// processes, whose command line has its state directory. Each is named by
// the sandbox id in its command line. Zombies have no command line and are
// not listed: their parent is gone and init reaps them.
func sandboxProcesses() []sandboxProcess {
	under := filepath.Join(Env.Dir, "containerd") + "/"
	dirs, _ := os.ReadDir("/proc")
	var out []sandboxProcess
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		cmdline := strings.TrimSpace(strings.ReplaceAll(string(raw), "\x00", " "))
		if !strings.Contains(cmdline, under) {
			continue
		}
		if id := sandboxIDPattern.FindString(cmdline); id != "" {
			out = append(out, sandboxProcess{pid: pid, id: id, cmdline: cmdline})
		}
	}
	return out
}

// runOwner is the sandbox a per-run directory belongs to: a box is named
// after its sandbox; a directory of FIFOs holds files named after it.
func runOwner(dir string) string {
	base := filepath.Base(dir)
	if strings.HasPrefix(base, "rt-") {
		return base
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if id, _, ok := strings.Cut(e.Name(), "-std"); ok {
			return id
		}
	}
	return base
}

// PooledSandboxes are the ids of the sandboxes that the daemons the suite
// started hold in their warm pools, ready or starting.
func PooledSandboxes() map[string]bool {
	live.Lock()
	clients := make([]*api.Client, 0, len(live.clients))
	for _, c := range live.clients {
		clients = append(clients, c)
	}
	live.Unlock()
	ids := map[string]bool{}
	for _, c := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ps, err := c.Pools(ctx)
		cancel()
		if err != nil {
			continue // not answering (yet, or any more): no pool to count
		}
		for _, p := range ps.Pools {
			for _, id := range p.Sandboxes {
				ids[id] = true
			}
		}
	}
	return ids
}

// UnixHTTP is a plain HTTP client on runtimed's socket, for requests the
// api.Client would not send.
func UnixHTTP() *http.Client { return UnixHTTPTo(Env.Socket) }

// UnixHTTPTo is a plain HTTP client on the unix socket at path.
func UnixHTTPTo(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// PostRaw posts body to /v1/run as it is.
func PostRaw(t *testing.T, body string) (int, []byte) {
	t.Helper()
	return Do(t, UnixHTTP(), http.MethodPost, "http://runtimed/v1/run", "application/json", "", body)
}

// Do sends one request with client: contentType and a bearer token when
// not empty, and body. It returns the status and the whole answer.
func Do(t testing.TB, client *http.Client, method, url, contentType, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// FreeAddr is a loopback address no one listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// StartInstance writes another runtimed's config (see NewInstance) and
// starts it; it is stopped when the test ends.
func StartInstance(t testing.TB, name, extra string) (Instance, *Daemon) {
	t.Helper()
	in, err := NewInstance(name, extra)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Start(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return in, d
}

func DecodeErrorBody(body []byte, e *api.Error) error {
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		return err
	}
	*e = eb.Error
	return nil
}

// RunOK runs req and fails the test if runtimed answered with an error.
func RunOK(t *testing.T, req *api.RunRequest) *api.RunResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := Env.Client.Run(ctx, req)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return resp
}

// Files makes request files from name, content pairs.
func Files(nameContent ...string) []api.File {
	var fs []api.File
	for i := 0; i+1 < len(nameContent); i += 2 {
		fs = append(fs, api.File{Name: nameContent[i], Content: nameContent[i+1]})
	}
	return fs
}

// ExpectStatus fails the test unless resp has status want.
func ExpectStatus(t *testing.T, resp *api.RunResponse, want api.Status) {
	t.Helper()
	if resp.Run == nil {
		var compile api.StageResult
		if resp.Compile != nil {
			compile = *resp.Compile
		}
		t.Fatalf("status = %q with no run, want %q; compile %q %s, stderr %q", resp.Status, want, compile.Status, compile.Message, Trim(compile.Stderr))
	}
	if resp.Status != want || resp.Run.Status != want {
		t.Fatalf("status = %q (run %q), want %q; exit %d, stdout %q, stderr %q",
			resp.Status, resp.Run.Status, want, resp.Run.ExitCode, Trim(resp.Run.Stdout), Trim(resp.Run.Stderr))
	}
}

// Trim shortens s for a failure message.
func Trim(s string) string {
	if len(s) > 400 {
		return s[:400] + "…"
	}
	return s
}

// WaitNoLeftovers waits up to d for every trace of executions to be gone.
func WaitNoLeftovers(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := Leftovers()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
