package sandbox

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBoxFilesStayInTheBox: what a program left in a session's box
// (links out of it, absolute or relative, links to directories) never
// leads a read, a write or a delete to a host file.
func TestBoxFilesStayInTheBox(t *testing.T) {
	host := t.TempDir()
	secret := filepath.Join(host, "secret")
	if err := os.WriteFile(secret, []byte("HOST"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := BoxAt(dir, 1<<20, 0)
	for name, target := range map[string]string{
		"abs": secret, "rel": "../../../../../../../.." + secret, "hostdir": host, "root": "/",
		"inside": "data/f", "chain": "abs",
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Put("data/f", strings.NewReader("in the box"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Reads.
	for _, name := range []string{"abs", "rel", "hostdir", "root/etc/passwd", "chain", "hostdir/secret"} {
		if f, _, list, err := b.Open(name); !errors.Is(err, ErrNotInBox) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open(%s): %v %v, want ErrNotInBox", name, err, list)
		}
	}
	f, size, _, err := b.Open("inside")
	if err != nil {
		t.Fatalf("a link within the box: %v", err)
	}
	data, _ := io.ReadAll(f)
	f.Close()
	if string(data) != "in the box" || size != 10 {
		t.Fatalf("read %q (%d)", data, size)
	}
	_, _, list, err := b.Open("")
	if err != nil || len(list) != 7 {
		t.Fatalf("listing: %v %+v", err, list)
	}

	// Writes through a link to a directory out of the box fail; over a
	// link, they replace it.
	for _, name := range []string{"hostdir/planted", "root/tmp/planted", "rel/x"} {
		if _, err := b.Put(name, strings.NewReader("x"), 0o644); !errors.Is(err, ErrNotInBox) {
			t.Errorf("Put(%s): %v, want ErrNotInBox", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(host, "planted")); err == nil {
		t.Fatal("a write went through a link to the host")
	}
	if _, err := b.Put("abs", strings.NewReader("replaced"), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(filepath.Join(dir, "abs")); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("abs after the put: %v %v", st, err)
	}
	if got, _ := os.ReadFile(secret); string(got) != "HOST" {
		t.Fatalf("the host file changed: %q", got)
	}

	// Deletes remove the link, never what it points to.
	if err := b.Delete("hostdir"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("root/tmp"); !errors.Is(err, ErrNotInBox) {
		t.Fatalf("Delete through a link: %v", err)
	}
	if _, err := os.Stat(secret); err != nil {
		t.Fatalf("the host directory lost its file: %v", err)
	}
	if err := b.Delete("nothing"); !errors.Is(err, ErrNotInBox) {
		t.Fatalf("Delete of nothing: %v", err)
	}
}

// TestBoxPutReplacesADirectory: a file put where a directory is takes
// its place.
func TestBoxPutReplacesADirectory(t *testing.T) {
	dir := t.TempDir()
	b := BoxAt(dir, 1<<20, 0)
	if _, err := b.Put("d/x/y", strings.NewReader("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put("d", strings.NewReader("now a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "d"))
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Fatalf("d: %v %v", st, err)
	}
	if _, err := b.Put("d/z", strings.NewReader("z"), 0o644); err == nil {
		t.Fatal("a file inside a file")
	}
}
