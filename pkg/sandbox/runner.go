// Package sandbox owns the life of a gVisor sandbox in containerd: it
// creates one per execution from a language image, runs the program with
// its limits, gives the verdict, and removes everything it created, on
// every path. It also removes what a crashed daemon left behind.
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"sync"
	"syscall"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	coci "github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/pkg/metrics"
	"github.com/runtimed/runtimed/pkg/oci"
)

// Labels on everything runtimed creates in containerd.
const (
	LabelSandbox  = "io.runtimed.sandbox"
	LabelInstance = "io.runtimed.instance"
)

// cleanupTimeout bounds the removal of one sandbox. Cleanup never uses the
// request's context: a client that went away must not leak a sandbox.
const cleanupTimeout = 30 * time.Second

// killGrace is how long a killed sandbox may take to report its exit
// before the runner stops waiting for it.
const killGrace = 5 * time.Second

// Config is what the runner needs to know of the daemon's configuration.
type Config struct {
	Namespace   string
	Instance    string
	RuntimeType string
	// RuntimeBinary is the runc shim's BinaryName (the runsc wrapper).
	RuntimeBinary string
	Snapshotter   string
	// RunDir holds the per-run box mounts and FIFOs.
	RunDir    string
	Hardening oci.Hardening
	BoxBytes  int64
	BoxInodes int64
	TmpBytes  int64
}

// Job is one stage of an execution: an image, a box of files, a command
// and its limits.
type Job struct {
	Image  string
	Box    *Box
	Args   []string
	Env    []string
	Stdin  []byte
	Limits api.Limits
	// Log carries the request's fields (its id); the runner's own if nil.
	Log *logrus.Entry
}

// Runner runs jobs in fresh sandboxes.
type Runner struct {
	client  *containerd.Client
	cfg     Config
	metrics *metrics.Metrics
	log     *logrus.Entry
}

// New returns a runner. The client's default namespace is not relied on.
func New(client *containerd.Client, cfg Config, m *metrics.Metrics, log *logrus.Entry) *Runner {
	return &Runner{client: client, cfg: cfg, metrics: m, log: log}
}

func newID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "rt-" + hex.EncodeToString(b), nil
}

// killReason is why the runner stopped a program, if it did.
type killReason int

const (
	notKilled killReason = iota
	killedTimeout
	killedOutput
	killedCancelled
)

