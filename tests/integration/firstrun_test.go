//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// The first run: runtimed --build-missing serves while it builds the
// images that are missing. Until Lua 5.4.7's image is built, lua answers
// 503 image_not_ready and the runtimes list says it is building; then it
// runs.
func TestBuildMissingWhileServing(t *testing.T) {
	const ns = "firstrun-test"
	recipes := t.TempDir()
	cache := t.TempDir()
	// The Debian 13 base from the suite's cache (hard links), so that only
	// the language's layer is built; and a recipe of its own, so that the
	// build is a real one of several seconds, not an import of the cache.
	bases, _ := filepath.Glob(filepath.Join(env.ImageCache, "base-trixie"))
	if len(bases) != 1 {
		t.Fatalf("no Debian 13 base in %s", env.ImageCache)
	}
	if out, err := exec.Command("cp", "-al", bases[0], cache).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "packaging", "images", "lua-5.4-trixie.toml"))
	if err != nil {
		t.Fatal(err)
	}
	data = fmt.Appendf(data, "\n# %s %d\n", t.Name(), time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(recipes, "lua-5.4-trixie.toml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := harness.NewInstance("firstrun", fmt.Sprintf("namespace = %q\n[images]\nrecipes = %q\ncache = %q\n[pool]\nenabled = false\n", ns, recipes, cache))
	if err != nil {
		t.Fatal(err)
	}
	d, err := harness.StartWith(in, nil, filepath.Join(env.Bin, "runtimed"), "--config", in.Config, "--log-format", "json", "--build-missing")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Stop()
		nsCtx := namespaces.WithNamespace(context.Background(), ns)
		is := env.Ctr.ImageService()
		imgs, _ := is.List(nsCtx)
		for _, img := range imgs {
			if err := is.Delete(nsCtx, img.Name); err != nil {
				t.Errorf("delete %s: %v", img.Name, err)
			}
		}
	})
	client := api.NewClient(in.Socket, "")
	ctx := context.Background()
	hello := &api.RunRequest{Language: "lua", Version: "5.4.7", Files: files("main.lua", `print("hello from " .. _VERSION)`)}

	_, err = client.Run(ctx, hello)
	var aerr *api.Error
	if !errors.As(err, &aerr) || aerr.HTTPStatus != 503 || aerr.Code != api.CodeImageNotReady {
		t.Fatalf("lua while its image builds: %v", err)
	}
	rs, err := client.Runtimes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	building := map[string]bool{}
	for _, r := range rs.Runtimes {
		building[r.Language+" "+r.Version] = r.ImageBuilding
	}
	if !building["lua 5.4.7"] || building["python 3.13.5"] {
		t.Fatalf("building: %v", building)
	}

	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := client.Run(ctx, hello)
		if err == nil {
			if resp.Status != api.StatusOK || !strings.HasPrefix(resp.Run.Stdout, "hello from Lua 5.4") || resp.Version != "5.4.7" {
				t.Fatalf("lua once built: %+v", resp)
			}
			break
		}
		if !errors.As(err, &aerr) || aerr.Code != api.CodeImageNotReady {
			t.Fatalf("lua while its image builds: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("lua's image was not built in 5 minutes")
		}
		time.Sleep(time.Second)
	}
	// Python has no recipe here: missing, not building.
	_, err = client.Run(ctx, &api.RunRequest{Language: "python", Files: files("main.py", "print(1)")})
	if !errors.As(err, &aerr) || aerr.Code != api.CodeImageMissing {
		t.Fatalf("python without a recipe: %v", err)
	}
}
