// Package server owns runtimed's HTTP API: routing, request decoding and
// validation, admission (how many executions run and wait at once), and
// turning sandbox results and failures into answers.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/internal/session"
	"github.com/runtimed/runtimed/internal/version"
	"github.com/runtimed/runtimed/pkg/api"
)

// Executor carries out a validated request.
type Executor interface {
	Execute(ctx context.Context, log *logrus.Entry, p execution.Plan) (*api.RunResponse, error)
}

// Platform answers for the containerd side: is it up, which images it has.
type Platform interface {
	// Version returns containerd's version, or an error if it does not answer.
	Version(ctx context.Context) (string, error)
	ImagePresent(ctx context.Context, ref string) (bool, error)
	// ImageVersion answers the version an image's recipe recorded for
	// what it runs ("" if none, or no such image).
	ImageVersion(ctx context.Context, ref string) (string, error)
	// MissingCommands answers which of commands the image ref does not
	// hold as executable files: absolute paths, or names looked up in
	// the directories of searchPath (none if there is no such image).
	MissingCommands(ctx context.Context, ref string, commands, searchPath []string) ([]string, error)
	// Pools describes the warm pools.
	Pools() []api.Pool
}

// Server is the HTTP API.
type Server struct {
	// state is what a reload replaces: the configuration, languages and
	// tokens. A request uses the state it started with.
	state    atomic.Pointer[state]
	executor Executor
	platform Platform
	images   Images
	admit    *admission
	metrics  *metrics.Metrics
	log      *logrus.Entry
	mux      *http.ServeMux
	// streamWriteTimeout bounds each write of a streamed answer (see
	// stream).
	streamWriteTimeout time.Duration
	// sessions, if set, are the sessions the API serves.
	sessions *session.Manager
	// backfill is what BuildMissing is building.
	backfill backfill
	// active counts the requests being served, so that a shutdown can
	// wait for the ones it cut off to answer.
	active sync.WaitGroup
	// stateMu serializes the changes of state (RefreshImages, Reload,
	// revocations) and guards imageVersions, unavailable and revoked.
	stateMu sync.Mutex
	// refreshMu lets one RefreshImages look at the images at a time.
	refreshMu sync.Mutex
	// imageVersions are the versions the images say they run, by
	// reference (see language.NewRegistryWith).
	imageVersions map[string]string
	// unavailable says, by language table key, why a language cannot
	// run: a command it starts is not in its image.
	unavailable map[string]string
	// revoked are the tokens refused whatever the configuration says
	// (LoadRevocations); changed under stateMu, read without.
	revoked atomic.Pointer[revoked]
}

type state struct {
	cfg    config.Config
	langs  *language.Registry
	tokens *tokens
}

// ErrShuttingDown is the cause with which a shutdown cancels the requests
// still running at its deadline: they are answered 503.
var ErrShuttingDown = errors.New("runtimed is shutting down")

var _ http.Handler = (*Server)(nil)

// New returns a server for cfg, which must have been validated.
func New(cfg config.Config, executor Executor, platform Platform, m *metrics.Metrics, log *logrus.Entry) *Server {
	s := &Server{
		executor: executor,
		platform: platform,
		admit:    newAdmission(cfg.Requests.MaxConcurrent, cfg.Requests.MaxQueued, time.Duration(cfg.Requests.MaxQueueWaitMS)*time.Millisecond, m),
		metrics:  m,
		log:      log,
		mux:      http.NewServeMux(),

		streamWriteTimeout: defaultStreamWriteTimeout,
	}
	s.state.Store(&state{cfg: cfg, langs: language.NewRegistry(cfg), tokens: newTokens(cfg.Tokens, cfg.TokenLimits, nil, nil)})
	s.route("POST", "/v1/run", s.handleRun)
	s.route("GET", "/v1/runtimes", s.handleRuntimes)
	s.route("GET", "/v1/pools", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, api.Pools{Pools: s.platform.Pools()})
	})
	s.route("GET", "/healthz", s.handleHealth)
	s.route("GET", "/readyz", s.handleReady)
	s.route("GET", "/metrics", m.Handler().ServeHTTP)
	s.routeImages()
	s.routePiston()
	s.routeConnect()
	s.routeSessions()
	s.routeTokens()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, newError(api.CodeNotFound, "no such endpoint: %s", r.URL.Path))
	})
	return s
}

