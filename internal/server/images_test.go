package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/image"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/pkg/api"
)

// fakeImages records the calls it gets and answers with err, if set.
type fakeImages struct {
	calls []string
	uses  map[string][]string
	err   error
	// buildLog is what a build writes to its output, steps its progress.
	buildLog string
	steps    []string
	imported []byte
}

func (f *fakeImages) List(_ context.Context, cfg config.Images, uses map[string][]string) ([]api.Image, error) {
	f.calls = append(f.calls, "list "+cfg.Recipes)
	f.uses = uses
	return []api.Image{{Reference: "runtimed.local/python:3.11", Languages: uses["runtimed.local/python:3.11"], RecipeState: api.RecipeChanged}}, f.err
}

func (f *fakeImages) Build(_ context.Context, cfg config.Images, recipe string, _ func(string) (string, error), out, progress io.Writer) (api.ImageChange, error) {
	f.calls = append(f.calls, "build "+recipe+" "+cfg.Recipes)
	if _, err := io.WriteString(out, f.buildLog); err != nil {
		return api.ImageChange{}, err
	}
	for _, step := range f.steps {
		if _, err := io.WriteString(progress, step+"\n"); err != nil {
			return api.ImageChange{}, err
		}
	}
	return api.ImageChange{Reference: "runtimed/" + recipe, Action: api.ImageBuilt}, f.err
}

func (f *fakeImages) ImportArchive(_ context.Context, r io.Reader, ref string) ([]api.ImageChange, error) {
	f.calls = append(f.calls, "import "+ref)
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	f.imported = data
	return []api.ImageChange{{Reference: ref, Action: api.ImageImported}}, f.err
}

func (f *fakeImages) Pull(_ context.Context, ref string) (api.ImageChange, error) {
	f.calls = append(f.calls, "pull "+ref)
	return api.ImageChange{Reference: ref, Action: api.ImagePulled}, f.err
}

func (f *fakeImages) Remove(_ context.Context, ref string) (api.ImageChange, error) {
	f.calls = append(f.calls, "remove "+ref)
	return api.ImageChange{Reference: ref, Action: api.ImageRemoved}, f.err
}

