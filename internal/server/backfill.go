package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/pkg/api"
)

// backfill is what the daemon is building in the background
// (BuildMissing): the images by reference, and when each was queued.
type backfill struct {
	mu   sync.Mutex
	refs map[string]time.Time
}

// building reports whether ref is queued or being built, and since when.
func (b *backfill) building(ref string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	since, ok := b.refs[ref]
	return since, ok
}

func (b *backfill) set(refs []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refs = map[string]time.Time{}
	now := time.Now()
	for _, r := range refs {
		b.refs[r] = now
	}
}

func (b *backfill) done(ref string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.refs, ref)
}

// notReadyRetry is the Retry-After of a language whose image is being
// built: a build takes a minute or so.
const notReadyRetry = "30"

// BuildMissing builds, one after the other, the image of each configured
// language that containerd does not hold and that has a recipe, by
// language name. Until its image is built a language answers 503
// image_not_ready (with Retry-After), not image_missing; a build that
// fails is logged, and its language answers image_missing again. It
// returns when every build has ended, or ctx has.
func (s *Server) BuildMissing(ctx context.Context) { s.BuildQueued(ctx, s.QueueMissing(ctx)) }

// QueueMissing finds the images BuildMissing builds and marks them as
// being built (their languages answer image_not_ready from now on); the
// daemon calls it before it serves, BuildQueued after.
func (s *Server) QueueMissing(ctx context.Context) []api.Image {
	if s.images == nil {
		return nil
	}
	st := s.state.Load()
	list, err := s.images.List(ctx, st.cfg.WithExtraPackages(), imageUses(st.langs))
	if err != nil {
		s.log.WithError(err).Error("background image builds: list the images")
		return nil
	}
	var queue []api.Image
	for _, im := range list {
		if !im.Present && im.Recipe != "" && len(im.Languages) > 0 {
			queue = append(queue, im)
		}
	}
	refs := make([]string, len(queue))
	for i, im := range queue {
		refs[i] = im.Reference
	}
	s.backfill.set(refs)
	return queue
}

// LogMissingImages logs, at start-up, each language whose image is not
// in containerd: its requests will answer image_missing until it is
// built (or image_not_ready while --build-missing builds it). It returns
// how many languages have none.
func (s *Server) LogMissingImages(ctx context.Context) int {
	st := s.state.Load()
	n := 0
	for _, l := range st.langs.All() {
		ok, err := s.platform.ImagePresent(ctx, l.Image)
		if err != nil || ok {
			continue
		}
		n++
		fields := logrus.Fields{"language": l.Name, "version": l.Version, "image": l.Image}
		if _, building := s.backfill.building(l.Image); building {
			s.log.WithFields(fields).Info("the language's image is queued to be built: until then it answers image_not_ready")
			continue
		}
		s.log.WithFields(fields).Warn("the language's image is not in containerd: it answers image_missing until runtimectl images build " + l.Name + "@" + l.Version + " builds it")
	}
	return n
}

// BuildQueued builds the images QueueMissing queued, one after the other.
func (s *Server) BuildQueued(ctx context.Context, queue []api.Image) {
	if len(queue) == 0 {
		return
	}
	images := s.state.Load().cfg.WithExtraPackages()
	refs := make([]string, len(queue))
	for i, im := range queue {
		refs[i] = im.Reference
	}
	s.log.WithField("images", refs).Info("building the missing images in the background")
	for _, im := range queue {
		if ctx.Err() != nil {
			break
		}
		log := s.log.WithFields(logrus.Fields{"image": im.Reference, "recipe": im.Recipe})
		out := log.WriterLevel(logrus.DebugLevel)
		start := time.Now()
		c, err := s.images.Build(ctx, images, im.Recipe, nil, out, out)
		out.Close()
		s.backfill.done(im.Reference)
		if err != nil {
			log.WithError(err).Error("background image build failed")
			continue
		}
		log.WithFields(logrus.Fields{"action": c.Action, "duration_ms": time.Since(start).Milliseconds()}).Info("image built in the background")
	}
	s.backfill.set(nil)
}

// notReady is the answer to a request whose language's image is being
// built in the background, or nil if it is not.
func (s *Server) notReady(w http.ResponseWriter, name, ref string) *api.Error {
	since, ok := s.backfill.building(ref)
	if !ok {
		return nil
	}
	w.Header().Set("Retry-After", notReadyRetry)
	return newError(api.CodeImageNotReady, "the %s image (%s) is being built, queued %s ago; retry in a minute", name, ref, time.Since(since).Round(time.Second))
}
