package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// A shim process normally ends when containerd deletes its task. One
// whose task creation was cut off (runtimed was killed during it, or the
// call timed out) can outlive it: containerd 1.6 then forgets the task,
// runs the shim's cleanup, which removes the sandbox, and disconnects, but
// the shim, which never got its shutdown, keeps running with nothing to
// serve. Nothing in containerd's API shows it; runtimed finds such shims
// among the host's processes and stops them.

// shimProcess is a containerd shim serving one of runtimed's sandboxes.
type shimProcess struct {
	pid int
	id  string
	uid uint32 // its owner: containerd's shims run as root
}

// shims lists the shim processes of sandboxes in namespace, started by
// the containerd at address, from /proc. procDir is /proc but for tests.
func shims(procDir, namespace, address string) []shimProcess {
	entries, err := os.ReadDir(procDir)
	if err != nil {
		return nil
	}
	var out []shimProcess
	for _, e := range entries {
		if s, ok := readShim(procDir, e.Name(), namespace, address); ok {
			out = append(out, s)
		}
	}
	return out
}

// readShim reads process pid's command line and says whether it is a
// shim of a sandbox in namespace, started by the containerd at address.
func readShim(procDir, pid, namespace, address string) (shimProcess, bool) {
	n, err := strconv.Atoi(pid)
	if err != nil {
		return shimProcess{}, false
	}
	dir := filepath.Join(procDir, pid)
	raw, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil || len(raw) == 0 {
		return shimProcess{}, false // gone, or a zombie
	}
	args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
	if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim-") {
		return shimProcess{}, false
	}
	flags := map[string]string{}
	for i := 1; i+1 < len(args); i++ {
		if name, ok := strings.CutPrefix(args[i], "-"); ok {
			flags[strings.TrimPrefix(name, "-")] = args[i+1]
		}
	}
	if flags["namespace"] != namespace || !sameSocket(flags["address"], address) || !sandboxID.MatchString(flags["id"]) {
		return shimProcess{}, false
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return shimProcess{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return shimProcess{}, false
	}
	return shimProcess{pid: n, id: flags["id"], uid: st.Uid}, true
}

// sameSocket says whether two paths name the same socket.
func sameSocket(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	a, b = strings.TrimPrefix(a, "unix://"), strings.TrimPrefix(b, "unix://")
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// stopOrphanShims stops (SIGTERM, which the shim answers by exiting) the
// shims of sandboxes containerd has no container for, and returns how
// many. Only is an id to limit it to, or "" for all. A shim is only ever
// started for an existing container, and a container is only deleted
// after its task, so a shim without one serves nobody, whichever
// runtimed instance made it. Only root's processes are considered (a
// user's process can look like a shim), and the signal goes through a
// pidfd opened before the process is checked again, so that a pid reused
// in between is never signalled.
func (r *Runner) stopOrphanShims(ctx context.Context, only string) (int, error) {
	if r.cfg.Containerd == "" {
		return 0, nil
	}
	var errs []error
	n := 0
	for _, s := range shims("/proc", r.cfg.Namespace, r.cfg.Containerd) {
		if (only != "" && s.id != only) || s.uid != 0 {
			continue
		}
		_, err := r.client.ContainerService().Get(ctx, s.id)
		if err == nil {
			continue
		}
		if !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("look up sandbox %s: %w", s.id, err))
			continue
		}
		stopped, err := r.terminate(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("stop the orphaned shim %d of %s: %w", s.pid, s.id, err))
			continue
		}
		if stopped {
			r.log.WithFields(logrus.Fields{"sandbox": s.id, "pid": s.pid}).Warn("stopped a shim its sandbox had outlived")
			n++
		}
	}
	return n, errors.Join(errs...)
}

// shimStopGrace is how long a shim gets to end after SIGTERM before it is
// killed: a shim whose start containerd cut off catches SIGTERM and stays.
const shimStopGrace = 2 * time.Second

// terminate stops shim s if its pid is still that shim's: SIGTERM, then
// SIGKILL if it has not ended within shimStopGrace.
func (r *Runner) terminate(s shimProcess) (bool, error) {
	fd, err := unix.PidfdOpen(s.pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	again, ok := readShim("/proc", strconv.Itoa(s.pid), r.cfg.Namespace, r.cfg.Containerd)
	if !ok || again.id != s.id || again.uid != s.uid {
		return false, nil
	}
	if err := unix.PidfdSendSignal(fd, unix.SIGTERM, nil, 0); err != nil {
		return false, ignoreESRCH(err)
	}
	// A pidfd becomes readable when its process ends.
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(shimStopGrace); ; {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == nil && n > 0 {
			return true, nil
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false, err
		}
	}
	r.log.WithFields(logrus.Fields{"sandbox": s.id, "pid": s.pid}).Warn("the orphaned shim did not end on SIGTERM; killing it")
	return true, ignoreESRCH(unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0))
}

func ignoreESRCH(err error) error {
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}
