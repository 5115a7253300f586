package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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
	Build(ctx context.Context, cfg config.Images, name string, imageOf func(string) (string, error), out io.Writer) (api.ImageChange, error)
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
	c, err := s.images.Build(r.Context(), st.cfg.WithExtraPackages(), req.Recipe, st.langs.ImageOf, io.MultiWriter(logw, tail))
	if err != nil {
		if out := tail.String(); out != "" && !errdefs.IsNotFound(err) && !errdefs.IsInvalidArgument(err) {
			err = fmt.Errorf("%w\n%s", err, out)
		}
		return nil, err
	}
	return &api.ImageResult{Images: []api.ImageChange{c}}, nil
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
