package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/internal/session"
	"github.com/runtimed/runtimed/pkg/api"
)

// Sessions: sandboxes that live across requests (package session). A
// session is its creator's: the token's on TCP, the user's (the peer's
// uid) on the unix socket; to anyone else its id is not found. One
// request uses a session at a time; the others wait their turn.

// SetSessions gives the server the sessions it serves; without, the
// sessions API answers 404.
func (s *Server) SetSessions(m *session.Manager) { s.sessions = m }

func (s *Server) routeSessions() {
	s.routeMethods("/v1/sessions", map[string]http.HandlerFunc{
		"POST": s.handleSessionCreate,
		"GET":  s.handleSessionList,
	})
	s.routeMethods("/v1/sessions/{id}", map[string]http.HandlerFunc{
		"GET":    s.handleSessionGet,
		"DELETE": s.handleSessionDelete,
	})
	s.route("POST", "/v1/sessions/{id}/run", s.withSession(s.handleSessionRun))
	s.routeMethods("/v1/sessions/{id}/files/{path...}", map[string]http.HandlerFunc{
		"GET":    s.withSession(s.handleSessionFileGet),
		"PUT":    s.withSession(s.handleSessionFilePut),
		"DELETE": s.withSession(s.handleSessionFileDelete),
	})
}

// routeMethods serves path with a handler per method, and answers other
// methods 405 with an Allow header naming them.
func (s *Server) routeMethods(path string, hs map[string]http.HandlerFunc) {
	var allow []string
	for _, m := range []string{"GET", "PUT", "POST", "DELETE"} {
		if h, ok := hs[m]; ok {
			s.mux.HandleFunc(m+" "+path, h)
			allow = append(allow, m)
		}
	}
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.fail(w, r, newError(api.CodeMethodNotAllowed, "%s takes %s, not %s", r.URL.Path, strings.Join(allow, " or "), r.Method))
	})
}

// owner is who a request comes from, as sessions know it.
func owner(r *http.Request) string {
	if c := clientFrom(r.Context()); c != nil {
		return "token:" + c.name
	}
	if cred, ok := r.Context().Value(peerKey).(*unix.Ucred); ok {
		return "uid:" + strconv.FormatUint(uint64(cred.Uid), 10)
	}
	return "local"
}

// sessionsOn answers 404 and returns false if sessions are off. With
// sessions turned off by a reload, those open still answer (they may be
// used, and deleted, until they end); none is created.
func (s *Server) sessionsOn(w http.ResponseWriter, r *http.Request) bool {
	if s.sessions == nil || !stateFrom(r.Context()).cfg.Sessions.Enabled && (r.Method == http.MethodPost && r.URL.Path == "/v1/sessions" || s.sessions.Open() == 0) {
		s.fail(w, r, newError(api.CodeNotFound, "sessions are turned off on this daemon (sessions.enabled)"))
		return false
	}
	return true
}

// sessionError is the answer to a session's error, nil if it is none of
// the session's own.
func sessionError(err error) *api.Error {
	var ended *session.Ended
	var full *session.Full
	switch {
	case errors.Is(err, session.ErrNotFound):
		return newError(api.CodeSessionNotFound, "no such session")
	case errors.As(err, &ended):
		return newError(api.CodeSessionExpired, "%s", ended.Error())
	case errors.As(err, &full):
		return newError(api.CodeBusy, "%s", full.Why)
	}
	return nil
}

// withSession finds the caller's session {id} and waits for its turn
// for h; the request's context ends when the session does.
func (s *Server) withSession(h func(http.ResponseWriter, *http.Request, *session.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.sessionsOn(w, r) {
			return
		}
		sess, err := s.sessions.Get(owner(r), r.PathValue("id"))
		if err != nil {
			s.fail(w, r, sessionError(err))
			return
		}
		if err := sess.Use(r.Context()); err != nil {
			if e := sessionError(err); e != nil {
				s.fail(w, r, e)
			}
			return // the client went away
		}
		defer sess.Leave()
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		stop := context.AfterFunc(sess.Context(), func() { cancel(sess.Err()) })
		defer stop()
		h(w, r.WithContext(ctx), sess)
	}
}

