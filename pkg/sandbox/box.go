package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/pkg/api"
)

// box is the host side of a sandbox's /box: a directory with a tmpfs of
// its own, so its size is capped and a program filling it fills neither
// the host disk nor another run's box.
type box struct {
	dir string
}

func newBox(dir string, sizeBytes int64, uid, gid uint32) (*box, error) {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create box: %w", err)
	}
	data := "size=" + strconv.FormatInt(sizeBytes, 10) +
		",mode=0755,uid=" + strconv.FormatUint(uint64(uid), 10) +
		",gid=" + strconv.FormatUint(uint64(gid), 10)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("mount box: %w", err)
	}
	return &box{dir: dir}, nil
}

// write puts the request's files in the box, owned by the sandbox user.
// Names were validated by the caller; O_NOFOLLOW and O_EXCL guard anyway.
func (b *box) write(files []api.File, uid, gid uint32) error {
	for _, f := range files {
		p := filepath.Join(b.dir, filepath.FromSlash(f.Name))
		if err := b.mkdirs(filepath.Dir(p), uid, gid); err != nil {
			return err
		}
		fd, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
		if err != nil {
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
		_, werr := fd.WriteString(f.Content)
		cerr := fd.Close()
		if err := errors.Join(werr, cerr); err != nil {
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
		if err := os.Lchown(p, int(uid), int(gid)); err != nil {
			return fmt.Errorf("chown %s: %w", f.Name, err)
		}
	}
	return nil
}

func (b *box) mkdirs(dir string, uid, gid uint32) error {
	if dir == b.dir {
		return nil
	}
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	if err := b.mkdirs(filepath.Dir(dir), uid, gid); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	return os.Lchown(dir, int(uid), int(gid))
}

// remove unmounts the box's tmpfs, which frees its content, and removes
// the mount point.
func (b *box) remove() error {
	return removeBoxDir(b.dir)
}

func removeBoxDir(dir string) error {
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount box %s: %w", dir, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove box %s: %w", dir, err)
	}
	return nil
}
