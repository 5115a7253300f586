package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/pkg/api"
)

// Box is the host side of a sandbox's /box: a directory with a tmpfs of
// its own, so its size is capped and a program filling it fills neither
// the host disk nor another run's box. Each sandbox has its own box; a
// compile stage's box is kept after its sandbox is gone (Sandbox.KeepBox),
// and each run gets a copy of it.
type Box struct {
	dir      string
	uid, gid uint32
}

// newBox makes an empty box for the sandbox id.
func (r *Runner) newBox(id string) (*Box, error) {
	dir := filepath.Join(r.cfg.RunDir, id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create box: %w", err)
	}
	uid, gid := r.cfg.Hardening.UID, r.cfg.Hardening.GID
	data := "size=" + strconv.FormatInt(r.cfg.BoxBytes, 10) +
		",nr_inodes=" + strconv.FormatInt(r.cfg.BoxInodes, 10) +
		",mode=0755,uid=" + strconv.FormatUint(uint64(uid), 10) +
		",gid=" + strconv.FormatUint(uint64(gid), 10)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		_ = os.Remove(dir)
		return nil, fmt.Errorf("mount box: %w", err)
	}
	return &Box{dir: dir, uid: uid, gid: gid}, nil
}

// Dir is the box's directory on the host.
func (b *Box) Dir() string { return b.dir }

// Write puts files in the box, owned by the sandbox user. Names were
// validated by the caller; O_NOFOLLOW and O_EXCL guard anyway.
func (b *Box) Write(files []api.File) error {
	for _, f := range files {
		p := filepath.Join(b.dir, filepath.FromSlash(f.Name))
		if err := b.mkdirs(filepath.Dir(p)); err != nil {
			return err
		}
		if err := b.writeFile(p, 0o644, func(w io.Writer) error {
			_, err := io.WriteString(w, f.Content)
			return err
		}); err != nil {
			return fmt.Errorf("write %s: %w", f.Name, err)
		}
	}
	return nil
}

// Mkdir makes a directory in the box, owned by the sandbox user.
func (b *Box) Mkdir(name string) error {
	return b.mkdirs(filepath.Join(b.dir, filepath.FromSlash(name)))
}

func (b *Box) writeFile(p string, mode os.FileMode, fill func(io.Writer) error) error {
	fd, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	werr := fill(fd)
	merr := fd.Chmod(mode) // past the umask
	oerr := fd.Chown(int(b.uid), int(b.gid))
	cerr := fd.Close()
	return errors.Join(werr, merr, oerr, cerr)
}

func (b *Box) mkdirs(dir string) error {
	if dir == b.dir {
		return nil
	}
	if _, err := os.Lstat(dir); err == nil {
		return nil
	}
	if err := b.mkdirs(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	return os.Lchown(dir, int(b.uid), int(b.gid))
}

// CopyTo copies b's files into c, a box with nothing of the same names.
// The copy never follows a link: what a sandbox left in b may be hostile.
// Only regular files, directories and symbolic links (as links) are
// copied.
func (b *Box) CopyTo(c *Box) error {
	err := filepath.WalkDir(b.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(b.dir, p)
		if err != nil || rel == "." {
			return err
		}
		dst := filepath.Join(c.dir, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(dst, info.Mode().Perm()); err != nil {
				return err
			}
			return os.Lchown(dst, int(c.uid), int(c.gid))
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
			return os.Lchown(dst, int(c.uid), int(c.gid))
		case d.Type().IsRegular():
			src, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			defer src.Close()
			return c.writeFile(dst, info.Mode().Perm(), func(w io.Writer) error {
				_, err := io.Copy(w, src)
				return err
			})
		default:
			return nil
		}
	})
	if err != nil {
		return fmt.Errorf("copy box: %w", err)
	}
	return nil
}

// Remove unmounts the box's tmpfs, which frees its content, and removes
// the mount point.
func (b *Box) Remove() error {
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