func (s *Server) handleSessionCreate(w http.ResponseWriter, r *http.Request) {
	if !s.sessionsOn(w, r) {
		return
	}
	st := stateFrom(r.Context())
	var req api.SessionRequest
	if aerr := decodeBody(w, r, st.cfg.Requests.MaxBodyBytes, &req, true); aerr != nil {
		s.fail(w, r, aerr)
		return
	}
	opts, aerr := st.sessionOptions(&req)
	if aerr != nil {
		s.fail(w, r, aerr)
		return
	}
	opts.Owner = owner(r)
	sess, err := s.sessions.Create(r.Context(), logFrom(r.Context()), opts)
	if err != nil {
		if e := sessionError(err); e != nil {
			w.Header().Set("Retry-After", "10")
			s.fail(w, r, e)
			return
		}
		if e := s.runError(r.Context(), w, r, execution.Plan{Language: opts.Language}, err); e != nil {
			s.fail(w, r, e)
		}
		return
	}
	// A revocation of the token while the session was being made ended
	// the sessions it found; this one it may not have.
	if s.tokenRevoked(clientFrom(r.Context())) {
		_ = s.sessions.Delete(opts.Owner, sess.ID)
		s.fail(w, r, newError(api.CodeUnauthorized, "the token was revoked"))
		return
	}
	writeJSON(w, http.StatusCreated, sess.Info())
}

// sessionOptions checks a session request against the configuration.
func (st *state) sessionOptions(req *api.SessionRequest) (session.Options, *api.Error) {
	c := st.cfg.Sessions
	if req.Image != "" {
		if req.Language != "" || req.Version != "" {
			return session.Options{}, badRequest(api.CodeInvalidRequest, "image", "give language (and version) or image, not both")
		}
		var runs []string
		for _, l := range st.langs.All() {
			if l.Image == req.Image {
				req.Language, req.Version = l.Name, l.Version
				runs = append(runs, l.Name+" "+l.Version)
			}
		}
		switch {
		case len(runs) == 0:
			return session.Options{}, badRequest(api.CodeUnknownLanguage, "image", "no language runs the image %q; GET /v1/runtimes lists the images", req.Image)
		case len(runs) > 1:
			return session.Options{}, badRequest(api.CodeInvalidRequest, "image", "several languages run the image %q (%s); give language and version", req.Image, strings.Join(runs, ", "))
		}
	}
	if req.Language == "" {
		return session.Options{}, badRequest(api.CodeInvalidRequest, "language", "language (or image) is required")
	}
	lang, err := st.langs.Select(req.Language, req.Version)
	if errors.Is(err, language.ErrUnknownLanguage) {
		return session.Options{}, badRequest(api.CodeUnknownLanguage, "language", "unknown language %q; GET /v1/runtimes lists them", req.Language)
	}
	if err != nil {
		return session.Options{}, badRequest(api.CodeUnknownVersion, "version", "%v", err)
	}
	if aerr := cannotRun(lang); aerr != nil {
		return session.Options{}, aerr
	}
	limits, aerr := ResolveLimits("limits", req.Limits, lang.Defaults, st.cfg.Maximums)
	if aerr != nil {
		return session.Options{}, aerr
	}
	bound := func(field string, v, def, maximum, minimum int64, unit string) (int64, *api.Error) {
		switch {
		case v == 0:
			return def, nil
		case v < minimum:
			return 0, badRequest(api.CodeInvalidRequest, field, "%s must be at least %d%s", field, minimum, unit)
		case v > maximum:
			return 0, badRequest(api.CodeLimitExceeded, field, "%s (%d%s) exceeds the maximum of %d%s", field, v, unit, maximum, unit)
		}
		return v, nil
	}
	box, aerr := bound("box_bytes", req.BoxBytes, c.BoxBytes, c.MaxBoxBytes, 64<<10, " bytes")
	if aerr != nil {
		return session.Options{}, aerr
	}
	idle, aerr := bound("idle_timeout_s", req.IdleTimeoutS, c.IdleTimeoutS, c.MaxIdleTimeoutS, 1, " s")
	if aerr != nil {
		return session.Options{}, aerr
	}
	life, aerr := bound("max_lifetime_s", req.MaxLifetimeS, c.LifetimeS, c.MaxLifetimeS, 1, " s")
	if aerr != nil {
		return session.Options{}, aerr
	}
	switch req.Mode {
	case "":
	case api.SessionModeRepl:
		if !session.HasRepl(lang) {
			return session.Options{}, badRequest(api.CodeInvalidRequest, "mode", "mode %q is for python and javascript sessions", req.Mode)
		}
	default:
		return session.Options{}, badRequest(api.CodeInvalidRequest, "mode", "unknown mode %q; \"repl\" or none", req.Mode)
	}
	return session.Options{
		Language: lang, Limits: limits, BoxBytes: box, Mode: req.Mode,
		Idle: time.Duration(idle) * time.Second, Lifetime: time.Duration(life) * time.Second,
		MaxOpen: c.MaxOpen, MaxPerOwner: c.MaxPerClient, MemoryBudget: c.MemoryBytes,
	}, nil
}

