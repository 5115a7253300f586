// Package session owns sessions: sandboxes that live across requests,
// for agents and notebooks. A session belongs to who created it, holds
// one started sandbox of its language with its own box, runs one
// program at a time in it, and ends when it is deleted, idle too long,
// past its lifetime, or the daemon stops. A session's sandbox never
// serves another session or request.
package session

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/pkg/api"
)

// Why a session ended, as the metrics' reason label says it.
const (
	ReasonDeleted  = "deleted"
	ReasonIdle     = "idle"
	ReasonLifetime = "lifetime"
	ReasonShutdown = "shutdown"
	ReasonRevoked  = "revoked"
)

// ErrNotFound means no open session of that id belongs to the caller.
var ErrNotFound = errors.New("no such session")

// ErrEnded is the cause with which a session's work is stopped when the
// session ends; an *Ended error says why.
var ErrEnded = errors.New("the session ended")

// Ended is the error of a session that ended, for its owner: its id is
// remembered for a while after.
type Ended struct {
	Reason string
	At     time.Time
}

func (e *Ended) Error() string {
	switch e.Reason {
	case ReasonIdle:
		return "the session expired: it was idle longer than its idle timeout"
	case ReasonLifetime:
		return "the session expired: it reached its maximum lifetime"
	case ReasonShutdown:
		return "the session ended: runtimed stopped"
	case ReasonRevoked:
		return "the session ended: its token was revoked"
	}
	return "the session was deleted"
}

func (e *Ended) Is(target error) bool { return target == ErrEnded }

// Full is the error of a session that cannot be created now: too many
// are open (globally or for the owner), or their memory would pass the
// budget.
type Full struct{ Why string }

func (e *Full) Error() string { return e.Why }

// Acquire gives a started sandbox of a profile, as (*sandbox.Runner).Acquire.
type Acquire func(ctx context.Context, p sandbox.Profile, log *logrus.Entry) (*sandbox.Sandbox, error)

// Options are a new session's.
type Options struct {
	Owner    string
	Language *language.Language
	// Limits: memory, CPU and pids are the session's sandbox's, for all
	// its runs; the others are its runs' defaults.
	Limits   api.Limits
	BoxBytes int64
	Idle     time.Duration
	Lifetime time.Duration
	// Mode is "" or api.SessionModeRepl (HasRepl(Language) must hold).
	Mode string

	// The bounds the session must fit in: sessions open in all and per
	// owner, and the memory of all sessions' sandboxes together.
	MaxOpen      int
	MaxPerOwner  int
	MemoryBudget int64
}

// Manager holds the open sessions.
type Manager struct {
	acquire Acquire
	metrics *metrics.Metrics
	log     *logrus.Entry
	// tick is how often expiry is checked.
	tick time.Duration

	mu   sync.Mutex
	open map[string]*Session
	// closing are ended sessions whose sandbox is not released yet: they
	// still count against the bounds.
	closing map[string]*Session
	ended   map[string]ended // remembered ids of ended sessions
	order   []string         // ended's ids, oldest first
	closed  bool
	wg      sync.WaitGroup // ends in progress
	stop    chan struct{}
	done    chan struct{}
}

type ended struct {
	owner string
	err   *Ended
}

// endGrace is how long an ended session's sandbox waits for the request
// using it, and for its interpreter, to let it go.
const endGrace = 15 * time.Second

// rememberEnded is how many ended sessions' ids are remembered.
const rememberEnded = 4096