// imageServer serves the API as the unix socket would to a peer of uid;
// a negative uid is a peer without credentials (the TCP listener).
func imageServer(t *testing.T, uid int, im Images, change func(*config.Config)) *api.Client {
	t.Helper()
	cfg := config.Default()
	if change != nil {
		change(&cfg)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	s := New(cfg, nil, fakePlatform{}, metrics.New(), logrus.NewEntry(log))
	if im != nil {
		s.ManageImages(im)
	}
	srv := httptest.NewUnstartedServer(s)
	if uid >= 0 {
		srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, peerKey, &unix.Ucred{Uid: uint32(uid), Pid: 1})
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return api.NewHTTPClient(srv.URL, "", srv.Client())
}

func wantAPIError(t *testing.T, err error, status int, code api.ErrorCode, msg string) {
	t.Helper()
	var aerr *api.Error
	if !errors.As(err, &aerr) || aerr.HTTPStatus != status || aerr.Code != code || !strings.Contains(aerr.Message, msg) {
		t.Fatalf("got %v, want %d %s containing %q", err, status, code, msg)
	}
}

func TestImagesListIsForEveryClient(t *testing.T) {
	for _, uid := range []int{0, 1000, -1} {
		f := &fakeImages{}
		c := imageServer(t, uid, f, nil)
		res, err := c.Images(context.Background())
		if err != nil {
			t.Fatalf("uid %d: %v", uid, err)
		}
		if len(res.Images) != 1 || res.Images[0].RecipeState != api.RecipeChanged {
			t.Fatalf("uid %d: %+v", uid, res)
		}
		if f.calls[0] != "list /usr/share/runtimed/images" {
			t.Errorf("calls %v", f.calls)
		}
		// Every language's image is asked about, with the languages using it.
		if got := f.uses["runtimed.local/python:3.11"]; len(got) != 1 || got[0] != "python" {
			t.Errorf("python's image used by %v", got)
		}
		if got := f.uses["runtimed.local/c:gcc12"]; len(got) != 1 || got[0] != "c" {
			t.Errorf("c's image used by %v (%v)", got, f.uses)
		}
	}
}

func TestImageChangesAreForRootOnTheUnixSocket(t *testing.T) {
	changes := map[string]func(*api.Client) error{
		"build": func(c *api.Client) error { _, err := c.BuildImage(context.Background(), "python"); return err },
		"pull":  func(c *api.Client) error { _, err := c.PullImage(context.Background(), "python:3.11-slim"); return err },
		"import": func(c *api.Client) error {
			_, err := c.ImportImage(context.Background(), strings.NewReader("tar"), "x:1")
			return err
		},
		"remove": func(c *api.Client) error { _, err := c.RemoveImage(context.Background(), "x:1"); return err },
	}
	for name, do := range changes {
		for _, uid := range []int{1000, -1} {
			f := &fakeImages{}
			err := do(imageServer(t, uid, f, nil))
			wantAPIError(t, err, http.StatusForbidden, api.CodeForbidden, "only root")
			if len(f.calls) != 0 {
				t.Errorf("%s as uid %d reached the manager: %v", name, uid, f.calls)
			}
		}
		f := &fakeImages{}
		if err := do(imageServer(t, 0, f, nil)); err != nil {
			t.Fatalf("%s as root: %v", name, err)
		}
		if len(f.calls) != 1 || !strings.HasPrefix(f.calls[0], name) {
			t.Errorf("%s as root: calls %v", name, f.calls)
		}
	}
}

func TestImageRequests(t *testing.T) {
	f := &fakeImages{}
	c := imageServer(t, 0, f, func(cfg *config.Config) { cfg.Images.Recipes = "/srv/recipes" })
	ctx := context.Background()
	res, err := c.BuildImage(ctx, "lua")
	if err != nil || res.Images[0].Reference != "runtimed/lua" || res.Images[0].Action != api.ImageBuilt {
		t.Fatalf("build: %+v %v", res, err)
	}
	if f.calls[0] != "build lua /srv/recipes" {
		t.Errorf("build got %q: the configured recipes are not passed", f.calls[0])
	}
	if _, err := c.ImportImage(ctx, strings.NewReader("the archive"), "reg.example/x:1"); err != nil {
		t.Fatal(err)
	}
	if f.calls[1] != "import reg.example/x:1" || string(f.imported) != "the archive" {
		t.Errorf("import: %v %q", f.calls, f.imported)
	}

	// Bad requests never reach the manager.
	n := len(f.calls)
	_, err = c.BuildImage(ctx, "")
	wantAPIError(t, err, http.StatusBadRequest, api.CodeInvalidRequest, "recipe must be set")
	_, err = c.PullImage(ctx, "")
	wantAPIError(t, err, http.StatusBadRequest, api.CodeInvalidRequest, "reference must be set")
	_, err = c.RemoveImage(ctx, "")
	wantAPIError(t, err, http.StatusBadRequest, api.CodeInvalidRequest, "reference must be set")
	if len(f.calls) != n {
		t.Errorf("bad requests reached the manager: %v", f.calls[n:])
	}
}

// TestImageRemoveByLanguage: images rm takes a language, a version of
// one, or a runtimed image's short name, as well as a reference.
func TestImageRemoveByLanguage(t *testing.T) {
	f := &fakeImages{}
	c := imageServer(t, 0, f, nil)
	for ref, want := range map[string]string{
		"python": "runtimed.local/python:3.13", "python@3.11": "runtimed.local/python:3.11", "py": "runtimed.local/python:3.13",
		"python:3.11": "runtimed.local/python:3.11", "docker.io/library/python:3.11": "docker.io/library/python:3.11",
		"nosuch": "nosuch", "python:9": "python:9",
	} {
		f.calls = nil
		if _, err := c.RemoveImage(context.Background(), ref); err != nil {
			t.Fatal(err)
		}
		if len(f.calls) != 1 || f.calls[0] != "remove "+want {
			t.Errorf("%s: %v, want remove %s", ref, f.calls, want)
		}
	}
}

func TestImageImportIsCapped(t *testing.T) {
	f := &fakeImages{}
	c := imageServer(t, 0, f, func(cfg *config.Config) { cfg.Images.MaxImportBytes = 1000 })
	_, err := c.ImportImage(context.Background(), strings.NewReader(strings.Repeat("x", 1001)), "")
	wantAPIError(t, err, http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge, "max_import_bytes (1000 bytes)")
	if _, err := c.ImportImage(context.Background(), strings.NewReader(strings.Repeat("x", 1000)), ""); err != nil {
		t.Fatalf("an archive of max_import_bytes: %v", err)
	}
}

func TestImageErrors(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   api.ErrorCode
	}{
		{fmt.Errorf("no recipe x: %w", errdefs.ErrNotFound), http.StatusNotFound, api.CodeNotFound},
		{fmt.Errorf("reference: %w", errdefs.ErrInvalidArgument), http.StatusBadRequest, api.CodeInvalidRequest},
		{&image.RegistryError{Err: errors.New("connection refused")}, http.StatusBadGateway, api.CodeImageFailed},
		{errors.New("debootstrap failed"), http.StatusInternalServerError, api.CodeImageFailed},
	} {
		f := &fakeImages{err: tc.err, buildLog: "E: Couldn't find these debs: nosuchpackage\n"}
		_, err := imageServer(t, 0, f, nil).BuildImage(context.Background(), "x")
		wantAPIError(t, err, tc.status, tc.code, tc.err.Error())
		// A failed build's answer quotes its output's end; a request at
		// fault is answered without it.
		var aerr *api.Error
		errors.As(err, &aerr)
		quoted := strings.Contains(aerr.Message, "nosuchpackage")
		if quoted != (tc.status >= 500) {
			t.Errorf("%v: the build log quoted: %v: %q", tc.err, quoted, aerr.Message)
		}
	}
}

