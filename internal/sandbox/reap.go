package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
)

// Leftovers counts what Reap removed.
type Leftovers struct {
	Containers int
	Snapshots  int
	Boxes      int
	// Shims are shim processes that outlived their sandboxes.
	Shims int
}

// Reap removes everything a previous run of this daemon instance left
// behind: its containers and their tasks, their snapshots, the shims
// that outlived their sandboxes, and the per-run directories and mounts.
// It is called before serving.
func (r *Runner) Reap(ctx context.Context) (Leftovers, error) {
	var left Leftovers
	var errs []error
	ctx = r.namespaced(ctx)
	filter := fmt.Sprintf("labels.%q==%q", labelInstance, r.cfg.Instance)

	containers, err := r.client.Containers(ctx, filter)
	if err != nil {
		return left, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range containers {
		if err := r.removeByID(ctx, c.ID()); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s: %w", c.ID(), err))
			continue
		}
		left.Containers++
	}

	// A shim whose task creation was cut off by the crash (see
	// stopOrphanShims); the containers above are gone by now.
	shims, err := r.stopOrphanShims(ctx, "")
	left.Shims = shims
	if err != nil {
		errs = append(errs, err)
	}

	// The run directories first: an image view mounted there (see
	// MissingCommands) is unmounted before its snapshot is removed.
	if err := os.MkdirAll(r.cfg.RunDir, 0o700); err != nil {
		return left, errors.Join(append(errs, err)...)
	}
	entries, err := os.ReadDir(r.cfg.RunDir)
	if err != nil {
		return left, errors.Join(append(errs, err)...)
	}
	for _, e := range entries {
		p := filepath.Join(r.cfg.RunDir, e.Name())
		if e.IsDir() && strings.HasPrefix(e.Name(), idPrefix) {
			if err := removeBoxDir(p); err != nil {
				errs = append(errs, err)
				continue
			}
			left.Boxes++
			continue
		}
		// FIFOs of tasks that were never deleted.
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	sn := r.client.SnapshotService(r.cfg.Snapshotter)
	var orphans []string
	if err := sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		orphans = append(orphans, info.Name)
		return nil
	}, filter); err != nil {
		errs = append(errs, fmt.Errorf("walk snapshots: %w", err))
	}
	for _, name := range orphans {
		if err := sn.Remove(ctx, name); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove snapshot %s: %w", name, err))
			continue
		}
		left.Snapshots++
	}

	return left, errors.Join(errs...)
}
