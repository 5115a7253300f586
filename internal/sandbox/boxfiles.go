package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"
)

// A session's box outlives its programs: what they leave in it, links
// included, is read and written again by the host. These methods work
// through an os.Root opened on the box, so no name, and no link a
// program made (absolute, or with enough ".."), reaches past the box:
// such a link is an error, never a host file.

// ErrNotInBox means a name is not a file or directory in the box.
var ErrNotInBox = errors.New("no such file in the box")

// ErrBoxFull means the box has no room for a file.
var ErrBoxFull = errors.New("the box is full")

// ErrNotAFile means a name is in the box but is neither a regular file
// nor a directory (a device, a FIFO, a socket).
var ErrNotAFile = errors.New("not a regular file or directory")

// Resize sets the most the box holds, in bytes. The box's tmpfs is
// remounted with the new size; one below what the box holds fails.
func (b *Box) Resize(bytes int64) error {
	if bytes <= 0 {
		return fmt.Errorf("resize box: size %d", bytes)
	}
	if bytes == b.bytes {
		return nil
	}
	if err := unix.Mount("tmpfs", b.dir, "tmpfs", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, "size="+strconv.FormatInt(bytes, 10)); err != nil {
		return fmt.Errorf("resize box: %w", err)
	}
	b.bytes = bytes
	return nil
}

// Entry is a file or directory in a box, as a listing shows it.
type Entry struct {
	Name string
	Size int64
	Mode fs.FileMode
}

func (b *Box) root() (*os.Root, error) {
	r, err := os.OpenRoot(b.dir)
	if err != nil {
		return nil, fmt.Errorf("open box: %w", err)
	}
	return r, nil
}

// inBox turns the errors of a look-up in the box's root into the box's:
// a name that is not there, or that only a link out of the box reaches.
func inBox(err error) error {
	var pe *os.PathError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
		return ErrNotInBox
	case errors.As(err, &pe) && pe.Err.Error() == "path escapes from parent":
		return ErrNotInBox
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return ErrBoxFull
	}
	return err
}

// Put writes r's content to name (slash-separated, relative to the box),
// replacing what is there and making its directories, all owned by the
// sandbox user. It returns the bytes written. A box too small for it is
// ErrBoxFull, and the file is removed.
func (b *Box) Put(name string, r io.Reader, mode fs.FileMode) (int64, error) {
	root, err := b.root()
	if err != nil {
		return 0, err
	}
	defer root.Close()
	if dir := path.Dir(name); dir != "." {
		if err := b.mkdirsIn(root, dir); err != nil {
			return 0, err
		}
	}
	// What is in the file's place goes first: a directory or a link is
	// replaced, not written through.
	if st, err := root.Lstat(name); err == nil && st.IsDir() {
		if err := root.RemoveAll(name); err != nil {
			return 0, inBox(err)
		}
	} else if err == nil {
		if err := root.Remove(name); err != nil {
			return 0, inBox(err)
		}
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode)
	if err != nil {
		return 0, inBox(err)
	}
	n, werr := io.Copy(f, r)
	merr := f.Chmod(mode)
	oerr := f.Chown(int(b.uid), int(b.gid))
	cerr := f.Close()
	if err := errors.Join(werr, merr, oerr, cerr); err != nil {
		_ = root.Remove(name)
		if e := inBox(werr); errors.Is(e, ErrBoxFull) {
			return n, ErrBoxFull
		}
		return n, inBox(err)
	}
	return n, nil
}

// mkdirsIn makes dir and its parents in root, owned by the sandbox user.
func (b *Box) mkdirsIn(root *os.Root, dir string) error {
	if dir == "." || dir == "/" {
		return nil
	}
	if st, err := root.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s: %w", dir, unix.ENOTDIR)
		}
		return nil
	}
	if err := b.mkdirsIn(root, path.Dir(dir)); err != nil {
		return err
	}
	if err := root.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return inBox(err)
	}
	return inBox(root.Lchown(dir, int(b.uid), int(b.gid)))
}

// Open opens name for reading: a regular file, with its size, or a
// directory (then the file is nil and the listing is returned, sorted by
// name). Links are followed within the box only.
func (b *Box) Open(name string) (f *os.File, size int64, list []Entry, err error) {
	root, err := b.root()
	if err != nil {
		return nil, 0, nil, err
	}
	defer root.Close()
	if name == "" {
		name = "."
	}
	st, err := root.Stat(name)
	if err != nil {
		return nil, 0, nil, inBox(err)
	}
	switch {
	case st.IsDir():
		// O_DIRECTORY|O_NONBLOCK: what a program put in its place since
		// (a FIFO) neither blocks nor is read.
		d, err := root.OpenFile(name, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, 0, nil, inBox(err)
		}
		defer d.Close()
		ents, err := d.ReadDir(-1)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("list %s: %w", name, err)
		}
		list = make([]Entry, 0, len(ents))
		for _, e := range ents {
			info, err := e.Info()
			if err != nil {
				continue // gone since
			}
			list = append(list, Entry{Name: e.Name(), Size: info.Size(), Mode: info.Mode()})
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
		return nil, 0, list, nil
	case st.Mode().IsRegular():
		// O_NONBLOCK: a FIFO put in the file's place since must not block.
		f, err := root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, 0, nil, inBox(err)
		}
		fst, err := f.Stat()
		if err != nil || !fst.Mode().IsRegular() {
			f.Close()
			return nil, 0, nil, ErrNotAFile
		}
		// The size of what was opened, at most the box's: a sparse file
		// claims more than the box holds.
		size := fst.Size()
		if b.bytes > 0 {
			size = min(size, b.bytes)
		}
		return f, size, nil, nil
	}
	return nil, 0, nil, ErrNotAFile
}

// Delete removes name, a file or a directory with what it holds; a link
// is removed, not what it points to.
func (b *Box) Delete(name string) error {
	root, err := b.root()
	if err != nil {
		return err
	}
	defer root.Close()
	if _, err := root.Lstat(name); err != nil {
		return inBox(err)
	}
	return inBox(root.RemoveAll(name))
}
