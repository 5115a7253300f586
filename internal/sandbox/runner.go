// Package sandbox owns the life of a gVisor sandbox in containerd: it
// creates one per execution from a language image, runs the program with
// its limits, gives the verdict, and removes everything it created, on
// every path. It also removes what a crashed daemon left behind.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"sync"
	"syscall"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/image"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/pkg/oci"
)

// Labels on everything runtimed creates in containerd.
const (
	labelSandbox  = "io.runtimed.sandbox"
	labelInstance = "io.runtimed.instance"
)

// cleanupTimeout bounds the removal of one sandbox. Cleanup never uses the
// request's context: a client that went away must not leak a sandbox.
const cleanupTimeout = 30 * time.Second

// killGrace is how long a killed sandbox may take to report its exit
// before the runner stops waiting for it.
const killGrace = 5 * time.Second

// exitGrace is how long the removal of a used sandbox waits for it to
// end by itself (its agent exits after its report) before killing it.
const exitGrace = 2 * time.Second

// Config is what the runner needs to know of the daemon's configuration.
type Config struct {
	// Containerd is the address of containerd's socket, as its shims are
	// told it: runtimed stops the shims of that containerd that outlive
	// their sandboxes.
	Containerd  string
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
	// AgentPath is runtimed-init on the host, mounted into every sandbox.
	AgentPath string
}

// Runner makes sandboxes: fresh ones, or ready ones from its warm pools.
type Runner struct {
	client  *containerd.Client
	cfg     Config
	metrics *metrics.Metrics
	log     *logrus.Entry
	pools   *pools
	janitor *janitor
	v1      v1Controllers
	// pending counts sandboxes being removed in the background.
	pending sync.WaitGroup
	// commands remembers what MissingCommands found.
	commands commandChecks
}

// New returns a runner. The client's default namespace is not relied on.
func New(client *containerd.Client, cfg Config, m *metrics.Metrics, log *logrus.Entry) *Runner {
	r := &Runner{client: client, cfg: cfg, metrics: m, log: log}
	r.pools = newPools(r)
	r.janitor = newJanitor(r)
	m.WatchPools(func() []metrics.PoolState {
		var out []metrics.PoolState
		for _, p := range r.Pools() {
			out = append(out, metrics.PoolState{Image: p.Image, Ready: p.Ready, Creating: p.Creating, IdleBytes: p.IdleBytes})
		}
		return out
	})
	return r
}

// Acquire returns a started sandbox of profile p, ready for its program:
// a warm one from the pool of p if there is one, else a new one. The
// caller releases it.
func (r *Runner) Acquire(ctx context.Context, p Profile, log *logrus.Entry) (*Sandbox, error) {
	if log == nil {
		log = r.log
	}
	if s := r.pools.take(p); s != nil {
		s.log = log.WithField("sandbox", s.ID)
		return s, nil
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	s, err := r.create(ctx, id, p, log)
	if err != nil {
		return nil, err
	}
	r.metrics.Phase(metrics.PhaseSandboxCreate, time.Since(start))
	return s, nil
}

// Close empties the pools and waits until the sandboxes they were making
// are made and removed and every released sandbox is removed, or ctx ends.
func (r *Runner) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		r.pools.close()
		r.pending.Wait()
		r.janitor.close()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sandboxes still being removed: %w", ctx.Err())
	}
}

// idPrefix starts every sandbox id: idPrefix and 16 hex digits (newID).
const idPrefix = "rt-"

// sandboxID matches the ids newID makes.
var sandboxID = regexp.MustCompile(`^` + idPrefix + `[0-9a-f]{16}$`)

func newID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return idPrefix + hex.EncodeToString(b), nil
}

// killReason is why the runner stopped a program, if it did.
type killReason int

const (
	notKilled killReason = iota
	killedTimeout
	killedCPUTime
	killedOutput
	killedCancelled
)

// ErrImageMissing is returned when a language's image is not in containerd.
// It is errdefs' failed precondition: the request was valid, the host
// lacks what it needs.
var ErrImageMissing = fmt.Errorf("image not present in containerd (runtimectl images build LANGUAGE installs it): %w", errdefs.ErrFailedPrecondition)

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

// deleteTask kills task if it still runs after grace (a task expected to
// end by itself gets that long to), waits for it to exit, and deletes it.
func deleteTask(ctx context.Context, task containerd.Task, grace time.Duration) error {
	st, err := task.Status(ctx)
	if err != nil {
		return ignoreNotFound(err)
	}
	if st.Status != containerd.Stopped {
		exitCh, err := task.Wait(ctx)
		if err != nil {
			return ignoreNotFound(err)
		}
		select {
		case <-exitCh:
		case <-time.After(grace):
			if err := killTask(ctx, task, exitCh); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_, err = task.Delete(ctx)
	return ignoreNotFound(err)
}

// killTask kills task and waits for exitCh. The task may exit by itself
// between the look at its status and the kill, which then fails (runsc
// cannot signal a sandbox that is gone): the exit is what counts, not the
// kill.
func killTask(ctx context.Context, task containerd.Task, exitCh <-chan containerd.ExitStatus) error {
	kerr := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll)
	if errdefs.IsNotFound(kerr) {
		kerr = nil
	}
	select {
	case <-exitCh:
		return nil
	case <-time.After(killGrace):
		return errors.Join(fmt.Errorf("task %s did not exit within %s of SIGKILL", task.ID(), killGrace), kerr)
	case <-ctx.Done():
		return ctx.Err()
	}
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

// ImageVersion answers the version of what the image ref runs, as its
// recipe recorded it (the io.runtimed.version label of its config); ""
// for an image without one or one containerd does not hold.
func (r *Runner) ImageVersion(ctx context.Context, ref string) (string, error) {
	ctx = r.namespaced(ctx)
	img, err := r.client.GetImage(ctx, ref)
	if errdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return "", err
	}
	return spec.Config.Labels[image.LabelVersion], nil
}

// ImagePresent reports whether containerd holds the image ref.
func (r *Runner) ImagePresent(ctx context.Context, ref string) (bool, error) {
	_, err := r.client.ImageService().Get(r.namespaced(ctx), ref)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