// NewManager returns a manager whose sessions take their sandboxes from
// acquire. It checks expiry every tick (1 s if 0) until Close.
func NewManager(acquire Acquire, m *metrics.Metrics, log *logrus.Entry, tick time.Duration) *Manager {
	if tick <= 0 {
		tick = time.Second
	}
	mg := &Manager{
		acquire: acquire, metrics: m, log: log, tick: tick,
		open: map[string]*Session{}, closing: map[string]*Session{}, ended: map[string]ended{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go mg.expire()
	return mg
}

// Session is an open session.
type Session struct {
	ID       string
	Owner    string
	Language *language.Language
	Limits   api.Limits
	BoxBytes int64
	Idle     time.Duration
	Lifetime time.Duration
	Created  time.Time
	Mode     string

	m   *Manager
	log *logrus.Entry
	// ctx ends with the session; cause ErrEnded (an *Ended).
	ctx    context.Context
	cancel context.CancelCauseFunc
	// turn is held by the one request that uses the session.
	turn chan struct{}

	mu       sync.Mutex
	sb       *sandbox.Sandbox
	lastUsed time.Time
	users    int // requests using or waiting for the session
	runs     int

	// A repl session's interpreter, and why the last one was lost; the
	// request that holds the turn uses them.
	interp  *interp
	lostWhy string
}

func newID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "ses-" + hex.EncodeToString(b), nil
}

// Create opens a session: it takes a sandbox for it and sizes its box.
func (m *Manager) Create(ctx context.Context, log *logrus.Entry, o Options) (*Session, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	sctx, cancel := context.WithCancelCause(context.Background())
	s := &Session{
		ID: id, Owner: o.Owner, Language: o.Language, Limits: o.Limits, BoxBytes: o.BoxBytes,
		Idle: o.Idle, Lifetime: o.Lifetime, Created: now, Mode: o.Mode,
		m: m, log: m.log.WithFields(logrus.Fields{"session": id, "language": o.Language.Name}),
		ctx: sctx, cancel: cancel, turn: make(chan struct{}, 1),
		lastUsed: now,
	}
	// The place is taken before the sandbox is made, so that the bounds
	// hold while sessions are being created.
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		cancel(nil)
		return nil, &Full{Why: "runtimed is shutting down"}
	}
	// A session's memory is its sandbox's limit and its box (a tmpfs).
	open, mine, memory := 0, 0, int64(0)
	for _, all := range []map[string]*Session{m.open, m.closing} {
		for _, o2 := range all {
			open++
			if o2.Owner == o.Owner {
				mine++
			}
			memory += o2.Limits.MemoryBytes + o2.BoxBytes
		}
	}
	need := o.Limits.MemoryBytes + o.BoxBytes
	switch {
	case o.MaxOpen > 0 && open >= o.MaxOpen:
		m.mu.Unlock()
		cancel(nil)
		return nil, &Full{Why: "runtimed has as many sessions open as it keeps (sessions.max_open); retry when one ends"}
	case o.MaxPerOwner > 0 && mine >= o.MaxPerOwner:
		m.mu.Unlock()
		cancel(nil)
		return nil, &Full{Why: fmt.Sprintf("you have %d sessions open, the most one client may have; delete one", mine)}
	case o.MemoryBudget > 0 && memory+need > o.MemoryBudget:
		m.mu.Unlock()
		cancel(nil)
		return nil, &Full{Why: fmt.Sprintf("this session's memory and box (%d MiB) would pass the sessions' memory budget of %d MiB beside the open ones; retry when one ends", need>>20, o.MemoryBudget>>20)}
	}
	m.open[id] = s
	s.users++ // until the sandbox is there: nothing else may use it
	s.turn <- struct{}{}
	m.mu.Unlock()

	sb, err := m.acquire(ctx, sandbox.ProfileOf(o.Language.Image, o.Limits), s.log)
	if err == nil {
		if err = sb.Box().Resize(o.BoxBytes); err != nil {
			sb.Release()
		}
	}
	if err != nil {
		m.mu.Lock()
		delete(m.open, id)
		m.mu.Unlock()
		cancel(nil)
		<-s.turn // an end begun meanwhile (a shutdown) finds no sandbox
		return nil, err
	}
	s.mu.Lock()
	s.sb = sb
	s.mu.Unlock()
	m.metrics.SessionCreated(o.Language.Name)
	log.WithFields(logrus.Fields{"session": id, "language": o.Language.Name, "sandbox": sb.ID}).Info("session created")
	s.Leave()
	return s, nil
}

// Get returns owner's open session id; ErrNotFound if there is none, or
// an *Ended if it ended a short while ago.
func (m *Manager) Get(owner, id string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.open[id]; s != nil && s.Owner == owner {
		return s, nil
	}
	if e, ok := m.ended[id]; ok && e.owner == owner {
		return nil, e.err
	}
	return nil, ErrNotFound
}

