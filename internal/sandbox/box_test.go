package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testBox is a box in a plain temporary directory, owned by the test's
// user, of size bytes and inodes files.
func testBox(t *testing.T, bytes, inodes int64) *Box {
	t.Helper()
	return BoxAt(t.TempDir(), bytes, inodes)
}

func mustWrite(t *testing.T, p string, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
}

func mustSparse(t *testing.T, p string, size int64) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

func statOf(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatalf("no stat of %s", fi.Name())
	}
	return st
}

func TestCopyToCopiesTheBuild(t *testing.T) {
	b, c := testBox(t, 16<<20, 16384), testBox(t, 16<<20, 16384)
	mustWrite(t, filepath.Join(b.dir, "main.c"), "int main(){}", 0o644)
	mustWrite(t, filepath.Join(b.dir, ".runtimed", "main"), "\x7fELF", 0o755)
	mustWrite(t, filepath.Join(b.dir, ".runtimed", "lib", "x.txt"), "x", 0o600)
	if err := os.Symlink("/etc/passwd", filepath.Join(b.dir, ".runtimed", "passwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(b.dir, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(b.dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.CopyTo(c); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"main.c": "int main(){}", ".runtimed/main": "\x7fELF", ".runtimed/lib/x.txt": "x"} {
		got, err := os.ReadFile(filepath.Join(c.dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(c.dir, ".runtimed", "main")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, %v", fi, err)
	}
	for name, want := range map[string]string{".runtimed/passwd": "/etc/passwd", "etc": "/etc"} {
		if got, err := os.Readlink(filepath.Join(c.dir, name)); err != nil || got != want {
			t.Errorf("%s: a link to %q, %v", name, got, err)
		}
	}
	// Nothing else: the links were not followed, the FIFO not copied.
	var names []string
	if err := filepath.WalkDir(c.dir, func(p string, _ fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(c.dir, p)
		names = append(names, rel)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, " "); got != ". .runtimed .runtimed/lib .runtimed/lib/x.txt .runtimed/main .runtimed/passwd etc main.c" {
		t.Fatalf("the copy holds %s", got)
	}
}

// A build of one large sparse file and thousands of hard links to it
// costs one copy of the file, and its names stay links to it.
func TestCopyToCopiesEachInodeOnce(t *testing.T) {
	b, c := testBox(t, 16<<20, 16384), testBox(t, 16<<20, 16384)
	dir := filepath.Join(b.dir, ".runtimed", "classes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(dir, "A.class")
	mustSparse(t, first, 8<<20)
	for i := 0; i < 2047; i++ {
		if err := os.Link(first, filepath.Join(dir, fmt.Sprintf("L%04d.class", i))); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := b.CopyTo(c); err != nil {
		t.Fatal(err)
	}
	t.Logf("copied in %v", time.Since(start))
	want := statOf(t, filepath.Join(c.dir, ".runtimed", "classes", "A.class"))
	if want.Nlink != 2048 || want.Size != 8<<20 {
		t.Fatalf("the copy has %d links and %d bytes", want.Nlink, want.Size)
	}
	if st := statOf(t, filepath.Join(c.dir, ".runtimed", "classes", "L2046.class")); st.Ino != want.Ino {
		t.Fatal("another name of the file is a file of its own")
	}
}

func TestCopyToRefusesWhatDoesNotFit(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		b, c := testBox(t, 16<<20, 16384), testBox(t, 16<<20, 16384)
		for _, n := range []string{"a", "b", "c"} {
			mustSparse(t, filepath.Join(b.dir, n), 8<<20)
		}
		start := time.Now()
		err := b.CopyTo(c)
		var tl *buildTooLargeError
		if !errors.Is(err, ErrBuildTooLarge) || !errors.As(err, &tl) {
			t.Fatalf("%v", err)
		}
		if msg := err.Error(); msg != "the build holds 25165824 bytes, more than the run box's 16777216" {
			t.Fatalf("message %q", msg)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("refused after %v", d)
		}
		if entries, _ := os.ReadDir(c.dir); len(entries) != 0 {
			t.Fatalf("copied %d files before refusing", len(entries))
		}
	})
	t.Run("files", func(t *testing.T) {
		b, c := testBox(t, 16<<20, 100), testBox(t, 16<<20, 100)
		for i := 0; i < 100; i++ {
			mustWrite(t, filepath.Join(b.dir, "d", fmt.Sprint(i)), "", 0o644)
		}
		err := b.CopyTo(c)
		if !errors.Is(err, ErrBuildTooLarge) || !strings.Contains(err.Error(), "the build holds 101 files, more than the run box's 99") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("no room", func(t *testing.T) {
		// The box's tmpfs is smaller than runtimed thinks.
		if os.Geteuid() != 0 {
			t.Skip("mounting a tmpfs needs root")
		}
		b, c := testBox(t, 16<<20, 16384), testBox(t, 16<<20, 16384)
		if err := unix.Mount("tmpfs", c.dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k"); err != nil {
			t.Fatalf("mount a tmpfs as root: %v", err)
		}
		defer func() {
			if err := unix.Unmount(c.dir, unix.MNT_DETACH); err != nil {
				t.Error(err)
			}
		}()
		mustWrite(t, filepath.Join(b.dir, "big"), strings.Repeat("x", 256<<10), 0o644)
		err := b.CopyTo(c)
		if !errors.Is(err, ErrBuildTooLarge) || strings.Contains(err.Error(), b.dir) || strings.Contains(err.Error(), c.dir) {
			t.Fatalf("%v", err)
		}
	})
}