func (s *Server) handleSessionList(w http.ResponseWriter, r *http.Request) {
	if !s.sessionsOn(w, r) {
		return
	}
	out := api.Sessions{Sessions: []api.Session{}}
	for _, sess := range s.sessions.List(owner(r)) {
		out.Sessions = append(out.Sessions, sess.Info())
	}
	writeJSON(w, http.StatusOK, out)
}

// handleSessionGet describes a session without waiting for its turn.
func (s *Server) handleSessionGet(w http.ResponseWriter, r *http.Request) {
	if !s.sessionsOn(w, r) {
		return
	}
	sess, err := s.sessions.Get(owner(r), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, sessionError(err))
		return
	}
	writeJSON(w, http.StatusOK, sess.Info())
}

func (s *Server) handleSessionDelete(w http.ResponseWriter, r *http.Request) {
	if !s.sessionsOn(w, r) {
		return
	}
	if err := s.sessions.Delete(owner(r), r.PathValue("id")); err != nil {
		s.fail(w, r, sessionError(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleSessionRun(w http.ResponseWriter, r *http.Request, sess *session.Session) {
	st := stateFrom(r.Context())
	var req api.SessionRunRequest
	if aerr := decodeBody(w, r, st.cfg.Requests.MaxBodyBytes, &req, true); aerr != nil {
		s.fail(w, r, aerr)
		return
	}
	plan, aerr := st.sessionPlan(sess, &req)
	if aerr != nil {
		s.fail(w, r, aerr)
		return
	}
	sess.Ran()
	if wantsStream(r) {
		s.stream(w, r, plan)
		return
	}
	if resp := s.execute(w, r, plan); resp != nil {
		writeJSON(w, http.StatusOK, resp)
	}
}

// sessionPlan checks a run in sess against the configuration.
func (st *state) sessionPlan(sess *session.Session, req *api.SessionRunRequest) (execution.Plan, *api.Error) {
	lang := sess.Language
	repl := sess.Mode == api.SessionModeRepl
	switch {
	case repl && len(req.Files) > 0:
		return execution.Plan{}, badRequest(api.CodeInvalidRequest, "files", "a repl session runs code as cells; put files with PUT /v1/sessions/{id}/files/{path}")
	case repl && len(req.Args) > 0:
		return execution.Plan{}, badRequest(api.CodeInvalidRequest, "args", "a cell takes no args")
	case repl && int64(len(req.Code)) > st.cfg.Requests.MaxCodeBytes:
		return execution.Plan{}, tooLarge("code", "code holds %d bytes; the maximum is %d", len(req.Code), st.cfg.Requests.MaxCodeBytes)
	case req.Code != "" && len(req.Files) > 0:
		return execution.Plan{}, badRequest(api.CodeInvalidRequest, "code", "give files or code, not both")
	}
	files := req.Files
	if !repl {
		if req.Code != "" {
			files = []api.File{{Name: lang.SourceName("main"+lang.Extension, req.Code), Content: req.Code}}
		}
		if aerr := validateFiles(files, st.cfg.Requests); aerr != nil {
			return execution.Plan{}, aerr
		}
	}
	if aerr := validateInput("", req.Stdin, req.Args, st.cfg.Requests); aerr != nil {
		return execution.Plan{}, aerr
	}
	timeout, aerr := st.timeout(req.DeadlineMS)
	if aerr != nil {
		return execution.Plan{}, aerr
	}
	limits, aerr := st.sessionRunLimits(sess, req.Limits)
	if aerr != nil {
		return execution.Plan{}, aerr
	}
	if repl {
		code := req.Code
		return execution.Plan{Language: lang, Stdin: req.Stdin, Limits: limits, Timeout: timeout, Session: sess, Cell: &code}, nil
	}
	own := sess.Limits
	compile, aerr := ResolveLimits("compile_limits", api.Limits{}, lang.CompileDefaults, st.cfg.CompileMaximums)
	if aerr != nil {
		return execution.Plan{}, aerr
	}
	compile.MemoryBytes, compile.CPU, compile.Pids = own.MemoryBytes, own.CPU, own.Pids
	return execution.Plan{
		Language:      lang,
		Files:         nameSources(lang, files, st.cfg.Requests),
		Stdin:         req.Stdin,
		Args:          req.Args,
		Limits:        limits,
		CompileLimits: compile,
		Timeout:       timeout,
		Session:       sess,
	}, nil
}

// sessionRunLimits are a run's limits in sess: memory, CPU and pids are
// the session's sandbox's; a run asks only for its times and its output.
func (st *state) sessionRunLimits(sess *session.Session, l api.Limits) (api.Limits, *api.Error) {
	own := sess.Limits
	if l.MemoryBytes != 0 && l.MemoryBytes != own.MemoryBytes || l.CPU != 0 && l.CPU != own.CPU || l.Pids != 0 && l.Pids != own.Pids {
		return api.Limits{}, badRequest(api.CodeInvalidRequest, "limits", "memory_bytes, cpu and pids are the session's (set when it was created); a run sets wall_time_ms, cpu_time_ms and output_bytes")
	}
	return ResolveLimits("limits", l, own, st.cfg.Maximums)
}

// sessionConnectPlan is the plan of a run message on a session's
// connect endpoint: a /v1/run request whose language, if set, is the
// session's, without tests.
func (st *state) sessionConnectPlan(sess *session.Session, req *api.RunRequest) (execution.Plan, *api.Error) {
	switch {
	case req.Language != "" && req.Language != sess.Language.Name || req.Version != "" && !sess.Language.Matches(req.Version):
		return execution.Plan{}, badRequest(api.CodeInvalidRequest, "language", "the session runs %s %s", sess.Language.Name, sess.Language.Version)
	case len(req.Tests) > 0 || req.CompileLimits != (api.Limits{}) || req.Compare != "" || req.StopOnFirstFailure:
		return execution.Plan{}, badRequest(api.CodeInvalidRequest, "tests", "a run in a session has no tests or compile limits")
	}
	run := &api.SessionRunRequest{Files: req.Files, Stdin: req.Stdin, Args: req.Args, Limits: req.Limits, DeadlineMS: req.DeadlineMS}
	if len(req.Files) == 1 && req.Files[0].Name == "" {
		// One file without a name: the code, named as the entry file.
		run.Files, run.Code = nil, req.Files[0].Content
	}
	return st.sessionPlan(sess, run)
}

// boxPath is the {path} of a file request, checked as request file
// names are, or "" for /box itself where allowed.
func boxPath(r *http.Request, rootOK bool) (string, *api.Error) {
	p := strings.TrimSuffix(r.PathValue("path"), "/")
	if p == "" && rootOK {
		return "", nil
	}
	// A leading '-' or '@' is refused for file names that reach a
	// command line; here the name reaches none.
	check := p
	if strings.HasPrefix(p, "-") || strings.HasPrefix(p, "@") {
		check = "x" + p
	}
	if err := validateFileName(check); err != nil || p == "" {
		if err == nil {
			err = fmt.Errorf("file name is empty")
		}
		return "", badRequest(api.CodeInvalidFile, "path", "%v", err)
	}
	return p, nil
}

func (s *Server) sessionBox(w http.ResponseWriter, r *http.Request, sess *session.Session) *sandbox.Box {
	box, err := sess.Box()
	if err != nil {
		if e := sessionError(err); e != nil {
			s.fail(w, r, e)
		} else {
			s.internal(w, r, "the session's box is not there", err)
		}
		return nil
	}
	return box
}

// boxError answers a failed file operation in a session's box.
func (s *Server) boxError(w http.ResponseWriter, r *http.Request, name string, err error) {
	switch {
	case errors.Is(err, sandbox.ErrNotInBox):
		s.fail(w, r, newError(api.CodeNotFound, "no file or directory %q in the session's box (links are followed within the box only)", name))
	case errors.Is(err, sandbox.ErrNotAFile):
		s.fail(w, r, badRequest(api.CodeInvalidFile, "path", "%q is neither a regular file nor a directory", name))
	case errors.Is(err, sandbox.ErrBoxFull):
		s.fail(w, r, tooLarge("", "the session's box is full"))
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EISDIR):
		s.fail(w, r, badRequest(api.CodeInvalidFile, "path", "%q: a file is where a directory must be", name))
	default:
		s.internal(w, r, "the session's box failed", err)
	}
}

func (s *Server) handleSessionFileGet(w http.ResponseWriter, r *http.Request, sess *session.Session) {
	name, aerr := boxPath(r, true)
	if aerr != nil {
		s.fail(w, r, aerr)
		return
	}
	box := s.sessionBox(w, r, sess)
	if box == nil {
		return
	}
	f, size, list, err := box.Open(name)
	if err != nil {
		s.boxError(w, r, name, err)
		return
	}
	if f == nil {
		out := api.BoxListing{Path: "/" + path.Join("box", name), Entries: []api.BoxEntry{}}
		for _, e := range list {
			out.Entries = append(out.Entries, api.BoxEntry{Name: e.Name, Size: e.Size, Mode: e.Mode.String(), Dir: e.Mode.IsDir()})
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	// Each piece within the stream write timeout: a client that stops
	// reading does not hold the session's turn.
	rc := http.NewResponseController(w)
	buf := make([]byte, 64<<10)
	for left := size; left > 0; {
		n, err := f.Read(buf[:min(int64(len(buf)), left)])
		if n > 0 {
			if derr := rc.SetWriteDeadline(time.Now().Add(s.streamWriteTimeout)); derr != nil && !errors.Is(derr, http.ErrNotSupported) {
				return
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				logFrom(r.Context()).WithError(werr).Info("session file: the client stopped taking it")
				return
			}
			left -= int64(n)
		}
		if err != nil {
			// Shorter than it was: the answer is cut, the client sees it.
			return
		}
	}
}

func (s *Server) handleSessionFilePut(w http.ResponseWriter, r *http.Request, sess *session.Session) {
	name, aerr := boxPath(r, false)
	if aerr != nil {
		s.fail(w, r, aerr)
		return
	}
	if execution.IsReserved(name) {
		s.fail(w, r, badRequest(api.CodeInvalidFile, "path", "%q is runtimed's build directory", execution.BuildDir))
		return
	}
	box := s.sessionBox(w, r, sess)
	if box == nil {
		return
	}
	body := &bodyReader{r: http.MaxBytesReader(w, r.Body, box.Size())}
	n, err := box.Put(name, body, 0o644)
	var tooBig *http.MaxBytesError
	var readErr *bodyError
	switch {
	case errors.As(err, &tooBig):
		s.fail(w, r, tooLarge("", "the file is larger than the session's box (%d bytes)", box.Size()))
		return
	case errors.As(err, &readErr):
		s.fail(w, r, badRequest(api.CodeInvalidRequest, "", "the body could not be read whole: %v", readErr.err))
		return
	}
	if err != nil {
		s.boxError(w, r, name, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.BoxEntry{Name: name, Size: n, Mode: "-rw-r--r--"})
}

// bodyReader marks the errors of reading a request's body: the
// client's, not the box's.
type bodyReader struct{ r io.Reader }

type bodyError struct{ err error }

func (e *bodyError) Error() string { return "read the body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = &bodyError{err}
	}
	return n, err
}

func (s *Server) handleSessionFileDelete(w http.ResponseWriter, r *http.Request, sess *session.Session) {
	name, aerr := boxPath(r, false)
	if aerr != nil {
		s.fail(w, r, aerr)
		return
	}
	box := s.sessionBox(w, r, sess)
	if box == nil {
		return
	}
	if err := box.Delete(name); err != nil {
		s.boxError(w, r, name, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
