package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/image"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/pkg/api"
)

// Images manages the language images (image.Manager).
type Images interface {
	List(ctx context.Context, cfg config.Images, uses map[string][]string) ([]api.Image, error)
	// Build builds the image of a recipe, or of a language through
	// imageOf (see image.RecipeNames).
	// Build builds and imports the image of name (a language or a
	// recipe); out gets the build's output, progress a line per step.
	Build(ctx context.Context, cfg config.Images, name string, imageOf func(string) (string, error), out, progress io.Writer) (api.ImageChange, error)
	ImportArchive(ctx context.Context, r io.Reader, ref string) ([]api.ImageChange, error)
	Pull(ctx context.Context, ref string) (api.ImageChange, error)
	Remove(ctx context.Context, ref string) (api.ImageChange, error)
}

// ManageImages serves the image endpoints with im. Listing is open to
// every client; changes are for root on the unix socket alone.
func (s *Server) ManageImages(im Images) { s.images = im }

var errNoImages = newError(api.CodeUnavailable, "image management is not set up in this daemon")

func (s *Server) routeImages() {
	s.route("GET", "/v1/images", s.handleImages)
	s.route("POST", "/v1/images/build", s.imageChange(s.handleImageBuild))
	s.route("POST", "/v1/images/import", s.imageChange(s.handleImageImport))
	s.route("POST", "/v1/images/pull", s.imageChange(s.byReference(func(ctx context.Context, ref string) (api.ImageChange, error) {
		return s.images.Pull(ctx, ref)
	})))
	s.route("POST", "/v1/images/remove", s.imageChange(s.byReference(func(ctx context.Context, ref string) (api.ImageChange, error) {
		return s.images.Remove(ctx, stateFrom(ctx).localImage(ref))
	})))
}

// localImage is the image a user means by ref when removing one: a
// language (python, python@3.11) names its image, a short name of a
// language's image (python:3.13) that image; anything else is ref.
func (st *state) localImage(ref string) string {
	if !strings.ContainsAny(ref, "/:") {
		if im, err := st.langs.ImageOf(ref); err == nil {
			return im
		}
		return ref
	}
	if !strings.Contains(ref, "/") {
		for _, l := range st.langs.All() {
			if short, ok := strings.CutPrefix(l.Image, "runtimed.local/"); ok && short == ref {
				return l.Image
			}
		}
	}
	return ref
}

