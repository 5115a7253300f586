package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/pkg/api"
)

// slowImages lists python's and lua's images as missing, with recipes,
// and javascript's as there; a build ends when its channel is given a
// result.
type slowImages struct {
	fakeImages
	mu     sync.Mutex
	builds []string
	result map[string]chan error
}

func (f *slowImages) List(_ context.Context, _ config.Images, uses map[string][]string) ([]api.Image, error) {
	return []api.Image{
		{Reference: "runtimed.local/javascript:20", Languages: uses["runtimed.local/javascript:20"], Present: true, Recipe: "javascript", RecipeState: api.RecipeCurrent},
		{Reference: "runtimed.local/lua:5.4-trixie", Languages: uses["runtimed.local/lua:5.4-trixie"], Recipe: "lua-5.4-trixie", RecipeState: api.RecipeNotBuilt},
		{Reference: "runtimed.local/python:3.13", Languages: uses["runtimed.local/python:3.13"], Recipe: "python-3.13", RecipeState: api.RecipeNotBuilt},
		{Reference: "example.org/other:1", Languages: []string{}, RecipeState: api.RecipeNone},
	}, nil
}

func (f *slowImages) Build(ctx context.Context, _ config.Images, recipe string, _ func(string) (string, error), _, _ io.Writer) (api.ImageChange, error) {
	f.mu.Lock()
	f.builds = append(f.builds, recipe)
	ch := f.result[recipe]
	f.mu.Unlock()
	select {
	case err := <-ch:
		return api.ImageChange{Reference: recipe, Action: api.ImageBuilt}, err
	case <-ctx.Done():
		return api.ImageChange{}, ctx.Err()
	}
}

// While the daemon builds the missing images, their languages answer 503
// image_not_ready with Retry-After, the lists say which are building,
// and once a build ends (or fails) its language is what its image is.
func TestBuildMissing(t *testing.T) {
	im := &slowImages{result: map[string]chan error{"lua-5.4-trixie": make(chan error), "python-3.13": make(chan error)}}
	log := logrus.New()
	log.SetOutput(io.Discard)
	executor := &fakeExecutor{err: fmt.Errorf("image: %w", sandbox.ErrImageMissing)}
	s := New(config.Default(), executor, fakePlatform{}, metrics.New(), logrus.NewEntry(log))
	s.ManageImages(im)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.BuildMissing(ctx)
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("waited in vain for %s", what)
			}
		}
	}
	building := func() []string {
		im.mu.Lock()
		defer im.mu.Unlock()
		return append([]string(nil), im.builds...)
	}
	waitFor("lua's build", func() bool { return len(building()) == 1 })
	if b := building(); b[0] != "lua-5.4-trixie" {
		t.Fatalf("built first: %v", b)
	}
	run := func(lang string) (int, http.Header, api.ErrorBody) {
		t.Helper()
		resp, err := http.Post(srv.URL+"/v1/run", "application/json", strings.NewReader(`{"language":"`+lang+`","files":[{"name":"a","content":""}]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb api.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&eb)
		return resp.StatusCode, resp.Header, eb
	}
	for _, lang := range []string{"python", "lua"} {
		status, h, eb := run(lang)
		if status != 503 || eb.Error.Code != api.CodeImageNotReady || h.Get("Retry-After") != "30" || !strings.Contains(eb.Error.Message, "being built") {
			t.Fatalf("%s while queued: %d %s %q (Retry-After %q)", lang, status, eb.Error.Code, eb.Error.Message, h.Get("Retry-After"))
		}
	}
	if status, _, eb := run("javascript"); eb.Error.Code != api.CodeImageMissing {
		t.Fatalf("javascript, not queued: %d %s", status, eb.Error.Code)
	}
	var list api.Images
	getJSON(t, srv.URL+"/v1/images", &list)
	got := map[string]bool{}
	for _, i := range list.Images {
		got[i.Reference] = i.Building
	}
	if !got["runtimed.local/python:3.13"] || !got["runtimed.local/lua:5.4-trixie"] || got["runtimed.local/javascript:20"] || got["example.org/other:1"] {
		t.Fatalf("images building: %v", got)
	}
	var rs api.RuntimesResponse
	getJSON(t, srv.URL+"/v1/runtimes", &rs)
	for _, r := range rs.Runtimes {
		if want := r.Image == "runtimed.local/lua:5.4-trixie"; r.ImageBuilding != want {
			t.Errorf("runtime %s %s: image_building %v", r.Language, r.Version, r.ImageBuilding)
		}
	}

	// lua's build fails: lua is missing again; python's is under way.
	im.result["lua-5.4-trixie"] <- errors.New("mirror unreachable")
	waitFor("python's build", func() bool { return len(building()) == 2 })
	if status, _, eb := run("lua"); eb.Error.Code != api.CodeImageMissing {
		t.Fatalf("lua after its build failed: %d %s", status, eb.Error.Code)
	}
	if _, _, eb := run("python"); eb.Error.Code != api.CodeImageNotReady {
		t.Fatalf("python while built: %s", eb.Error.Code)
	}
	im.result["python-3.13"] <- nil
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("BuildMissing did not return after the last build")
	}
	if _, _, eb := run("python"); eb.Error.Code != api.CodeImageMissing {
		t.Fatalf("python after its build: %s (the fake executor still says missing)", eb.Error.Code)
	}
	if b := building(); strings.Join(b, " ") != "lua-5.4-trixie python-3.13" {
		t.Fatalf("builds %v", b)
	}
}