// Run runs job in a new sandbox and returns its verdict. An error means
// the platform failed; the program failing is a verdict in the result.
func (r *Runner) Run(ctx context.Context, job Job) (result api.StageResult, err error) {
	id, err := newID()
	if err != nil {
		return result, err
	}
	log := job.Log
	if log == nil {
		log = r.log
	}
	log = log.WithField("sandbox", id)
	ctx = r.namespaced(ctx)

	var cleanups []func(context.Context) error
	defer func() {
		start := time.Now()
		cctx, cancel := context.WithTimeout(r.namespaced(context.Background()), cleanupTimeout)
		defer cancel()
		for i := len(cleanups) - 1; i >= 0; i-- {
			if cerr := cleanups[i](cctx); cerr != nil {
				log.WithError(cerr).Warn("sandbox cleanup")
			}
		}
		r.metrics.Phase(metrics.PhaseCleanup, time.Since(start))
	}()
	created := time.Now()

	image, err := r.client.GetImage(ctx, job.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return result, fmt.Errorf("image %s: %w", job.Image, ErrImageMissing)
		}
		return result, fmt.Errorf("get image %s: %w", job.Image, err)
	}

	labels := map[string]string{LabelSandbox: "true", LabelInstance: r.cfg.Instance}
	container, err := r.client.NewContainer(ctx, id,
		containerd.WithContainerLabels(labels),
		containerd.WithSnapshotter(r.cfg.Snapshotter),
		containerd.WithNewSnapshotView(id, image, snapshots.WithLabels(labels)),
		containerd.WithRuntime(r.cfg.RuntimeType, r.runtimeOptions()),
		containerd.WithNewSpec(
			coci.WithHostname("sandbox"),
			coci.WithCgroup(r.cgroupPath(id)),
			oci.WithIsolation(),
			oci.WithHardening(r.cfg.Hardening),
			oci.WithResources(oci.Resources{
				MemoryBytes: job.Limits.MemoryBytes,
				CPU:         job.Limits.CPU,
				Pids:        job.Limits.Pids,
			}),
			oci.WithBox(job.Box.Dir(), r.cfg.TmpBytes),
			oci.WithProcess(job.Args, job.Env),
		),
	)
	if err != nil {
		// A view created before the failure would otherwise be left.
		cleanups = append(cleanups, func(cctx context.Context) error {
			return ignoreNotFound(r.client.SnapshotService(r.cfg.Snapshotter).Remove(cctx, id))
		})
		return result, fmt.Errorf("create container: %w", err)
	}
	cleanups = append(cleanups, func(cctx context.Context) error {
		return ignoreNotFound(container.Delete(cctx, containerd.WithSnapshotCleanup))
	})

	stopCh := make(chan killReason, 2)
	var stopOnce sync.Once
	stop := func(why killReason) { stopOnce.Do(func() { stopCh <- why }) }
	stdout := newCappedBuffer(job.Limits.OutputBytes, func() { stop(killedOutput) })
	stderr := newCappedBuffer(job.Limits.OutputBytes, func() { stop(killedOutput) })

	stdin := &eofReader{r: bytes.NewReader(job.Stdin), eof: make(chan struct{})}
	task, err := container.NewTask(ctx, cio.NewCreator(
		cio.WithStreams(stdin, stdout, stderr),
		cio.WithFIFODir(r.cfg.RunDir),
	))
	if err != nil {
		return result, fmt.Errorf("create task: %w", err)
	}
	cleanups = append(cleanups, func(cctx context.Context) error { return deleteTask(cctx, task) })

	r.metrics.Phase(metrics.PhaseSandboxCreate, time.Since(created))

	// Wait must not end with the request: the exit is needed for cleanup.
	waitCtx, cancelWait := context.WithCancel(r.namespaced(context.Background()))
	defer cancelWait()
	exitCh, err := task.Wait(waitCtx)
	if err != nil {
		return result, fmt.Errorf("wait task: %w", err)
	}

	wall := time.Duration(job.Limits.WallTimeMS) * time.Millisecond
	start := time.Now()
	if err := task.Start(ctx); err != nil {
		return result, fmt.Errorf("start task: %w", err)
	}
	timer := time.NewTimer(wall)
	defer timer.Stop()
	// The shim holds the program's stdin open until told to close it, so
	// the program sees EOF once all of stdin was copied.
	go func() {
		select {
		case <-stdin.eof:
			if err := task.CloseIO(waitCtx, containerd.WithStdinCloser); err != nil && waitCtx.Err() == nil {
				log.WithError(err).Debug("close stdin")
			}
		case <-waitCtx.Done():
		}
	}()

	var why killReason
	var status containerd.ExitStatus
	select {
	case status = <-exitCh:
	case <-timer.C:
		why = killedTimeout
	case why = <-stopCh:
	case <-ctx.Done():
		why = killedCancelled
	}
	if why != notKilled {
		kctx, cancel := context.WithTimeout(r.namespaced(context.Background()), killGrace)
		if err := task.Kill(kctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
			log.WithError(err).Warn("kill sandbox")
		}
		select {
		case status = <-exitCh:
		case <-kctx.Done():
			log.Warn("sandbox did not exit after kill")
		}
		cancel()
	}
	elapsed := time.Since(start)
	if !status.ExitTime().IsZero() && status.ExitTime().After(start) {
		elapsed = status.ExitTime().Sub(start)
	}
	if why == killedCancelled {
		return result, ctx.Err()
	}

	// The cgroup is read before the task is deleted: deleting it removes
	// the cgroup and with it the OOM evidence.
	use, uerr := readUsage(r.cgroupPath(id))
	if uerr != nil {
		log.WithError(uerr).Warn("read sandbox cgroup")
	}

	// Deleting the task waits for its output to be copied.
	dctx, cancel := context.WithTimeout(r.namespaced(context.Background()), cleanupTimeout)
	if err := deleteTask(dctx, task); err != nil {
		log.WithError(err).Warn("delete task")
	}
	cancel()

	result.Stdout, result.StdoutTruncated = stdout.result()
	result.Stderr, result.StderrTruncated = stderr.result()
	result.WallTimeMS = elapsed.Milliseconds()
	result.CPUTimeMS = use.CPUTimeNS / int64(time.Millisecond)
	result.MemoryBytes = use.PeakMemoryBytes
	code := int(status.ExitCode())
	result.ExitCode = code
	if code > 128 && code < 128+65 {
		result.Signal = unix.SignalName(syscall.Signal(code - 128))
	}

	switch {
	case why == killedTimeout:
		result.Status = api.StatusTimeout
	case why == killedOutput || result.StdoutTruncated || result.StderrTruncated:
		result.Status = api.StatusOutputLimit
	case use.OOMKills > 0, code != 0 && use.MemoryLimitHits > 0 && use.PeakMemoryBytes >= job.Limits.MemoryBytes*95/100:
		// The kernel's OOM killer acted in the sandbox's cgroup; or the
		// cgroup reached its limit and the sandbox died of it: gVisor's
		// own allocations failing ends it without an OOM kill.
		result.Status = api.StatusMemoryLimit
	case code != 0:
		result.Status = api.StatusRuntimeError
	default:
		result.Status = api.StatusOK
	}
	log.WithFields(logrus.Fields{
		"status": result.Status, "exit_code": code, "wall_ms": result.WallTimeMS,
		"cpu_ms": result.CPUTimeMS, "memory_bytes": result.MemoryBytes,
		"oom_kills": use.OOMKills, "memory_limit_hits": use.MemoryLimitHits,
	}).Debug("sandbox finished")
	return result, nil
}

