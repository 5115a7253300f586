//go:build integration

package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// startRegistry runs Debian's docker-registry on a loopback port with its
// storage in a temporary directory, and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	addr := harness.FreeAddr(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", cfg)
	log, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("docker-registry (make test-deps installs it): %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait() // killed: its error says so
		log.Close()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(log.Name())
			t.Fatalf("the registry did not answer: %v\n%s", err, data)
		}
	}
}

// imageList is `runtimectl images ls --json`, by reference.
func imageList(t *testing.T, socket string) map[string]api.Image {
	t.Helper()
	out, stderr, code := runtimectlAt(t, socket, "", "images", "ls", "--json")
	if code != 0 {
		t.Fatalf("images ls: %d %s", code, stderr)
	}
	var res api.Images
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("images ls --json: %v\n%s", err, out)
	}
	m := map[string]api.Image{}
	for _, im := range res.Images {
		m[im.Reference] = im
	}
	return m
}

// TestImageManagement drives `runtimectl images` against a daemon in a
// containerd namespace of its own: a real build of the bash recipe (under
// the daemon's umask and no-new-privileges), a recipe changed since its
// build, an import of a built image archive, a push to a local registry
// and a pull back from it, removal, and the errors. Every image and every
// snapshot in the namespace is gone at the end.
func TestImageManagement(t *testing.T) {
	const ns = "images-test"
	registry := startRegistry(t)
	pulledRef := registry + "/test/lua:1"
	recipes := filepath.Join(t.TempDir(), "recipes")
	cache := filepath.Join(t.TempDir(), "cache")
	if err := os.MkdirAll(recipes, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bash", "lua"} {
		data, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "packaging", "images", name+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(recipes, name+".toml"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	in, _ := harness.StartInstance(t, "images", fmt.Sprintf(`namespace = %q
[images]
recipes = %q
cache = %q
[pool]
enabled = false
# A language whose image comes from elsewhere, without runtimed's mount
# points.
[languages.upstream]
version = "5.4"
extension = ".lua"
image = "example.org/upstream/lua:5.4"
run = ["lua5.4", "{entry}"]
# A language whose image comes from a registry.
[languages.pulled]
version = "5.4"
extension = ".lua"
image = %q
run = ["lua5.4", "{entry}"]
`, ns, recipes, cache, pulledRef))
	client := api.NewClient(in.Socket, "")
	ctx := context.Background()
	nsCtx := namespaces.WithNamespace(ctx, ns)
	t.Cleanup(func() {
		// Whatever the test left, so that the suite's leftover check and
		// the next run start clean.
		is := env.Ctr.ImageService()
		imgs, _ := is.List(nsCtx)
		for _, img := range imgs {
			if err := is.Delete(nsCtx, img.Name); err != nil {
				t.Errorf("delete %s: %v", img.Name, err)
			}
		}
	})
	run := func(lang, code string) (*api.RunResponse, error) {
		// lua@5.4.4: Debian 12's, whose image the test builds and imports.
		version := map[string]string{"lua": "5.4.4"}[lang]
		return client.Run(ctx, &api.RunRequest{Language: lang, Version: version, Files: harness.Files("main"+map[string]string{"bash": ".sh", "lua": ".lua", "pulled": ".lua", "upstream": ".lua"}[lang], code)})
	}
	wantOutput := func(lang, code, want string) {
		t.Helper()
		res, err := run(lang, code)
		if err != nil {
			t.Fatalf("%s: %v", lang, err)
		}
		if res.Status != api.StatusOK || res.Run.Stdout != want {
			t.Fatalf("%s: %s %q %q", lang, res.Status, res.Run.Stdout, res.Run.Stderr)
		}
	}
	wantMissing := func(lang string) {
		t.Helper()
		_, err := run(lang, "x")
		var aerr *api.Error
		if !errors.As(err, &aerr) || aerr.Code != api.CodeImageMissing {
			t.Fatalf("%s without its image: %v", lang, err)
		}
	}

	// Nothing is built in the new namespace.
	imgs := imageList(t, in.Socket)
	for _, lang := range []string{"bash", "lua"} {
		ref := "runtimed.local/" + lang + map[string]string{"bash": ":5.2", "lua": ":5.4"}[lang]
		im := imgs[ref]
		if im.Present || im.RecipeState != api.RecipeNotBuilt || im.Recipe != lang || len(im.Languages) != 1 || im.Languages[0] != lang {
			t.Fatalf("%s before a build: %+v", ref, im)
		}
	}
	if im := imgs[pulledRef]; im.Present || im.RecipeState != api.RecipeNone || im.Languages[0] != "pulled" {
		t.Fatalf("%s before the pull: %+v", pulledRef, im)
	}
	wantMissing("bash")

	// A real build, by the daemon.
	out, stderr, code := runtimectlAt(t, in.Socket, "", "images", "build", "bash")
	if code != 0 || !strings.Contains(out, "runtimed.local/bash:5.2: built") {
		t.Fatalf("images build bash: %d %q %q", code, out, stderr)
	}
	im := imageList(t, in.Socket)["runtimed.local/bash:5.2"]
	if !im.Present || im.RecipeState != api.RecipeCurrent || im.SizeBytes < 1<<20 || im.Created.IsZero() {
		t.Fatalf("bash after its build: %+v", im)
	}
	wantOutput("bash", "echo \"hello $(id -u)\"", "hello 65534\n")
	out, _, code = runtimectlAt(t, in.Socket, "", "images", "build", "bash")
	if code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("a second build of an unchanged recipe: %d %q", code, out)
	}

	// An edited recipe shows as changed, in the table too.
	recipe := filepath.Join(recipes, "bash.toml")
	orig, _ := os.ReadFile(recipe)
	if err := os.WriteFile(recipe, append(orig, []byte("\n# edited\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if im := imageList(t, in.Socket)["runtimed.local/bash:5.2"]; im.RecipeState != api.RecipeChanged {
		t.Fatalf("bash after its recipe changed: %+v", im)
	}
	table, _, _ := runtimectlAt(t, in.Socket, "", "images", "ls")
	if !strings.Contains(table, "bash: changed since built") || !strings.Contains(table, "lua: not built") {
		t.Fatalf("images ls:\n%s", table)
	}
	if err := os.WriteFile(recipe, orig, 0o644); err != nil {
		t.Fatal(err)
	}

	// Import: lua's image from the suite's build cache, as an archive.
	layouts, _ := filepath.Glob(filepath.Join(env.ImageCache, "lua", "*", "index.json"))
	if len(layouts) != 1 {
		t.Fatalf("lua's layout in %s: %v", env.ImageCache, layouts)
	}
	archive := filepath.Join(t.TempDir(), "lua.tar")
	if data, err := exec.Command("tar", "-C", filepath.Dir(layouts[0]), "-cf", archive, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, data)
	}
	out, stderr, code = runtimectlAt(t, in.Socket, "", "images", "import", archive)
	if code != 0 || !strings.Contains(out, "runtimed.local/lua:5.4: imported") {
		t.Fatalf("images import: %d %q %q", code, out, stderr)
	}
	// The archive carries the recipe it was built from.
	if im := imageList(t, in.Socket)["runtimed.local/lua:5.4"]; !im.Present || im.RecipeState != api.RecipeCurrent {
		t.Fatalf("lua after its import: %+v", im)
	}
	wantOutput("lua", `print("hello " .. _VERSION)`, "hello Lua 5.4\n")

	// An image made elsewhere (`docker save`'s format) lacks the mount
	// points of a sandbox's read-only root: runtimed adds them.
	upstream := dockerArchiveWithout(t, filepath.Dir(layouts[0]), "example.org/upstream/lua:5.4", "box/", ".runtimed/")
	out, stderr, code = runtimectlAt(t, in.Socket, "", "images", "import", upstream)
	if code != 0 || !strings.Contains(out, "example.org/upstream/lua:5.4: imported") {
		t.Fatalf("images import (docker format): %d %q %q", code, out, stderr)
	}
	wantOutput("upstream", `print("upstream " .. _VERSION)`, "upstream Lua 5.4\n")
	if _, _, code := runtimectlAt(t, in.Socket, "", "images", "rm", "example.org/upstream/lua:5.4"); code != 0 {
		t.Fatalf("images rm upstream: %d", code)
	}

	// The same archive under the registry's name, pushed, removed, pulled.
	out, stderr, code = runtimectlAt(t, in.Socket, "", "images", "import", "--reference", pulledRef, archive)
	if code != 0 || !strings.Contains(out, pulledRef+": imported") {
		t.Fatalf("images import --reference: %d %q %q", code, out, stderr)
	}
	img, err := env.Ctr.GetImage(nsCtx, pulledRef)
	if err != nil {
		t.Fatal(err)
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost))})
	if err := env.Ctr.Push(nsCtx, pulledRef, img.Target(), containerd.WithResolver(resolver)); err != nil {
		t.Fatalf("push to the test registry: %v", err)
	}
	out, stderr, code = runtimectlAt(t, in.Socket, "", "images", "rm", pulledRef)
	if code != 0 || !strings.Contains(out, pulledRef+": removed") {
		t.Fatalf("images rm: %d %q %q", code, out, stderr)
	}
	wantMissing("pulled")
	out, stderr, code = runtimectlAt(t, in.Socket, "", "images", "pull", pulledRef)
	if code != 0 || !strings.Contains(out, pulledRef+": pulled") {
		t.Fatalf("images pull: %d %q %q", code, out, stderr)
	}
	if im := imageList(t, in.Socket)[pulledRef]; !im.Present || im.SizeBytes < 1<<20 {
		t.Fatalf("%s after the pull: %+v", pulledRef, im)
	}
	wantOutput("pulled", `print("pulled " .. _VERSION)`, "pulled Lua 5.4\n")

	// Errors: nothing is created, and each says what was wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"build", "nosuch"}, "not_found (404): no recipe nosuch"},
		{[]string{"build", "../etc/passwd"}, "invalid_request (400)"},
		{[]string{"pull", registry + "/test/nosuch:1"}, "not_found (404)"},
		{[]string{"pull", harness.FreeAddr(t) + "/test/lua:1"}, "image_failed (502)"},
		{[]string{"pull", "Not A Reference"}, "invalid_request (400)"},
		{[]string{"rm", "runtimed.local/nosuch:1"}, "not_found (404): no image runtimed.local/nosuch:1"},
		{[]string{"import", recipe}, "invalid_request (400)"},
	} {
		_, stderr, code := runtimectlAt(t, in.Socket, "", append([]string{"images"}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("images %v: %d %q, want %q", tc.args, code, stderr, tc.want)
		}
	}

	// Removal: the language's requests find no image, and once every
	// image is removed nothing of them is left in containerd.
	for _, ref := range []string{"runtimed.local/lua:5.4", "runtimed.local/bash:5.2", pulledRef} {
		if _, _, code := runtimectlAt(t, in.Socket, "", "images", "rm", ref); code != 0 {
			t.Fatalf("images rm %s: %d", ref, code)
		}
	}
	wantMissing("lua")
	if im := imageList(t, in.Socket)["runtimed.local/lua:5.4"]; im.Present || im.RecipeState != api.RecipeNotBuilt {
		t.Fatalf("lua after its removal: %+v", im)
	}
	// The sandboxes of the requests above are removed in the background
	// after their answers; a sandbox's snapshot goes with it.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var left []string
		if err := env.Ctr.ContentStore().Walk(nsCtx, func(info content.Info) error {
			left = append(left, "content "+info.Digest.String())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := env.Ctr.SnapshotService("overlayfs").Walk(nsCtx, func(_ context.Context, info snapshots.Info) error {
			left = append(left, "snapshot "+info.Name)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("left in namespace %s after every image was removed: %v", ns, left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dockerArchiveWithout writes, from the OCI layout in dir, an archive in
// `docker save`'s format of the image named name: one layer, the
// layout's in order (a later entry replaces an earlier one; whiteouts
// are left out), with the entries under the given prefixes left out.
func dockerArchiveWithout(t *testing.T, dir, name string, drop ...string) string {
	t.Helper()
	var index ocispec.Index
	var manifest ocispec.Manifest
	readJSON := func(path string, v any) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatal(err)
		}
	}
	blob := func(d digest.Digest) string { return filepath.Join(dir, "blobs", "sha256", d.Encoded()) }
	readJSON(filepath.Join(dir, "index.json"), &index)
	readJSON(blob(index.Manifests[0].Digest), &manifest)
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, l := range manifest.Layers {
		src, err := os.Open(blob(l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(src)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			name := strings.TrimPrefix(h.Name, "./")
			if strings.HasPrefix(filepath.Base(name), ".wh.") || slices.ContainsFunc(drop, func(p string) bool { return strings.HasPrefix(name, p) }) {
				continue
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(tw, tr); err != nil {
				t.Fatal(err)
			}
		}
		src.Close()
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	config, _ := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   ocispec.ImageConfig{Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(layer.Bytes())}},
	})
	list, _ := json.Marshal([]map[string]any{{"Config": "config.json", "RepoTags": []string{name}, "Layers": []string{"layer.tar"}}})
	path := filepath.Join(t.TempDir(), "docker.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	aw := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		data []byte
	}{{"manifest.json", list}, {"config.json", config}, {"layer.tar", layer.Bytes()}} {
		if err := aw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := aw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
