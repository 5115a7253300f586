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
	// bytes and inodes are the box's size and its number of files (its
	// tmpfs's size and nr_inodes); 0 for no bound of runtimed's own.
	bytes, inodes int64
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
	return &Box{dir: dir, uid: uid, gid: gid, bytes: r.cfg.BoxBytes, inodes: r.cfg.BoxInodes}, nil
}

// BoxAt is a box in dir, a directory the caller made, of size bytes and
// inodes files (0: no bound), whose files the current user owns. It has
// no tmpfs of its own, so nothing but its copies holds it to its size:
// it is for the tests of what uses boxes, with no sandbox around them.
func BoxAt(dir string, bytes, inodes int64) *Box {
	return &Box{dir: dir, uid: uint32(os.Getuid()), gid: uint32(os.Getgid()), bytes: bytes, inodes: inodes}
}

// Dir is the box's directory on the host.
func (b *Box) Dir() string { return b.dir }

// Size is the most the box holds, in bytes: what runtimed may read of it
// in all, whatever its files claim.
func (b *Box) Size() int64 { return b.bytes }

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

// ErrBuildTooLarge means a build does not fit in the box it is copied to.
// It is the build's fault (a compile stage can make a box whose copy
// is larger than the box: sparse files), not the platform's.
var ErrBuildTooLarge = errors.New("the build does not fit in the run box")

// buildTooLargeError says how a build misses a box. It matches
// ErrBuildTooLarge, and its message names no host path.
type buildTooLargeError struct {
	Bytes, Files       int64 // what the build holds: file sizes, inodes
	MaxBytes, MaxFiles int64 // what the box holds
}

func (e *buildTooLargeError) Error() string {
	switch {
	case e.MaxBytes > 0 && e.Bytes > e.MaxBytes:
		return fmt.Sprintf("the build holds %d bytes, more than the run box's %d", e.Bytes, e.MaxBytes)
	case e.MaxFiles > 0 && e.Files > e.MaxFiles:
		return fmt.Sprintf("the build holds %d files, more than the run box's %d", e.Files, e.MaxFiles)
	}
	return fmt.Sprintf("the build (%d bytes, %d files) does not fit in the run box (%d bytes, %d files)", e.Bytes, e.Files, e.MaxBytes, e.MaxFiles)
}

func (e *buildTooLargeError) Is(target error) bool { return target == ErrBuildTooLarge }

type inode struct{ dev, ino uint64 }