// route serves path with h for method, and answers other methods 405 with
// an Allow header and an error body.
func (s *Server) route(method, path string, h http.HandlerFunc) {
	s.mux.HandleFunc(method+" "+path, h)
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", method)
		s.fail(w, r, newError(api.CodeMethodNotAllowed, "%s takes %s, not %s", path, method, r.Method))
	})
}

type ctxKey int

const logKey ctxKey = 0

// ServeHTTP serves the unix socket, where access is by file permission.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serve(w, r, false) }

// TCPHandler serves the TCP listener: every request needs a bearer token,
// and each token has a request rate and a number of executions.
func (s *Server) TCPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, true) })
}

// isProbe reports whether r is a liveness or readiness probe: they
// reveal nothing a load balancer may not know, and are served without a
// token (a Kubernetes or load-balancer probe carries none).
func isProbe(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/healthz" || r.URL.Path == "/readyz")
}

// MetricsHandler serves metrics_listen: /metrics and the probes, without
// a token; any other path is answered 404 with the error body.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case isProbe(r):
			s.serve(w, r, false)
		case r.URL.Path == "/metrics" || r.URL.Path == "/healthz" || r.URL.Path == "/readyz":
			w.Header().Set("Allow", "GET")
			writeJSON(w, http.StatusMethodNotAllowed, api.ErrorBody{Error: *newError(api.CodeMethodNotAllowed, "%s takes GET, not %s", r.URL.Path, r.Method)})
		default:
			writeJSON(w, http.StatusNotFound, api.ErrorBody{Error: *newError(api.CodeNotFound, "no such endpoint: %s; this listener serves /metrics, /healthz and /readyz", r.URL.Path)})
		}
	})
	return mux
}

