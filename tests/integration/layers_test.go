//go:build integration

package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/platforms"
	"github.com/opencontainers/go-digest"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/tests/harness"
)

// The suite's images share their layers: one base layer for every image
// of a Debian release, C's layers under C++'s, JavaScript's under
// TypeScript's; containerd's content store holds each once.
func TestImagesShareLayers(t *testing.T) {
	ctx := namespaces.WithNamespace(context.Background(), harness.Namespace)
	layers := map[string][]digest.Digest{}
	// The built-in tables of Debian 12's and Debian 13's images.
	bookworm := []string{"python", "javascript", "typescript", "c", "cpp", "bash"}
	trixie := []string{"python-3.13", "javascript-20", "typescript-5", "c-gcc14", "cpp-gcc14", "lua-5.4.7"}
	for _, key := range append(slices.Clone(bookworm), trixie...) {
		l, ok := config.DefaultLanguages()[key]
		if !ok {
			t.Fatalf("no language table %s", key)
		}
		img, err := env.Ctr.ImageService().Get(ctx, l.Image)
		if err != nil {
			t.Fatal(err)
		}
		m, err := images.Manifest(ctx, env.Ctr.ContentStore(), img.Target, platforms.Default())
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range m.Layers {
			layers[key] = append(layers[key], d.Digest)
		}
	}
	for _, suite := range [][]string{bookworm, trixie} {
		first := suite[0]
		for _, key := range suite[1:] {
			if len(layers[key]) < 2 || layers[key][0] != layers[first][0] {
				t.Errorf("%s's layers %v do not start with %s's base layer %v", key, layers[key], first, layers[first][0])
			}
		}
		if layers[suite[3]][1] == layers[first][1] {
			t.Errorf("%s and %s have the same language layer", first, suite[3])
		}
	}
	if layers["python"][0] == layers["python-3.13"][0] {
		t.Error("Debian 12's and 13's images have the same base layer")
	}
	for child, parent := range map[string]string{"cpp": "c", "typescript": "javascript", "cpp-gcc14": "c-gcc14", "typescript-5": "javascript-20"} {
		if len(layers[child]) != len(layers[parent])+1 || !slices.Equal(layers[child][:len(layers[parent])], layers[parent]) {
			t.Errorf("%s's layers %v are not %s's %v and one more", child, layers[child], parent, layers[parent])
		}
	}
}

// A recipe that changed is rebuilt alone: the layers below it (the base,
// its parent's) come from the cache, and the cache holds one base.
func TestRecipeChangeRebuildsItsOwnLayer(t *testing.T) {
	recipes := t.TempDir()
	data, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "packaging", "images", "bash.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(recipes, "bash.toml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	child := filepath.Join(recipes, "bashx.toml")
	body := "name = \"bashx\"\nreference = \"runtimed.local/bashx:1\"\nsuite = \"bookworm\"\nparent = \"bash\"\npackages = [\"tree\"]\ncheck = [\"/usr/bin/tree\", \"--version\"]\n"
	if err := os.WriteFile(child, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Join(env.ImageCache, "bashx")) })
	bashLayout, _ := filepath.Glob(filepath.Join(env.ImageCache, "bash", "*", "index.json"))
	if len(bashLayout) != 1 {
		t.Fatalf("bash's layout in the cache: %v", bashLayout)
	}
	before, err := os.Stat(bashLayout[0])
	if err != nil {
		t.Fatal(err)
	}
	build := func() string {
		t.Helper()
		cmd := exec.Command(filepath.Join(env.Bin, "runtimed"), "--config", env.Config, "image", "build", "--no-import",
			"--recipes", recipes, "--cache", env.ImageCache, "bashx")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("build bashx: %v\n%s", err, out)
		}
		return string(out)
	}
	for i, edit := range []string{"", "# changed\n"} {
		if err := os.WriteFile(child, []byte(body+edit), 0o644); err != nil {
			t.Fatal(err)
		}
		out := build()
		if !strings.Contains(out, "bashx: install tree (") || !strings.Contains(out, "bashx: built ") {
			t.Fatalf("build %d of bashx did not install its package:\n%s", i, out)
		}
		if strings.Contains(out, "debootstrap") || strings.Contains(out, "bash: install") || strings.Contains(out, "base-bookworm:") {
			t.Fatalf("build %d of bashx rebuilt a layer below it:\n%s", i, out)
		}
		if got, _ := filepath.Glob(filepath.Join(env.ImageCache, "bashx", "*", "index.json")); len(got) != 1 {
			t.Fatalf("bashx's layouts after build %d: %v", i, got)
		}
	}
	after, err := os.Stat(bashLayout[0])
	if err != nil || !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("bash's layout changed: %v", err)
	}
	if bases, _ := filepath.Glob(filepath.Join(env.ImageCache, "base-bookworm", "*", "index.json")); len(bases) != 1 {
		t.Fatalf("base layouts in the cache: %v", bases)
	}
}