// List returns owner's open sessions, oldest first.
func (m *Manager) List(owner string) []*Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Session
	for _, s := range m.open {
		if s.Owner == owner {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// Delete ends owner's session id, stopping what runs in it, and waits
// until its sandbox is released.
func (m *Manager) Delete(owner, id string) error {
	s, err := m.Get(owner, id)
	if err != nil {
		return err
	}
	m.end(s, ReasonDeleted).Wait()
	return nil
}

// EndOwner ends every session of owner for reason, and waits until
// their sandboxes are released. It returns how many it ended.
func (m *Manager) EndOwner(owner, reason string) int {
	var waits []*sync.WaitGroup
	for _, s := range m.List(owner) {
		waits = append(waits, m.end(s, reason))
	}
	for _, wg := range waits {
		wg.Wait()
	}
	return len(waits)
}

// Close ends every session (what runs in them is stopped) and waits for
// their sandboxes to be released, or ctx to end. No session is created
// after.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.stop)
	}
	all := make([]*Session, 0, len(m.open))
	for _, s := range m.open {
		all = append(all, s)
	}
	m.mu.Unlock()
	for _, s := range all {
		m.end(s, ReasonShutdown)
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); <-m.done; close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Open reports how many sessions are open.
func (m *Manager) Open() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.open)
}

// end ends s for reason, if it is open: its work is stopped, its id is
// remembered as ended, and its sandbox is released once the request
// using it has let it go. The returned group waits for that.
func (m *Manager) end(s *Session, reason string) *sync.WaitGroup {
	var wg sync.WaitGroup
	m.mu.Lock()
	if m.open[s.ID] != s {
		m.mu.Unlock()
		return &wg
	}
	delete(m.open, s.ID)
	m.closing[s.ID] = s
	e := &Ended{Reason: reason, At: time.Now()}
	m.ended[s.ID] = ended{owner: s.Owner, err: e}
	m.order = append(m.order, s.ID)
	if len(m.order) > rememberEnded {
		delete(m.ended, m.order[0])
		m.order = m.order[1:]
	}
	m.wg.Add(1)
	wg.Add(1)
	m.mu.Unlock()
	s.cancel(e)
	go func() {
		defer m.wg.Done()
		defer wg.Done()
		defer func() {
			m.mu.Lock()
			delete(m.closing, s.ID)
			m.mu.Unlock()
		}()
		// The request using the session, if any, stops (its context
		// ends with the session's) and lets it go; one that does not
		// within endGrace loses the sandbox under it.
		select {
		case s.turn <- struct{}{}:
		case <-time.After(endGrace):
			s.log.Warn("a request held the ended session past the grace; its sandbox is released under it")
		}
		s.mu.Lock()
		sb, runs, it := s.sb, s.runs, s.interp
		s.sb = nil
		s.mu.Unlock()
		if sb == nil {
			return // its creation failed
		}
		if it != nil {
			// The interpreter's run ends with the session's context.
			select {
			case <-it.done:
			case <-time.After(endGrace):
			}
		}
		sb.Release()
		m.metrics.SessionEnded(s.Language.Name, reason, runs)
		s.log.WithFields(logrus.Fields{"reason": reason, "runs": runs}).Info("session ended")
	}()
	return &wg
}

// expire ends the sessions idle longer than their idle timeout or older
// than their lifetime, every tick, until Close.
func (m *Manager) expire() {
	defer close(m.done)
	t := time.NewTicker(m.tick)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			type due struct {
				s      *Session
				reason string
			}
			var ends []due
			m.mu.Lock()
			for _, s := range m.open {
				s.mu.Lock()
				switch {
				case s.Lifetime > 0 && now.Sub(s.Created) >= s.Lifetime:
					ends = append(ends, due{s, ReasonLifetime})
				case s.Idle > 0 && s.users == 0 && now.Sub(s.lastUsed) >= s.Idle:
					ends = append(ends, due{s, ReasonIdle})
				}
				s.mu.Unlock()
			}
			m.mu.Unlock()
			for _, d := range ends {
				m.end(d.s, d.reason)
			}
		}
	}
}