// serve gives every request an id (X-Request-Id, or a new one) and a log
// entry carrying it, and on the TCP listener checks the token.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, needToken bool) {
	s.active.Add(1)
	defer s.active.Done()
	st := s.state.Load()
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 128 {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	w.Header().Set("X-Request-Id", id)
	log := s.log.WithField("request_id", id)
	if cred, ok := r.Context().Value(peerKey).(*unix.Ucred); ok {
		log = log.WithFields(logrus.Fields{"peer_uid": cred.Uid, "peer_pid": cred.Pid})
	}
	ctx := r.Context()
	if needToken && !isProbe(r) && (!st.cfg.PistonWithoutToken || !isPiston(r)) {
		c := st.tokens.authenticate(r)
		if c == nil {
			log.WithField("remote", r.RemoteAddr).Info("request without a valid token")
			w.Header().Set("WWW-Authenticate", `Bearer realm="runtimed"`)
			s.fail(w, r, newError(api.CodeUnauthorized, "a valid bearer token is required"))
			return
		}
		log = log.WithField("token", c.name)
		c.lastUsed.Store(time.Now().UnixNano())
		if wait, ok := c.admitRate(); !ok {
			w.Header().Set("Retry-After", retryAfter(wait))
			s.fail(w, r, newError(api.CodeRateLimited, "this token's request rate is spent; retry after Retry-After seconds"))
			return
		}
		ctx = context.WithValue(ctx, clientKey, c)
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	ctx = context.WithValue(ctx, stateKey, st)
	s.mux.ServeHTTP(rec, r.WithContext(context.WithValue(ctx, logKey, log)))
	log.WithFields(logrus.Fields{
		"method": r.Method, "path": r.URL.Path, "status": rec.status,
		"duration_ms": time.Since(start).Milliseconds(),
	}).Debug("request")
}

const stateKey ctxKey = 3

func stateFrom(ctx context.Context) *state {
	st, ok := ctx.Value(stateKey).(*state)
	if !ok {
		panic("server: a request's context has no state (not served by Server.ServeHTTP)")
	}
	return st
}

// Reload replaces the limits, tokens and languages with those of cfg,
// which must have been validated. Requests under way keep the old ones; a
// token whose hash and limits did not change keeps its rate and slots.
func (s *Server) Reload(cfg config.Config) {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	old := s.state.Load()
	// What the images held is known until RefreshImages, which a reload
	// is followed by, looks again.
	s.state.Store(&state{cfg: cfg, langs: language.NewRegistryWith(cfg, s.imageVersions, s.unavailable), tokens: newTokens(cfg.Tokens, cfg.TokenLimits, old.tokens, s.revoked.Load())})
	s.logRevoked(cfg.Tokens)
}

// RefreshImages asks containerd what each language's image holds: the
// version its recipe recorded, which, where it changed, is reported as
// the language's version from now on; and whether the commands the
// language starts are in it (a language whose commands are not is
// unavailable, with the reason). It is called at the start, after a
// reload and when an image changes. An image whose version does not
// refine its language's is logged, and the language keeps its own.
func (s *Server) RefreshImages(ctx context.Context) {
	// One look at a time; the look itself (containerd, the images'
	// views) holds no lock a request or a revocation waits for.
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	st := s.state.Load()
	s.stateMu.Lock()
	prevVersions, prevUnavailable := s.imageVersions, s.unavailable
	s.stateMu.Unlock()
	versions := map[string]string{}
	for _, l := range st.langs.All() {
		if _, done := versions[l.Image]; done {
			continue
		}
		v, err := s.platform.ImageVersion(ctx, l.Image)
		if err != nil {
			s.log.WithError(err).WithField("image", l.Image).Warn("read the image's version")
			v = prevVersions[l.Image]
		}
		versions[l.Image] = v
	}
	unavailable := s.checkCommands(ctx, st.cfg, prevUnavailable)

	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	if maps.Equal(versions, s.imageVersions) && maps.Equal(unavailable, s.unavailable) {
		return
	}
	if !maps.Equal(versions, s.imageVersions) {
		for key, c := range st.cfg.Languages {
			if v := versions[c.Image]; v != "" && language.VersionOf(c.Version, v) != v {
				s.log.WithFields(logrus.Fields{"language": key, "version": c.Version, "image": c.Image, "image_version": v}).
					Warn("the language's image runs another version than its table says; it reports the table's")
			}
		}
	}
	for key, why := range unavailable {
		if s.unavailable[key] != why {
			s.log.WithFields(logrus.Fields{"language": key, "image": st.cfg.Languages[key].Image}).
				Errorf("the language cannot run: %s; its requests are refused until its table or image is fixed", why)
		}
	}
	for key := range s.unavailable {
		if _, still := unavailable[key]; !still {
			if _, there := st.cfg.Languages[key]; there {
				s.log.WithField("language", key).Info("the language can run again: its image holds its commands")
			}
		}
	}
	s.imageVersions, s.unavailable = versions, unavailable
	// A reload during the look replaced the state: its languages get
	// what was found, and the look that follows every reload corrects
	// a table it changed.
	cur := s.state.Load()
	s.state.Store(&state{cfg: cur.cfg, langs: language.NewRegistryWith(cur.cfg, versions, unavailable), tokens: cur.tokens})
}

// refreshTimeout bounds one RefreshImages: a containerd that does not
// answer leaves the languages as they were.
const refreshTimeout = 5 * time.Minute

// checkCommands answers, by language table key, why a language cannot
// run: the commands it starts (language.Commands) that its image does
// not hold. The languages of one image and search path are checked
// together; an image that cannot be looked at is logged, and its
// languages keep what was known of them.
func (s *Server) checkCommands(ctx context.Context, cfg config.Config, prev map[string]string) map[string]string {
	type group struct {
		image    string
		path     []string
		commands []string
		missing  map[string]bool
		err      error
	}
	groups := map[string]*group{}
	// Each language's group and commands.
	type lang struct {
		g        *group
		commands []string
	}
	langs := map[string]lang{}
	for key, c := range cfg.Languages {
		search := language.SearchPath(c)
		gkey := c.Image + "\x00" + strings.Join(search, ":")
		g := groups[gkey]
		if g == nil {
			g = &group{image: c.Image, path: search}
			groups[gkey] = g
		}
		l := lang{g: g, commands: language.Commands(c)}
		langs[key] = l
		for _, cmd := range l.commands {
			if !slices.Contains(g.commands, cmd) {
				g.commands = append(g.commands, cmd)
			}
		}
	}
	for _, g := range groups {
		missing, err := s.platform.MissingCommands(ctx, g.image, g.commands, g.path)
		if err != nil {
			s.log.WithError(err).WithField("image", g.image).Warn("look for the languages' commands in their image")
			g.err = err
			continue
		}
		g.missing = map[string]bool{}
		for _, m := range missing {
			g.missing[m] = true
		}
	}
	out := map[string]string{}
	for key, c := range cfg.Languages {
		l := langs[key]
		g := l.g
		if g.err != nil {
			if why, ok := prev[key]; ok {
				out[key] = why
			}
			continue
		}
		var lacks []string
		for _, cmd := range l.commands {
			if g.missing[cmd] {
				lacks = append(lacks, cmd)
			}
		}
		switch len(lacks) {
		case 0:
		case 1:
			out[key] = fmt.Sprintf("%s is not in its image %s", lacks[0], c.Image)
		default:
			out[key] = fmt.Sprintf("%s are not in its image %s", strings.Join(lacks, " and "), c.Image)
		}
	}
	return out
}

// Wait waits, up to timeout, for every request being served to answer.
func (s *Server) Wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { s.active.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Load reports how many executions run and wait now.
func (s *Server) Load() (running, queued int) { return s.admit.Load() }

func logFrom(ctx context.Context) *logrus.Entry {
	log, ok := ctx.Value(logKey).(*logrus.Entry)
	if !ok {
		panic("server: a request's context has no log entry (not served by Server.ServeHTTP)")
	}
	return log
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets an http.ResponseController reach the connection (a
// stream's flushes and write deadlines).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	plan, aerr := s.decodeRun(w, r)
	if aerr != nil {
		s.fail(w, r, aerr)
		return
	}
	if wantsStream(r) {
		s.stream(w, r, plan)
		return
	}
	if resp := s.execute(w, r, plan); resp != nil {
		writeJSON(w, http.StatusOK, resp)
	}
}

// execute runs a validated plan (see run). If it fails, it answers the
// error itself and returns nil.
func (s *Server) execute(w http.ResponseWriter, r *http.Request, plan execution.Plan) *api.RunResponse {
	resp, err := s.run(r.Context(), r, plan)
	if err != nil {
		if e := s.runError(r.Context(), w, r, plan, err); e != nil {
			s.fail(w, r, e)
		}
		return nil
	}
	return resp
}

// run runs a validated plan, under ctx (r's, or one derived from it),
// within the token's and the daemon's bounds on sandboxes in use, and
// logs its summary.
func (s *Server) run(ctx context.Context, r *http.Request, plan execution.Plan) (*api.RunResponse, error) {
	log := logFrom(r.Context())
	if plan.Session == nil {
		// A session's runs use its own sandbox: they take no place.
		plan.Admission = &gate{admit: s.admit, client: clientFrom(r.Context()), metrics: s.metrics}
	}
	lang := plan.Language
	resp, err := s.executor.Execute(ctx, log, plan)
	if err != nil {
		return nil, err
	}
	fields := logrus.Fields{"language": lang.Name, "status": resp.Status}
	if c := resp.Compile; c != nil {
		fields["compile_status"], fields["compile_ms"] = c.Status, c.WallTimeMS
	}
	if run := resp.Run; run != nil {
		fields["exit_code"], fields["wall_ms"], fields["cpu_ms"], fields["memory_bytes"] = run.ExitCode, run.WallTimeMS, run.CPUTimeMS, run.MemoryBytes
		fields["stdout_bytes"], fields["stderr_bytes"] = len(run.Stdout), len(run.Stderr)
	}
	if len(plan.Tests) > 0 {
		fields["tests"] = len(resp.Tests)
	}
	log.WithFields(fields).Info("execution")
	return resp, nil
}

// runError logs an execution's failure and returns its answer, or nil if
// the client went away (ctx, the execution's, ended) and nobody is left
// to answer.
func (s *Server) runError(ctx context.Context, w http.ResponseWriter, r *http.Request, plan execution.Plan, err error) *api.Error {
	log := logFrom(r.Context())
	lang := plan.Language
	// Below the executor, only two categories are the client's to know:
	// containerd not answering and a missing image. Any other (an
	// invalid spec, a vanished task) is runtimed's own failure.
	var aerr *api.Error
	var ended *session.Ended
	e := categorize(err)
	switch {
	case errors.As(err, &aerr):
		return aerr
	case errors.As(context.Cause(ctx), &ended):
		log.WithError(err).Info("execution stopped: its session ended")
		return newError(api.CodeSessionExpired, "%s; the run was stopped", ended.Error())
	case errors.Is(context.Cause(ctx), ErrShuttingDown):
		log.WithError(err).Warn("execution cut off by the shutdown")
		return newError(api.CodeUnavailable, "runtimed is shutting down and stopped this execution; retry it")
	case ctx.Err() != nil:
		log.WithError(err).WithField("cause", context.Cause(ctx)).Info("client went away; execution stopped")
		return nil
	case e != nil && e.Code == api.CodeUnavailable:
		log.WithError(err).Warn("containerd is unavailable")
		return newError(api.CodeUnavailable, "containerd does not answer; retry later")
	case e != nil && e.Code == api.CodeImageMissing:
		if nr := s.notReady(w, lang.Name, lang.Image); nr != nil {
			log.WithError(err).Info("image not built yet")
			return nr
		}
		log.WithError(err).Warn("image missing")
		return newError(api.CodeImageMissing, "the %s image is not installed (%s); runtimectl images build %s installs it", lang.Name, lang.Image, lang.Name)
	default:
		return s.internalError(w, r, "the sandbox failed", err)
	}
}

// cannotRun is the answer to a request for a language that cannot run
// here (see RefreshImages), nil for one that can.
func cannotRun(l *language.Language) *api.Error {
	if l.Unavailable == "" {
		return nil
	}
	return newError(api.CodeLanguageUnavailable, "%s %s cannot run on this runtimed: %s (the operator must fix its language table or its image)", l.Name, l.Version, l.Unavailable)
}

// decodeRun reads and checks a run request. Nothing is created before it
// has passed.
func (s *Server) decodeRun(w http.ResponseWriter, r *http.Request) (execution.Plan, *api.Error) {
	var req api.RunRequest
	st := stateFrom(r.Context())
	if aerr := decodeBody(w, r, st.cfg.Requests.MaxBodyBytes, &req, true); aerr != nil {
		return execution.Plan{}, aerr
	}
	return st.plan(&req)
}

// decodeBody reads the body, at most maxBytes bytes, as one JSON value into v;
// strict refuses fields v has no place for.
func decodeBody(w http.ResponseWriter, r *http.Request, maxBytes int64, v any, strict bool) *api.Error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBytes))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return decodeError(err, maxBytes)
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return decodeError(err, maxBytes)
		}
		return badRequest(api.CodeInvalidJSON, "", "the body holds more than one JSON value")
	}
	return nil
}