// eofReader closes eof when r is exhausted.
type eofReader struct {
	r    *bytes.Reader
	eof  chan struct{}
	once sync.Once
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { close(e.eof) })
	}
	return n, err
}

// ErrImageMissing is returned when a language's image is not in containerd.
var ErrImageMissing = errors.New("image not present in containerd (run `make images`)")

func (r *Runner) namespaced(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.cfg.Namespace)
}

func (r *Runner) cgroupPath(id string) string {
	return path.Join("/", r.cfg.Namespace, id)
}

func (r *Runner) runtimeOptions() any {
	if r.cfg.RuntimeBinary == "" {
		return nil
	}
	return &runcoptions.Options{BinaryName: r.cfg.RuntimeBinary}
}

// deleteTask kills task if it still runs, waits for it to exit, and
// deletes it. Killing a task that has exited fails with runsc, so the
// kill is only sent to a live one.
func deleteTask(ctx context.Context, task containerd.Task) error {
	st, err := task.Status(ctx)
	if err != nil {
		return ignoreNotFound(err)
	}
	if st.Status != containerd.Stopped {
		exitCh, err := task.Wait(ctx)
		if err != nil {
			return ignoreNotFound(err)
		}
		if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("kill task %s: %w", task.ID(), err)
		}
		select {
		case <-exitCh:
		case <-time.After(killGrace):
			return fmt.Errorf("task %s did not exit within %s of SIGKILL", task.ID(), killGrace)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_, err = task.Delete(ctx)
	return ignoreNotFound(err)
}

func ignoreNotFound(err error) error {
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// Version returns containerd's version; an error means it does not answer.
func (r *Runner) Version(ctx context.Context) (string, error) {
	v, err := r.client.Version(ctx)
	if err != nil {
		return "", err
	}
	return v.Version, nil
}

// ImagePresent reports whether containerd holds the image ref.
func (r *Runner) ImagePresent(ctx context.Context, ref string) (bool, error) {
	_, err := r.client.ImageService().Get(r.namespaced(ctx), ref)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
