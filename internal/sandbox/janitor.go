package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// janitor removes the sandboxes whose removal failed — containerd was
// away, or restarting — by their ids, again and again until it works, for
// as long as runtimed runs; at a stop it tries a last time, and what is
// left then the next start removes (Reap).
type janitor struct {
	r       *Runner
	mu      sync.Mutex
	ids     map[string]bool
	running bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}
}

// janitorEvery is how often the janitor tries.
const janitorEvery = 2 * time.Second

func newJanitor(r *Runner) *janitor {
	return &janitor{r: r, ids: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
}

func (j *janitor) add(id string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ids[id] = true
	if !j.running && !j.closed {
		j.running = true
		go j.loop()
	}
}

func (j *janitor) loop() {
	defer close(j.done)
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			j.sweep()
			return
		case <-t.C:
			j.sweep()
		}
	}
}

// sweep tries each id once.
func (j *janitor) sweep() {
	j.mu.Lock()
	ids := make([]string, 0, len(j.ids))
	for id := range j.ids {
		ids = append(ids, id)
	}
	j.mu.Unlock()
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(j.r.namespaced(context.Background()), cleanupTimeout)
		err := j.r.removeByID(ctx, id)
		cancel()
		if err == nil {
			j.mu.Lock()
			delete(j.ids, id)
			j.mu.Unlock()
			j.r.log.WithField("sandbox", id).Info("the janitor removed a sandbox")
		}
	}
}

// close stops the janitor after a last sweep.
func (j *janitor) close() {
	j.mu.Lock()
	closed, running := j.closed, j.running
	j.closed = true
	j.mu.Unlock()
	if !closed && running {
		close(j.stop)
		<-j.done
	}
}

// removeByID removes a sandbox's task, container and snapshot, looked up
// afresh by its id. A containerd that has just restarted may say "not
// found" of what it has not loaded yet: the container's absence is
// checked at the end.
func (r *Runner) removeByID(ctx context.Context, id string) error {
	c, err := r.client.LoadContainer(ctx, id)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return err
	default:
		if task, err := c.Task(ctx, nil); err == nil {
			if err := deleteTask(ctx, task, 0); err != nil {
				return err
			}
		} else if !errdefs.IsNotFound(err) {
			return err
		}
		if err := ignoreNotFound(c.Delete(ctx, containerd.WithSnapshotCleanup)); err != nil {
			return err
		}
	}
	if err := ignoreNotFound(r.client.SnapshotService(r.cfg.Snapshotter).Remove(ctx, id)); err != nil {
		return fmt.Errorf("remove snapshot: %w", err)
	}
	if _, err := r.client.ContainerService().Get(ctx, id); !errdefs.IsNotFound(err) {
		return errors.Join(errors.New("container still there"), err)
	}
	return nil
}
