package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/image-spec/identity"
	"golang.org/x/sys/unix"
)

// commandChecks remembers what MissingCommands found, by image digest
// and command: an image of a digest never changes.
type commandChecks struct {
	mu    sync.Mutex
	found map[string]bool
}

func (c *commandChecks) get(key string) (found, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	found, known = c.found[key]
	return found, known
}

func (c *commandChecks) put(key string, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.found == nil {
		c.found = map[string]bool{}
	}
	c.found[key] = found
}

// MissingCommands reports which of commands the image ref does not hold
// as an executable file. A command is an absolute path, or a name looked
// up in the directories of searchPath as a program's PATH is; links are
// followed inside the image's root filesystem, never out of it. The image
// is looked at through a read-only view of its snapshot, mounted under the
// run directory and removed before the call returns (Reap removes one a
// crash left). An image containerd does not hold, or has not unpacked,
// lacks nothing: running it fails on its own terms.
func (r *Runner) MissingCommands(ctx context.Context, ref string, commands, searchPath []string) ([]string, error) {
	ctx = r.namespaced(ctx)
	img, err := r.client.GetImage(ctx, ref)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get image %s: %w", ref, err)
	}
	digest := img.Target().Digest.String()
	var todo []string
	var missing []string
	for _, c := range commands {
		found, known := r.commands.get(digest + "\x00" + strings.Join(searchPath, ":") + "\x00" + c)
		switch {
		case !known:
			todo = append(todo, c)
		case !found:
			missing = append(missing, c)
		}
	}
	if len(todo) == 0 {
		return missing, nil
	}
	if ok, err := img.IsUnpacked(ctx, r.cfg.Snapshotter); err != nil || !ok {
		return missing, err
	}
	diffIDs, err := img.RootFS(ctx)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", ref, err)
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	sn := r.client.SnapshotService(r.cfg.Snapshotter)
	mounts, err := sn.View(ctx, id, identity.ChainID(diffIDs).String(),
		snapshots.WithLabels(map[string]string{labelInstance: r.cfg.Instance}))
	if err != nil {
		return nil, fmt.Errorf("view image %s: %w", ref, err)
	}
	defer func() {
		if err := sn.Remove(context.WithoutCancel(ctx), id); err != nil && !errdefs.IsNotFound(err) {
			r.log.WithError(err).WithField("snapshot", id).Warn("remove an image view")
		}
	}()
	dir := filepath.Join(r.cfg.RunDir, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("view image %s: %w", ref, err)
	}
	defer func() {
		if err := removeViewDir(dir); err != nil {
			r.log.WithError(err).Warn("remove an image view")
		}
	}()
	for i := range mounts {
		if !slices.Contains(mounts[i].Options, "ro") {
			mounts[i].Options = append(slices.Clip(mounts[i].Options), "ro")
		}
	}
	if err := mount.All(mounts, dir); err != nil {
		return nil, fmt.Errorf("mount a view of image %s: %w", ref, err)
	}
	for _, c := range todo {
		found, err := hasCommand(dir, c, searchPath)
		if err != nil {
			// Not known: neither kept nor said missing.
			return nil, fmt.Errorf("look for %s in image %s: %w", c, ref, err)
		}
		r.commands.put(digest+"\x00"+strings.Join(searchPath, ":")+"\x00"+c, found)
		if !found {
			missing = append(missing, c)
		}
	}
	return missing, nil
}

// removeViewDir unmounts an image view and removes its directory; it
// removes only an empty directory, so that nothing of an image is lost
// if the view is still mounted.
func removeViewDir(dir string) error {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// hasCommand reports whether the file system at root holds command as an
// executable regular file: an absolute path, or a name found in one of
// the absolute directories of searchPath. An error is a look that failed
// for another reason than the file not being there.
func hasCommand(root, command string, searchPath []string) (bool, error) {
	if strings.Contains(command, "/") {
		return executableIn(root, command)
	}
	for _, d := range searchPath {
		if !path.IsAbs(d) {
			continue
		}
		if ok, err := executableIn(root, path.Join(d, command)); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// executableIn reports whether name, resolved in root, is a regular file
// that someone may execute.
func executableIn(root, name string) (bool, error) {
	p, err := resolveIn(root, name)
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Lstat(p); err == nil {
			return fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0, nil
		}
	}
	if notThere(err) {
		return false, nil
	}
	return false, err
}

// notThere reports whether err says that a path names nothing: no such
// file, a file where a directory should be, a loop of links, too long.
func notThere(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) ||
		errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENAMETOOLONG)
}

// maxLinks bounds the links followed in one resolveIn, as the kernel's
// ELOOP does.
const maxLinks = 40

// resolveIn returns the host path of what name names in the file system
// at root, read as if root were "/": every link is followed, an absolute
// one from root, and ".." never climbs above root.
func resolveIn(root, name string) (string, error) {
	cur := "/"
	todo := strings.Split(name, "/")
	for links := 0; len(todo) > 0; {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, part)
		host := filepath.Join(root, next)
		fi, err := os.Lstat(host)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: %w", name, unix.ELOOP)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return filepath.Join(root, cur), nil
}
