package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// An image's file system as a test builds it: files, modes and links.
func imageTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mk := func(name string, mode os.FileMode) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	link := func(name, target string) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	mk("usr/bin/python3.13", 0o755)
	mk("usr/bin/notes.txt", 0o644)
	mk("usr/local/bin/tool", 0o700)
	link("bin", "usr/bin")                                     // merged /usr
	link("etc/alternatives/python3", "/usr/bin/python3.13")    // absolute, read from the image's root
	link("usr/bin/python3", "/etc/alternatives/python3")       // a chain of them
	link("usr/bin/up", "../../../../../../usr/bin/python3.13") // climbs no higher than the root
	link("usr/bin/host-sh", "/bin/sh-on-the-host-only")        // absolute: the image's /bin, not the host's
	link("usr/bin/loop", "loop2")
	link("usr/bin/loop2", "loop")
	link("usr/bin/dangling", "nowhere")
	return root
}

func TestHasCommand(t *testing.T) {
	root := imageTree(t)
	search := []string{"/usr/local/bin", "/usr/bin", "relative/ignored"}
	for _, c := range []struct {
		command string
		want    bool
	}{
		{"/usr/bin/python3.13", true},
		{"/usr/bin/python3", true},
		{"/bin/python3", true},
		{"/usr/bin/up", true},
		{"/usr/bin/../bin/python3.13", true},
		{"python3", true},
		{"tool", true},
		{"/usr/local/bin/tool", true},
		{"/usr/bin/notes.txt", false}, // not executable
		{"/usr/bin", false},           // a directory
		{"/usr/bin/python3.13/x", false},
		{"/usr/bin/host-sh", false},
		{"/usr/bin/loop", false},
		{"/usr/bin/dangling", false},
		{"/nonexistent/interpreter", false},
		{"nosuch", false},
		{"notes.txt", false},
	} {
		if got, err := hasCommand(root, c.command, search); got != c.want || err != nil {
			t.Errorf("hasCommand(%q) = %v, %v; want %v", c.command, got, err, c.want)
		}
	}
}

// Only a path that names nothing is a missing command; another failure
// (a directory that cannot be read, an I/O error) is not known.
func TestNotThere(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&os.PathError{Op: "lstat", Path: "/x", Err: unix.ENOENT}, true},
		{&os.PathError{Op: "lstat", Path: "/x", Err: unix.ENOTDIR}, true},
		{fmt.Errorf("x: %w", unix.ELOOP), true},
		{&os.PathError{Op: "lstat", Path: "/x", Err: unix.EACCES}, false},
		{&os.PathError{Op: "lstat", Path: "/x", Err: unix.EIO}, false},
	} {
		if got := notThere(c.err); got != c.want {
			t.Errorf("notThere(%v) = %v", c.err, got)
		}
	}
}

// A link never leads out of the image's root: "/" and ".." in it are the
// image's.
func TestResolveInStaysInTheRoot(t *testing.T) {
	root := imageTree(t)
	p, err := resolveIn(root, "/usr/bin/up")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "usr/bin/python3.13"); p != want {
		t.Fatalf("resolved to %s, want %s", p, want)
	}
	if p, err := resolveIn(root, "/../../.."); err != nil || p != root {
		t.Fatalf("/../../.. resolved to %q (%v), want the root", p, err)
	}
	if _, err := resolveIn(root, "/usr/bin/loop"); err == nil {
		t.Fatal("a loop of links resolved")
	}
}