// imageChange lets only root, on the unix socket, change images: an
// image is what every later request of its language runs on.
func (s *Server) imageChange(h func(http.ResponseWriter, *http.Request) (*api.ImageResult, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.images == nil {
			s.fail(w, r, errNoImages)
			return
		}
		if cred, ok := r.Context().Value(peerKey).(*unix.Ucred); !ok || cred.Uid != 0 {
			s.fail(w, r, newError(api.CodeForbidden, "only root, on the unix socket, may change images"))
			return
		}
		res, err := h(w, r)
		if res == nil && err == nil {
			return // the handler streamed its answer
		}
		if err != nil {
			var aerr *api.Error
			if !errors.As(err, &aerr) {
				aerr = imageError(err)
			}
			logFrom(r.Context()).WithError(err).Warn("image request failed")
			s.fail(w, r, aerr)
			return
		}
		for _, c := range res.Images {
			logFrom(r.Context()).WithFields(logrus.Fields{"image": c.Reference, "action": c.Action, "duration_ms": c.DurationMS}).Info("image changed")
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// imageError is the answer to a failed image change.
func imageError(err error) *api.Error {
	var reg *image.RegistryError
	switch e := categorize(err); {
	// The request's own fault first: a registry that has no such image
	// is a 404, not the registry's failure.
	case e != nil && (e.Code == api.CodeNotFound || e.Code == api.CodeInvalidRequest):
		return e
	case errors.As(err, &reg):
		e = newError(api.CodeImageFailed, "%s", err)
		e.HTTPStatus = http.StatusBadGateway
		return e
	case errors.Is(err, ErrShuttingDown), e != nil && e.Code == api.CodeUnavailable:
		return newError(api.CodeUnavailable, "stopped: %s", err)
	default:
		return newError(api.CodeImageFailed, "%s", err)
	}
}

func (s *Server) handleImages(w http.ResponseWriter, r *http.Request) {
	if s.images == nil {
		s.fail(w, r, errNoImages)
		return
	}
	st := stateFrom(r.Context())
	list, err := s.images.List(r.Context(), st.cfg.WithExtraPackages(), imageUses(st.langs))
	if err != nil {
		s.internal(w, r, "could not list the images", err)
		return
	}
	for i := range list {
		_, list[i].Building = s.backfill.building(list[i].Reference)
	}
	writeJSON(w, http.StatusOK, api.Images{Images: list})
}

// imageUses maps each language image to the languages that run in it.
func imageUses(langs *language.Registry) map[string][]string {
	uses := map[string][]string{}
	for _, l := range langs.All() {
		uses[l.Image] = append(uses[l.Image], l.Name)
	}
	return uses
}

// buildLogTail is how much of a failed build's output its answer quotes.
const buildLogTail = 4 << 10

func (s *Server) handleImageBuild(w http.ResponseWriter, r *http.Request) (*api.ImageResult, error) {
	var req api.ImageBuildRequest
	if e := decodeBody(w, r, 4<<10, &req, true); e != nil {
		return nil, e
	}
	if req.Recipe == "" {
		return nil, badRequest(api.CodeInvalidRequest, "recipe", "recipe must be set")
	}
	// The build's output goes to the log (debug), and its tail into the
	// answer if it fails. A language (python, python@3.11) is built by
	// its image's recipe.
	st := stateFrom(r.Context())
	logw := logFrom(r.Context()).WithField("recipe", req.Recipe).WriterLevel(logrus.DebugLevel)
	defer logw.Close()
	tail := &tailBuffer{max: buildLogTail}
	out := io.MultiWriter(logw, tail)
	// Streamed (Accept: application/x-ndjson): a progress event per step
	// as it ends, then done or error.
	var stream *buildStream
	progress := out
	if wantsStream(r) {
		stream = &buildStream{w: w, rc: http.NewResponseController(w), timeout: s.streamWriteTimeout}
		progress = io.MultiWriter(out, stream)
	}
	c, err := s.images.Build(r.Context(), st.cfg.WithExtraPackages(), req.Recipe, st.langs.ImageOf, out, progress)
	if err != nil {
		if out := tail.String(); out != "" && !errdefs.IsNotFound(err) && !errdefs.IsInvalidArgument(err) {
			err = fmt.Errorf("%w\n%s", err, out)
		}
		if stream != nil && stream.started {
			var aerr *api.Error
			if !errors.As(err, &aerr) {
				aerr = imageError(err)
			}
			logFrom(r.Context()).WithError(err).Warn("image request failed")
			s.count(aerr)
			stream.event(api.BuildEvent{Event: api.BuildError, Error: aerr})
			return nil, nil
		}
		return nil, err
	}
	res := &api.ImageResult{Images: []api.ImageChange{c}}
	if stream != nil && stream.started {
		logFrom(r.Context()).WithFields(logrus.Fields{"image": c.Reference, "action": c.Action, "duration_ms": c.DurationMS}).Info("image changed")
		stream.event(api.BuildEvent{Event: api.BuildDone, Result: res})
		return nil, nil
	}
	return res, nil
}

// buildStream writes a streamed build's events, a line of NDJSON each;
// the first writes the header. A client that takes nothing for the
// stream write timeout gets nothing more; the build goes on.
type buildStream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	started bool
	failed  bool
	partial []byte // a step line not yet ended
}

// Write takes the build's progress, a line per step.
func (b *buildStream) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.partial = append(b.partial, p...)
	var lines []string
	for {
		i := bytes.IndexByte(b.partial, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, string(b.partial[:i+1]))
		b.partial = b.partial[i+1:]
	}
	b.mu.Unlock()
	for _, l := range lines {
		b.event(api.BuildEvent{Event: api.BuildProgress, Data: l})
	}
	return len(p), nil
}

func (b *buildStream) event(ev api.BuildEvent) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failed {
		return
	}
	if !b.started {
		b.started = true
		h := b.w.Header()
		h.Set("Content-Type", api.ContentTypeNDJSON)
		h.Set("X-Accel-Buffering", "no")
		b.w.WriteHeader(http.StatusOK)
	}
	data, err := json.Marshal(ev)
	if err == nil {
		if derr := b.rc.SetWriteDeadline(time.Now().Add(b.timeout)); derr != nil && !errors.Is(derr, http.ErrNotSupported) {
			err = derr
		}
	}
	if err == nil {
		_, err = b.w.Write(append(data, '\n'))
	}
	if err == nil {
		err = b.rc.Flush()
	}
	if err != nil {
		b.failed = true
	}
}

func (s *Server) handleImageImport(w http.ResponseWriter, r *http.Request) (*api.ImageResult, error) {
	maxBytes := stateFrom(r.Context()).cfg.Images.MaxImportBytes
	// An archive takes longer to send than the read timeout allows a
	// request; only root gets here.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	body := http.MaxBytesReader(w, r.Body, maxBytes)
	changes, err := s.images.ImportArchive(r.Context(), body, r.URL.Query().Get("reference"))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, newError(api.CodeBodyTooLarge, "the archive is larger than images.max_import_bytes (%d bytes)", maxBytes)
	}
	if err != nil {
		return nil, err
	}
	return &api.ImageResult{Images: changes}, nil
}

// byReference serves a request whose body names one image, with op.
func (s *Server) byReference(op func(context.Context, string) (api.ImageChange, error)) func(http.ResponseWriter, *http.Request) (*api.ImageResult, error) {
	return func(w http.ResponseWriter, r *http.Request) (*api.ImageResult, error) {
		var req api.ImageReference
		if e := decodeBody(w, r, 4<<10, &req, true); e != nil {
			return nil, e
		}
		if req.Reference == "" {
			return nil, badRequest(api.CodeInvalidRequest, "reference", "reference must be set")
		}
		c, err := op(r.Context(), req.Reference)
		if err != nil {
			return nil, err
		}
		return &api.ImageResult{Images: []api.ImageChange{c}}, nil
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