// Use waits for the session's turn: one request uses it at a time. The
// caller calls Leave when done. It fails if ctx ends first, or the
// session ends (an *Ended).
func (s *Session) Use(ctx context.Context) error {
	s.mu.Lock()
	s.users++
	s.mu.Unlock()
	select {
	case s.turn <- struct{}{}:
		if err := s.Err(); err != nil {
			s.Leave()
			return err
		}
		return nil
	case <-s.ctx.Done():
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.users--
	s.lastUsed = time.Now()
	s.mu.Unlock()
	if err := s.Err(); err != nil {
		return err
	}
	return ctx.Err()
}

// Leave gives the session's turn back; its idle time starts again.
func (s *Session) Leave() {
	s.mu.Lock()
	s.users--
	s.lastUsed = time.Now()
	s.mu.Unlock()
	<-s.turn
}

// Err is the session's *Ended once it ended, nil while it is open.
func (s *Session) Err() error {
	if cause := context.Cause(s.ctx); cause != nil {
		return cause
	}
	return nil
}

// Context ends when the session does, with ErrEnded as its cause.
func (s *Session) Context() context.Context { return s.ctx }

// Ran counts a run in the session.
func (s *Session) Ran() {
	s.mu.Lock()
	s.runs++
	s.mu.Unlock()
	s.m.metrics.SessionRun(s.Language.Name)
}

// Info describes the session.
func (s *Session) Info() api.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	expires := s.Created.Add(s.Lifetime)
	if idle := s.lastUsed.Add(s.Idle); s.users == 0 && idle.Before(expires) {
		expires = idle
	}
	return api.Session{
		ID: s.ID, Language: s.Language.Name, Version: s.Language.Version,
		Limits: s.Limits, BoxBytes: s.BoxBytes,
		IdleTimeoutS: int64(s.Idle / time.Second), MaxLifetimeS: int64(s.Lifetime / time.Second),
		CreatedAt: s.Created.UTC(), LastUsedAt: s.lastUsed.UTC(), ExpiresAt: expires.UTC(),
		Runs: s.runs, Busy: s.users > 0, Mode: s.Mode,
	}
}

// Box is the session's box. The caller holds the session's turn.
func (s *Session) Box() (*sandbox.Box, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sb == nil {
		return nil, s.Err()
	}
	return s.sb.Box(), nil
}

var _ execution.Session = (*Session)(nil)

// Sandbox returns the session's sandbox, ready for a program: a sandbox
// whose last program took it whole is replaced by a fresh one, to which
// the box is copied. The caller holds the session's turn.
func (s *Session) Sandbox(ctx context.Context, log *logrus.Entry) (execution.Sandbox, error) {
	s.mu.Lock()
	old := s.sb
	s.mu.Unlock()
	if old == nil {
		return nil, s.Err()
	}
	if old.Ready() {
		return old, nil
	}
	s.log.WithField("sandbox", old.ID).Info("the session's sandbox can run no other program; it is replaced, its box copied")
	fresh, err := s.m.acquire(ctx, old.Profile(), log)
	if err != nil {
		return nil, err
	}
	box := old.Box()
	err = fresh.Box().Resize(box.Size())
	if err == nil {
		if err = fresh.Box().Empty(); err == nil {
			err = box.CopyTo(fresh.Box())
		}
	}
	if err != nil {
		// The old sandbox and its box stay: the session's files can be
		// read, and deleted, and the next run tries again.
		fresh.Release()
		if errors.Is(err, sandbox.ErrBuildTooLarge) {
			return nil, &api.Error{Code: api.CodeBodyTooLarge, HTTPStatus: 413, Field: "box",
				Message: "the session's sandbox was lost (a limit took it) and its files do not fit a fresh one (" + err.Error() + "; a sparse file counts whole): delete some with DELETE /v1/sessions/{id}/files/{path}"}
		}
		return nil, fmt.Errorf("move the session's box: %w", err)
	}
	old.Release()
	s.mu.Lock()
	s.sb = fresh
	s.mu.Unlock()
	return fresh, nil
}