// CopyTo copies b's files into c, an empty box. What a sandbox left in b
// may be hostile, so the copy costs what c holds, not what b's files
// claim: it never follows a link; it copies each inode once (a file's
// other names become hard links to its copy); it copies only regular
// files, directories and symbolic links (as links); and it refuses a
// build larger than c's size or number of files, counted before
// anything is copied and again while copying (an error that matches
// ErrBuildTooLarge, as is running out of room in c).
func (b *Box) CopyTo(c *Box) error {
	var root unix.Stat_t
	if err := unix.Lstat(b.dir, &root); err != nil {
		return fmt.Errorf("copy box: %w", err)
	}
	// Files are counted in c's inodes, which include its root.
	tooLarge := &buildTooLargeError{MaxBytes: c.bytes, MaxFiles: max(c.inodes-1, 0)}
	over := func(bytes, files int64) bool {
		return c.bytes > 0 && bytes > c.bytes || c.inodes > 0 && files > tooLarge.MaxFiles
	}
	// walk calls fn for each entry of b below its root that is copied,
	// with its lstat and whether it is another name of an inode seen
	// before. Files on another file system are not b's.
	walk := func(fn func(p, rel string, st *unix.Stat_t, again bool) error) error {
		seen := map[inode]bool{}
		return filepath.WalkDir(b.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == b.dir {
				return err
			}
			t := d.Type()
			if !t.IsDir() && !t.IsRegular() && t&fs.ModeSymlink == 0 {
				return nil
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return err
			}
			if st.Dev != root.Dev {
				return nil
			}
			id := inode{st.Dev, st.Ino}
			again := st.Mode&unix.S_IFMT == unix.S_IFREG && seen[id]
			seen[id] = true
			rel, err := filepath.Rel(b.dir, p)
			if err != nil {
				return err
			}
			return fn(p, rel, &st, again)
		})
	}

	// What the copy will hold, from the files' metadata alone.
	var bytes, files int64
	err := walk(func(_, _ string, st *unix.Stat_t, again bool) error {
		if again {
			return nil
		}
		files++
		if st.Mode&unix.S_IFMT != unix.S_IFDIR { // a file's content, a link's target
			bytes += st.Size
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("copy box: %w", err)
	}
	tooLarge.Bytes, tooLarge.Files = bytes, files
	if over(bytes, files) {
		return tooLarge
	}

	// The copy, counted again: a file may have grown since.
	copied := map[inode]string{}
	bytes, files = 0, 0
	err = walk(func(p, rel string, st *unix.Stat_t, again bool) error {
		dst := filepath.Join(c.dir, rel)
		id := inode{st.Dev, st.Ino}
		if again {
			return os.Link(copied[id], dst)
		}
		if files++; over(bytes, files) {
			tooLarge.Bytes, tooLarge.Files = bytes, files
			return tooLarge
		}
		perm := os.FileMode(st.Mode & 0o777)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := os.Mkdir(dst, perm); err != nil {
				return err
			}
			return os.Lchown(dst, int(c.uid), int(c.gid))
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if bytes += int64(len(target)); over(bytes, files) {
				tooLarge.Bytes, tooLarge.Files = bytes, files
				return tooLarge
			}
			if err := os.Symlink(target, dst); err != nil {
				return err
			}
			return os.Lchown(dst, int(c.uid), int(c.gid))
		case unix.S_IFREG:
			n, err := c.copyFile(p, rel, dst, perm, id, c.bytes-bytes)
			if bytes += n; err == nil && over(bytes, files) {
				tooLarge.Bytes, tooLarge.Files = bytes, files
				return tooLarge
			}
			if err != nil {
				return err
			}
			copied[id] = dst
		}
		return nil
	})
	switch {
	case err == nil || errors.Is(err, ErrBuildTooLarge):
		return err
	case errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT):
		return tooLarge
	}
	return fmt.Errorf("copy box: %w", err)
}

// copyFile copies the regular file src (rel in its box), which must
// still be the inode id, to dst in c, and says how many bytes it copied:
// at most limit+1 when c has a size, which is more than c has room for.
func (c *Box) copyFile(src, rel, dst string, perm os.FileMode, id inode, limit int64) (int64, error) {
	// O_NONBLOCK: a FIFO put in the file's place must not block.
	f, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Dev != id.dev || st.Ino != id.ino {
		return 0, fmt.Errorf("%s changed while it was copied", rel)
	}
	var r io.Reader = f
	if c.bytes > 0 {
		r = io.LimitReader(f, limit+1)
	}
	var n int64
	err = c.writeFile(dst, perm, func(w io.Writer) error {
		var err error
		n, err = io.Copy(w, r)
		return err
	})
	return n, err
}

// Empty removes everything in the box, as a sandbox's previous program
// left it, before the next program's files go in. It follows no link and
// minds no permission: what a program made of its box is no obstacle.
// It must run while nothing runs in the sandbox.
func (b *Box) Empty() error {
	f, err := os.Open(b.dir)
	if err != nil {
		return fmt.Errorf("empty box: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("empty box: %w", err)
	}
	for _, name := range names {
		if err := os.RemoveAll(filepath.Join(b.dir, name)); err != nil {
			return fmt.Errorf("empty box: %w", err)
		}
	}
	// The program may have changed the box's own mode.
	if err := os.Chmod(b.dir, 0o755); err != nil {
		return fmt.Errorf("empty box: %w", err)
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