// plan checks a decoded request against the configuration.
func (s *state) plan(req *api.RunRequest) (execution.Plan, *api.Error) {
	if req.Language == "" && len(req.Files) > 0 {
		// The first file's extension says it (main.py: python).
		req.Language = s.langs.ByExtension(req.Files[0].Name)
		if req.Language == "" {
			return execution.Plan{}, badRequest(api.CodeInvalidRequest, "language", "language is required: no language has the extension of %q", req.Files[0].Name)
		}
	}
	if req.Language == "" {
		return execution.Plan{}, badRequest(api.CodeInvalidRequest, "language", "language is required")
	}
	lang, err := s.langs.Select(req.Language, req.Version)
	if errors.Is(err, language.ErrUnknownLanguage) {
		return execution.Plan{}, badRequest(api.CodeUnknownLanguage, "language", "unknown language %q; GET /v1/runtimes lists them", req.Language)
	}
	if err != nil {
		return execution.Plan{}, badRequest(api.CodeUnknownVersion, "version", "%v", err)
	}
	if aerr := cannotRun(lang); aerr != nil {
		return execution.Plan{}, aerr
	}
	if aerr := validateFiles(req.Files, s.cfg.Requests); aerr != nil {
		return execution.Plan{}, aerr
	}
	if aerr := validateInput("", req.Stdin, req.Args, s.cfg.Requests); aerr != nil {
		return execution.Plan{}, aerr
	}
	if aerr := validateTests(req, s.cfg.Requests); aerr != nil {
		return execution.Plan{}, aerr
	}
	timeout, aerr := s.timeout(req.DeadlineMS)
	if aerr != nil {
		return execution.Plan{}, aerr
	}
	limits, aerr := ResolveLimits("limits", req.Limits, lang.Defaults, s.cfg.Maximums)
	if aerr != nil {
		return execution.Plan{}, aerr
	}
	compileLimits, aerr := ResolveLimits("compile_limits", req.CompileLimits, lang.CompileDefaults, s.cfg.CompileMaximums)
	if aerr != nil {
		return execution.Plan{}, aerr
	}
	return execution.Plan{
		Language:           lang,
		Files:              nameSources(lang, req.Files, s.cfg.Requests),
		Stdin:              req.Stdin,
		Args:               req.Args,
		Limits:             limits,
		CompileLimits:      compileLimits,
		Tests:              req.Tests,
		Compare:            req.Compare,
		StopOnFirstFailure: req.StopOnFirstFailure,
		Timeout:            timeout,
	}, nil
}

