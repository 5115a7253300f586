package image

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/internal/config"
)

const recipesDir = "../../packaging/images"

// Every built-in language's image has a recipe, every recipe belongs to
// a language, and each proves its image works and says what it runs.
func TestRecipesMatchLanguages(t *testing.T) {
	recipes, err := LoadRecipes(recipesDir)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, l := range config.DefaultLanguages() {
		used[l.Image] = true
	}
	for _, r := range recipes {
		if !used[r.Reference] {
			t.Errorf("recipe %s builds %s, which no language runs in", r.Name, r.Reference)
		}
		delete(used, r.Reference)
		if len(r.Check) == 0 {
			t.Errorf("%s: recipe has no check", r.Name)
		}
		if len(r.Version) == 0 {
			t.Errorf("%s: recipe has no version command", r.Name)
		}
	}
	for ref := range used {
		t.Errorf("no recipe builds %s", ref)
	}
}

func TestRecipeDigestFollowsContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.toml")
	body := "name = \"x\"\nreference = \"r/x:1\"\nsuite = \"bookworm\"\npackages = [\"aa\"]\n"
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := LoadRecipe(p)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := LoadRecipe(p)
	if a.Digest != b.Digest || !strings.HasPrefix(a.Digest, "sha256:") {
		t.Fatalf("digest not stable: %s %s", a.Digest, b.Digest)
	}
	if err := os.WriteFile(p, []byte(body+"packages2 = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRecipe(p); err == nil || !strings.Contains(err.Error(), "packages2") {
		t.Fatalf("unknown key: %v", err)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(body, `"aa"`, `"aa", "bb"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadRecipe(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Digest == a.Digest {
		t.Fatal("a changed recipe kept its digest: its image would not be rebuilt")
	}
	if layoutDir("/cache", c) == layoutDir("/cache", a) {
		t.Fatal("a changed recipe shares the cached layout")
	}
}

func TestSlimRemovesDocsAndCaches(t *testing.T) {
	root := t.TempDir()
	keep := []string{"usr/bin/python3", "usr/share/zoneinfo/UTC"}
	gone := []string{"usr/share/doc/x/copyright", "usr/share/man/man1/a.1", "var/lib/apt/lists/x", "var/cache/apt/a.deb", "usr/lib/py/test/t.py"}
	for _, f := range append(append([]string{}, keep...), gone...) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := slim(root, append(slimPaths, "/usr/lib/py/test")); err != nil {
		t.Fatal(err)
	}
	for _, f := range keep {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("%s removed", f)
		}
	}
	for _, f := range gone {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			t.Errorf("%s kept", f)
		}
	}
}

func TestBuildUsesTheCache(t *testing.T) {
	r := Recipe{Name: "x", Reference: "r/x:1", Suite: "bookworm", Packages: []string{"a"}, Digest: "sha256:" + strings.Repeat("ab", 32)}
	cache := t.TempDir()
	// debootstrap that always fails: a cache hit must not run it.
	opts := BuildOpts{CacheDir: cache, Debootstrap: Debootstrap{Binary: "/bin/false"}}
	if _, err := build(context.Background(), r, opts); err == nil || !strings.Contains(err.Error(), "debootstrap") {
		t.Fatalf("a cache miss did not run debootstrap: %v", err)
	}
	dir := layoutDir(cache, r)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := build(context.Background(), r, opts)
	if err != nil || got != dir {
		t.Fatalf("cache hit: %q, %v", got, err)
	}
	// A failed build leaves no work directory behind.
	entries, _ := os.ReadDir(cache)
	if len(entries) != 1 {
		t.Fatalf("cache holds %d entries, want only the layout", len(entries))
	}
}

func TestNeutralHostFiles(t *testing.T) {
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	// What debootstrap copies from the build host; resolv.conf as a link
	// to a host path, which must be replaced, not written through.
	outside := filepath.Join(t.TempDir(), "resolv")
	if err := os.WriteFile(outside, []byte("nameserver 10.255.255.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(etc, "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "hostname"), []byte("vm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := neutralHostFiles(root); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"hostname": "sandbox\n", "resolv.conf": "# runtimed sandboxes have no network.\n"} {
		p := filepath.Join(etc, name)
		st, err := os.Lstat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o644 {
			t.Fatalf("%s: %v %v, want a regular file of mode 0644", name, st, err)
		}
		if got, _ := os.ReadFile(p); string(got) != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
	if got, _ := os.ReadFile(outside); string(got) != "nameserver 10.255.255.53\n" {
		t.Fatalf("the link's target was written: %q", got)
	}
	if _, err := os.Stat(filepath.Join(etc, "hosts")); err != nil {
		t.Fatal("no /etc/hosts")
	}
}

// A recipe built on a parent: its layers are the base's, the parent's,
// its own; its digest follows the parent's, so a changed parent rebuilds
// its children, and a changed child leaves the parent's as it was.
func TestRecipeParent(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) { writeRecipe(t, dir, name, body) }
	write("c", "name = \"c\"\nreference = \"r/c:1\"\nsuite = \"bookworm\"\npackages = [\"gcc\"]\n")
	write("cpp", "name = \"cpp\"\nreference = \"r/cpp:1\"\nsuite = \"bookworm\"\nparent = \"c\"\npackages = [\"g++\"]\n")
	load := func(name string) Recipe {
		t.Helper()
		r, err := LoadRecipe(filepath.Join(dir, name+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	c, cpp := load("c"), load("cpp")
	if got := strings.Join(cpp.Layers(), " "); got != "base-bookworm c cpp" {
		t.Fatalf("cpp's layers: %s", got)
	}
	if got := strings.Join(c.Layers(), " "); got != "base-bookworm c" {
		t.Fatalf("c's layers: %s", got)
	}
	if cpp.parent.Digest != c.Digest || c.parent.Digest != baseRecipe("bookworm").Digest {
		t.Fatal("a parent's digest is not the one its recipe has")
	}
	write("c", "name = \"c\"\nreference = \"r/c:1\"\nsuite = \"bookworm\"\npackages = [\"gcc\", \"make\"]\n")
	c2, cpp2 := load("c"), load("cpp")
	if c2.Digest == c.Digest || cpp2.Digest == cpp.Digest {
		t.Fatal("a changed parent left its child's digest: the child would not be rebuilt")
	}
	write("cpp", "name = \"cpp\"\nreference = \"r/cpp:1\"\nsuite = \"bookworm\"\nparent = \"c\"\npackages = [\"g++\", \"gdb\"]\n")
	if c3, cpp3 := load("c"), load("cpp"); c3.Digest != c2.Digest || cpp3.Digest == cpp2.Digest {
		t.Fatal("a changed child changed its parent's digest, or kept its own")
	}
	all, err := LoadRecipes(dir)
	if err != nil || len(all) != 2 {
		t.Fatalf("LoadRecipes: %v %v", all, err)
	}

	for _, tc := range []struct{ name, body, want string }{
		{"loop", "name = \"loop\"\nreference = \"r/l:1\"\nsuite = \"bookworm\"\nparent = \"loop\"\npackages = [\"xz-utils\"]\n", "built on loop itself"},
		{"missing", "name = \"missing\"\nreference = \"r/m:1\"\nsuite = \"bookworm\"\nparent = \"nothere\"\npackages = [\"xz-utils\"]\n", "nothere.toml"},
		{"other-suite", "name = \"other-suite\"\nreference = \"r/o:1\"\nsuite = \"trixie\"\nparent = \"c\"\npackages = [\"xz-utils\"]\n", "its own release only"},
		{"bad-name", "name = \"bad-name\"\nreference = \"r/b:1\"\nsuite = \"bookworm\"\nparent = \"../c\"\npackages = [\"xz-utils\"]\n", "not a recipe name"},
		{"renamed", "name = \"other\"\nreference = \"r/b:1\"\nsuite = \"bookworm\"\nparent = \"c\"\npackages = [\"xz-utils\"]\n", "must be the file's name"},
		{"base-x", "name = \"base-x\"\nreference = \"r/b:1\"\nsuite = \"bookworm\"\npackages = [\"xz-utils\"]\n", "not base-*"},
		{"odd-suite", "name = \"odd-suite\"\nreference = \"r/b:1\"\nsuite = \"../x\"\npackages = [\"xz-utils\"]\n", "not a Debian release"},
	} {
		write(tc.name, tc.body)
		if _, err := LoadRecipe(filepath.Join(dir, tc.name+".toml")); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
		os.Remove(filepath.Join(dir, tc.name+".toml"))
	}
	// Two recipes that are each other's parent.
	write("a", "name = \"a\"\nreference = \"r/a:1\"\nsuite = \"bookworm\"\nparent = \"b\"\npackages = [\"xz-utils\"]\n")
	write("b", "name = \"b\"\nreference = \"r/b:1\"\nsuite = \"bookworm\"\nparent = \"a\"\npackages = [\"xz-utils\"]\n")
	if _, err := LoadRecipe(filepath.Join(dir, "a.toml")); err == nil || !strings.Contains(err.Error(), "itself") {
		t.Errorf("a cycle: %v", err)
	}
}

// A layout built on a parent's links the parent's layers (stored once)
// and lists them first; the environment is the parent's with its own.
func TestLayoutOnAParent(t *testing.T) {
	cache := t.TempDir()
	base := baseRecipe("bookworm")
	child := Recipe{Name: "child", Reference: "r/child:1", Suite: "bookworm", Env: []string{"A=2", "B=1"}, Digest: "sha256:" + strings.Repeat("cd", 32), parent: &base}
	parentDir := filepath.Join(cache, "parent")
	if err := writeLayout(context.Background(), parentDir, Recipe{Name: "p", Env: []string{"A=1"}, Digest: "sha256:" + strings.Repeat("ef", 32)}, "", "", func(w io.Writer) error {
		_, err := w.Write(make([]byte, 1024))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	childDir := filepath.Join(cache, "child")
	if err := writeLayout(context.Background(), childDir, child, "2.1.3", parentDir, func(w io.Writer) error {
		_, err := w.Write(make([]byte, 2048))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	pm, _, err := readManifest(parentDir)
	if err != nil {
		t.Fatal(err)
	}
	cm, cc, err := readManifest(childDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Layers) != 2 || cm.Layers[0].Digest != pm.Layers[0].Digest || len(cc.RootFS.DiffIDs) != 2 || cc.RootFS.DiffIDs[1] != cm.Layers[1].Digest {
		t.Fatalf("child's layers %+v, diff IDs %v; parent's %+v", cm.Layers, cc.RootFS.DiffIDs, pm.Layers)
	}
	a, err := os.Stat(blobPath(parentDir, pm.Layers[0].Digest))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.Stat(blobPath(childDir, pm.Layers[0].Digest))
	if err != nil || !os.SameFile(a, b) {
		t.Fatalf("the parent's layer is not linked into the child's layout: %v", err)
	}
	if got := strings.Join(cc.Config.Env, " "); got != "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin A=2 B=1" {
		t.Fatalf("env %s", got)
	}
	if cc.Config.Labels[labelRecipe] != child.Digest || cc.Config.Labels[LabelVersion] != "2.1.3" {
		t.Fatalf("labels %v", cc.Config.Labels)
	}
	if _, pc, _ := readManifest(parentDir); pc.Config.Labels[LabelVersion] != "" {
		t.Fatalf("a layout without a version has the label: %v", pc.Config.Labels)
	}
}

func TestVersionPattern(t *testing.T) {
	for out, want := range map[string]string{
		"Python 3.13.5\n":                               "3.13.5",
		"v20.19.2\n":                                    "20.19.2",
		"go version go1.24.4 linux/amd64\n":             "1.24.4",
		"rustc 1.85.1 (4eb161250 2025-03-15) (built)\n": "1.85.1",
		"openjdk version \"25.0.5\" 2025-10-21\nOpenJDK Runtime Environment (build 25.0.5+8-Debian-1)": "25.0.5",
		"Lua 5.4.7  Copyright (C) 1994-2024 Lua.org, PUC-Rio\n":                                        "5.4.7",
		"Version 5.9.3\n": "5.9.3",
		"8.4\n":           "8.4",
		"no version here": "",
	} {
		if got := findVersion(out); got != want {
			t.Errorf("%q: %q, want %q", out, got, want)
		}
	}
}

// A build's work directory is removed without going into what is still
// mounted in it: a host directory bind-mounted there keeps its files.
func TestRemoveWorkUnmountsFirst(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	host := t.TempDir()
	keep := filepath.Join(host, "null")
	if err := os.WriteFile(keep, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	dev := filepath.Join(work, "merged", "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(host, dev, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	if got := mountsUnder(work); len(got) != 1 || got[0] != dev {
		_ = unix.Unmount(dev, unix.MNT_DETACH)
		t.Fatalf("mounts under the work directory: %v", got)
	}
	removeWork(work)
	if data, err := os.ReadFile(keep); err != nil || string(data) != "host" {
		t.Fatalf("the bind-mounted host directory lost its file: %v", err)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Fatalf("the work directory is still there: %v", err)
	}
}

// A language's packages go into its image's recipe: the build installs
// them, the digest (and its children's) changes with them, and a name
// that could read as an option to apt is refused.
func TestExtraPackages(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) { writeRecipe(t, dir, name, body) }
	write("c", "name = \"c\"\nreference = \"r/c:1\"\nsuite = \"bookworm\"\npackages = [\"gcc\"]\n")
	write("cpp", "name = \"cpp\"\nreference = \"r/cpp:1\"\nsuite = \"bookworm\"\nparent = \"c\"\npackages = [\"g++\"]\n")
	plain, err := LoadRecipesWith(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	with, err := LoadRecipesWith(dir, map[string][]string{"r/c:1": {"libgmp-dev", "gcc"}, "r/other:1": {"zz"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(with[0].Packages, " ") != "gcc libgmp-dev" || strings.Join(with[1].Packages, " ") != "g++" {
		t.Fatalf("packages: c %v, cpp %v", with[0].Packages, with[1].Packages)
	}
	if with[0].Digest == plain[0].Digest || with[1].Digest == plain[1].Digest {
		t.Fatal("extra packages left a digest as it was: the image would not be rebuilt")
	}
	if with[1].parent.Digest != with[0].Digest {
		t.Fatal("cpp is not built on the c with the extra packages")
	}
	if _, err := LoadRecipesWith(dir, map[string][]string{"r/c:1": {"--allow-unauthenticated"}}); err == nil || !strings.Contains(err.Error(), "not a Debian package name") {
		t.Fatalf("an option as a package: %v", err)
	}
	write("c", "name = \"c\"\nreference = \"r/c:1\"\nsuite = \"bookworm\"\npackages = [\"-o=APT::x\"]\n")
	if _, err := LoadRecipe(filepath.Join(dir, "c.toml")); err == nil || !strings.Contains(err.Error(), "not a Debian package name") {
		t.Fatalf("an option in a recipe: %v", err)
	}
}

// writeRecipe writes dir/name.toml.
func writeRecipe(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name+".toml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A build names recipes, or languages: NAME is its newest version's
// image's recipe, NAME@VERSION the one VERSION selects.
func TestRecipeNames(t *testing.T) {
	cfg := config.Images{Recipes: recipesDir}
	imageOf := func(name string) (string, error) {
		switch name {
		case "python", "py":
			return "runtimed.local/python:3.13", nil
		case "python@3.11":
			return "runtimed.local/python:3.11", nil
		case "orphan":
			return "example.org/orphan:1", nil
		}
		return "", errors.New("unknown language")
	}
	got, err := RecipeNames(cfg, []string{"python", "py", "python@3.11", "c-gcc14"}, imageOf)
	if err != nil || strings.Join(got, " ") != "python-3.13 python c-gcc14" {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, n := range []string{"nosuch", "orphan"} {
		if _, err := RecipeNames(cfg, []string{n}, imageOf); !errdefs.IsNotFound(err) {
			t.Errorf("%s: %v, want not found", n, err)
		}
	}
	if _, err := RecipeNames(cfg, []string{"../python"}, imageOf); !errdefs.IsInvalidArgument(err) {
		t.Errorf("../python: %v, want invalid", err)
	}
}