func TestImagesWithoutManager(t *testing.T) {
	c := imageServer(t, 0, nil, nil)
	_, err := c.Images(context.Background())
	wantAPIError(t, err, http.StatusServiceUnavailable, api.CodeUnavailable, "not set up")
	_, err = c.PullImage(context.Background(), "x")
	wantAPIError(t, err, http.StatusServiceUnavailable, api.CodeUnavailable, "not set up")
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 8}
	for _, s := range []string{"abc", "defgh", "ijklmnopq", "r"} {
		if n, err := tb.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := tb.String(); got != "klmnopqr" {
		t.Fatalf("tail %q, want the last 8 bytes written", got)
	}
}

// TestImageBuildStreamsItsSteps: with Accept: application/x-ndjson, a
// build answers a progress event per step, then done; a failed one ends
// with an error event.
func TestImageBuildStreamsItsSteps(t *testing.T) {
	f := &fakeImages{steps: []string{"python-3.13: unpack base-trixie (4.5s)", "python-3.13: install python3.13 (59s)"}}
	c := imageServer(t, 0, f, nil)
	var lines []string
	res, err := c.BuildImageStream(context.Background(), "python", func(l string) { lines = append(lines, l) })
	if err != nil || len(res.Images) != 1 || len(lines) != 2 || lines[1] != "python-3.13: install python3.13 (59s)\n" {
		t.Fatalf("%v %+v %q", err, res, lines)
	}
	f.err = errors.New("apt failed")
	_, err = c.BuildImageStream(context.Background(), "python", nil)
	var aerr *api.Error
	if !errors.As(err, &aerr) || aerr.Code != api.CodeImageFailed {
		t.Fatalf("a failed build: %v", err)
	}
	// Without steps, nothing was streamed: a plain error answer.
	f.steps = nil
	_, err = c.BuildImageStream(context.Background(), "python", nil)
	if !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusInternalServerError {
		t.Fatalf("a failed build before any step: %v", err)
	}
}