// timeout is a request's deadline: the one it asks for (deadline_ms),
// within the configured bounds, or the default.
func (s *state) timeout(ms int64) (time.Duration, *api.Error) {
	r := s.cfg.Requests
	switch {
	case ms == 0:
		ms = r.DeadlineMS
	case ms < config.MinDeadlineMS:
		return 0, badRequest(api.CodeInvalidRequest, "deadline_ms", "deadline_ms must be at least %d", config.MinDeadlineMS)
	case ms > r.MaxDeadlineMS:
		return 0, badRequest(api.CodeLimitExceeded, "deadline_ms", "deadline_ms (%d) exceeds the maximum of %d", ms, r.MaxDeadlineMS)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func decodeError(err error, maxBody int64) *api.Error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return tooLarge("", "the body is larger than the maximum of %d bytes", maxBody)
	case errors.As(err, &syntax):
		return badRequest(api.CodeInvalidJSON, "", "malformed JSON at byte %d: %v", syntax.Offset, err)
	case errors.As(err, &typ):
		return badRequest(api.CodeInvalidJSON, typ.Field, "%s must be %s, not a JSON %s", typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest(api.CodeInvalidJSON, "", "the body is empty or cut short")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(api.CodeInvalidRequest, field, "unknown field %q", field)
	default:
		return badRequest(api.CodeInvalidJSON, "", "invalid JSON: %v", err)
	}
}

func (s *Server) handleRuntimes(w http.ResponseWriter, r *http.Request) {
	out := api.RuntimesResponse{Runtimes: []api.Runtime{}}
	for _, l := range stateFrom(r.Context()).langs.All() {
		present := s.imagePresent(r, l)
		_, building := s.backfill.building(l.Image)
		building = building && !present
		out.Runtimes = append(out.Runtimes, api.Runtime{
			Language: l.Name, Version: l.Version, Aliases: l.Aliases,
			Extension: l.Extension, Image: l.Image, ImagePresent: present, ImageBuilding: building,
			Unavailable: l.Unavailable,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// imagePresent reports whether l's image is in containerd; a look-up
// that fails is logged and counts as absent.
func (s *Server) imagePresent(r *http.Request, l *language.Language) bool {
	present, err := s.platform.ImagePresent(r.Context(), l.Image)
	if err != nil {
		logFrom(r.Context()).WithError(err).Warn("look up image")
	}
	return present
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	v, err := s.platform.Version(ctx)
	if err != nil {
		logFrom(r.Context()).WithError(err).Warn("containerd does not answer")
		s.fail(w, r, newError(api.CodeUnavailable, "containerd does not answer"))
		return
	}
	writeJSON(w, http.StatusOK, api.Health{Status: "ok", Containerd: v, Version: version.Version})
}

// handleReady says whether runtimed can take work: containerd answers,
// the OCI runtime is installed, every language's image is present.
// /healthz, by contrast, says only that the daemon is alive.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	out := api.Readiness{Ready: true, Checks: map[string]string{}}
	check := func(name string, err error) {
		if err != nil {
			out.Ready = false
			out.Checks[name] = err.Error()
			return
		}
		out.Checks[name] = "ok"
	}
	_, err := s.platform.Version(ctx)
	check("containerd", err)
	st := stateFrom(r.Context())
	if bin := st.cfg.Runtime.Binary; bin != "" {
		_, err := os.Stat(bin)
		check("runtime", err)
	}
	if err == nil {
		var missing []string
		seen := map[string]bool{}
		for _, l := range st.langs.All() {
			if seen[l.Image] {
				continue // an image several languages share is listed once
			}
			seen[l.Image] = true
			if ok, err := s.platform.ImagePresent(ctx, l.Image); !ok || err != nil {
				missing = append(missing, l.Image)
			}
		}
		if len(missing) > 0 {
			check("images", fmt.Errorf("missing: %s", strings.Join(missing, ", ")))
		} else {
			check("images", nil)
		}
		// A language that cannot run is said, but the others can take
		// work: one table's mistake does not take every language out of
		// a load balancer.
		out.Checks["languages"] = "ok"
		var cannot []string
		for _, l := range st.langs.All() {
			if l.Unavailable != "" {
				cannot = append(cannot, fmt.Sprintf("%s %s (%s)", l.Name, l.Version, l.Unavailable))
			}
		}
		if len(cannot) > 0 {
			out.Checks["languages"] = "cannot run: " + strings.Join(cannot, "; ")
		}
	}
	status := http.StatusOK
	if !out.Ready {
		status = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// internal answers a platform failure: 500 with the request id, under
// which the log has err. err names host paths, sandbox ids, containerd's
// words: they are for the operator, not the client.
func (s *Server) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.fail(w, r, s.internalError(w, r, what, err))
}

// internalError logs err and returns the answer internal gives.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) *api.Error {
	logFrom(r.Context()).WithError(err).Error(what)
	return newError(api.CodeInternal, "%s; runtimed's log has the details under request id %s", what, w.Header().Get("X-Request-Id"))
}

// fail answers with e, counting it. The Piston API's paths answer errors
// in Piston's form, {"message": "..."}.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, e *api.Error) {
	s.count(e)
	// A language that cannot run stays so until the operator acts: no
	// retry is offered.
	if (e.HTTPStatus == http.StatusServiceUnavailable || e.HTTPStatus == http.StatusTooManyRequests) && w.Header().Get("Retry-After") == "" &&
		e.Code != api.CodeLanguageUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	if isPiston(r) {
		writeJSON(w, e.HTTPStatus, api.PistonError{Message: e.Message})
		return
	}
	writeJSON(w, e.HTTPStatus, api.ErrorBody{Error: *e})
}

// count counts an error answered: as a rejection if the request was
// refused, as a sandbox failure if the platform failed.
func (s *Server) count(e *api.Error) {
	if e.HTTPStatus >= 500 && e.Code == api.CodeInternal {
		s.metrics.SandboxFailure()
	} else {
		s.metrics.Rejection(string(e.Code))
	}
}
