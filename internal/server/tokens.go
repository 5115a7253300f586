package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/session"
	"github.com/runtimed/runtimed/pkg/api"
)

// revocation is a revoked token, as the revocation file keeps it: the
// hash is what is refused, the name and time what an operator reads.
type revocation struct {
	Name      string    `json:"name"`
	SHA256    string    `json:"sha256"`
	RevokedAt time.Time `json:"revoked_at"`
}

type revocationFile struct {
	Revoked []revocation `json:"revoked"`
}

// revoked is the set of revoked token hashes, and where it is kept.
type revoked struct {
	path   string
	byHash map[[sha256.Size]byte]revocation
}

func (rv *revoked) has(h [sha256.Size]byte) bool {
	if rv == nil {
		return false
	}
	_, ok := rv.byHash[h]
	return ok
}

// RevocationFile is where runtimed keeps the tokens revoked by
// runtimectl token revoke: a file of the state directory.
func RevocationFile(stateDir string) string {
	return filepath.Join(stateDir, "revoked-tokens.json")
}

// LoadRevocations reads the revoked tokens from path (none if there is no
// such file) and refuses them from now on, also after a reload; a token
// revoked later is written there. A configured token found revoked is
// logged: its [[tokens]] entry can go.
func (s *Server) LoadRevocations(path string) error {
	rv := &revoked{path: path, byHash: map[[sha256.Size]byte]revocation{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read the revoked tokens: %w", err)
	default:
		var f revocationFile
		if err := json.Unmarshal(data, &f); err != nil {
			return fmt.Errorf("read the revoked tokens: %s: %w", path, err)
		}
		for _, r := range f.Revoked {
			h, err := hashOf(r.SHA256)
			if err != nil {
				return fmt.Errorf("read the revoked tokens: %s: %s: %w", path, r.Name, err)
			}
			rv.byHash[h] = r
		}
	}
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	s.revoked.Store(rv)
	st := s.state.Load()
	s.state.Store(&state{cfg: st.cfg, langs: st.langs, tokens: newTokens(st.cfg.Tokens, st.cfg.TokenLimits, st.tokens, rv)})
	s.logRevoked(st.cfg.Tokens)
	return nil
}

func hashOf(hexSum string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	raw, err := hex.DecodeString(hexSum)
	if err != nil || len(raw) != sha256.Size {
		return h, errors.New("not a SHA-256 of 64 hex digits")
	}
	copy(h[:], raw)
	return h, nil
}

// logRevoked names the configured tokens that are revoked.
func (s *Server) logRevoked(tokens []config.Token) {
	for _, t := range tokens {
		if h, err := hashOf(t.SHA256); err == nil && s.revoked.Load().has(h) {
			s.log.WithField("token", t.Name).Warn("the token is revoked (runtimectl token revoke) and refused; its [[tokens]] entry can be removed")
		}
	}
}

func (s *Server) routeTokens() {
	s.route("GET", "/v1/tokens", s.tokenAdmin(s.handleTokens))
	s.route("DELETE", "/v1/tokens/{name}", s.tokenAdmin(s.handleRevoke))
}

// tokenAdmin lets only root, on the unix socket, see and revoke tokens.
func (s *Server) tokenAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if cred, ok := r.Context().Value(peerKey).(*unix.Ucred); !ok || cred.Uid != 0 {
			s.fail(w, r, newError(api.CodeForbidden, "only root, on the unix socket, may see or revoke tokens"))
			return
		}
		h(w, r)
	}
}

func (s *Server) handleTokens(w http.ResponseWriter, r *http.Request) {
	st := stateFrom(r.Context())
	out := api.Tokens{Tokens: []api.Token{}}
	s.stateMu.Lock()
	for _, t := range st.cfg.Tokens {
		out.Tokens = append(out.Tokens, s.describeToken(st, t))
	}
	s.stateMu.Unlock()
	sort.Slice(out.Tokens, func(i, j int) bool { return out.Tokens[i].Name < out.Tokens[j].Name })
	writeJSON(w, http.StatusOK, out)
}

// describeToken says what is known of t; tokensMu is held.
func (s *Server) describeToken(st *state, t config.Token) api.Token {
	lim := t.Limits(st.cfg.TokenLimits)
	out := api.Token{
		Name: t.Name, SHA256Prefix: t.SHA256[:12],
		RatePerMinute: lim.RatePerMinute, Burst: lim.Burst, MaxConcurrent: lim.MaxConcurrent,
	}
	if c := st.tokens.find(t.Name); c != nil {
		out.InUse = len(c.slots)
		if ns := c.lastUsed.Load(); ns != 0 {
			at := time.Unix(0, ns).UTC()
			out.LastUsed = &at
		}
	}
	if s.sessions != nil {
		out.Sessions = len(s.sessions.List("token:" + t.Name))
	}
	if h, err := hashOf(t.SHA256); err == nil && s.revoked.Load() != nil {
		if rv, ok := s.revoked.Load().byHash[h]; ok {
			out.Revoked = true
			at := rv.RevokedAt
			out.RevokedAt = &at
		}
	}
	return out
}

// handleRevoke revokes a configured token: its hash is written to the
// revocation file (so a restart or reload does not bring it back), its
// requests are refused from now on, and its sessions end. A request of
// it already under way runs to its end.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.stateMu.Lock()
	st := s.state.Load()
	var found *config.Token
	for i := range st.cfg.Tokens {
		if st.cfg.Tokens[i].Name == name {
			found = &st.cfg.Tokens[i]
		}
	}
	if found == nil {
		s.stateMu.Unlock()
		s.fail(w, r, newError(api.CodeNotFound, "no token named %q in the configuration; runtimectl token ls lists them", name))
		return
	}
	h, _ := hashOf(found.SHA256) // validated with the configuration
	prev := s.revoked.Load()
	if prev == nil {
		s.stateMu.Unlock()
		s.fail(w, r, newError(api.CodeUnavailable, "token revocation is not set up in this daemon"))
		return
	}
	fresh := !prev.has(h)
	if fresh {
		next := &revoked{path: prev.path, byHash: map[[sha256.Size]byte]revocation{}}
		for k, v := range prev.byHash {
			next.byHash[k] = v
		}
		next.byHash[h] = revocation{Name: name, SHA256: found.SHA256, RevokedAt: time.Now().UTC().Truncate(time.Second)}
		if err := next.save(); err != nil {
			s.stateMu.Unlock()
			s.internal(w, r, "could not write the revoked tokens", err)
			return
		}
		s.revoked.Store(next)
		// From here on, the state's tokens no longer hold it.
		s.state.Store(&state{cfg: st.cfg, langs: st.langs, tokens: newTokens(st.cfg.Tokens, st.cfg.TokenLimits, st.tokens, next)})
	}
	out := s.describeToken(st, *found)
	s.stateMu.Unlock()
	if s.sessions != nil {
		out.SessionsEnded = s.sessions.EndOwner("token:"+name, session.ReasonRevoked)
		out.Sessions = 0
	}
	if fresh {
		logFrom(r.Context()).WithFields(logrus.Fields{"token": name, "sessions_ended": out.SessionsEnded}).Warn("token revoked")
	}
	writeJSON(w, http.StatusOK, out)
}

// save writes the revocation file whole: a new file renamed over the
// old, so that a crash leaves one or the other.
func (rv *revoked) save() error {
	f := revocationFile{Revoked: []revocation{}}
	for _, r := range rv.byHash {
		f.Revoked = append(f.Revoked, r)
	}
	sort.Slice(f.Revoked, func(i, j int) bool { return f.Revoked[i].Name < f.Revoked[j].Name })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(rv.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(rv.path), ".revoked-tokens-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), rv.path); err != nil {
		return err
	}
	// The rename itself is kept only once the directory is.
	dir, err := os.Open(filepath.Dir(rv.path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// tokenRevoked reports whether c's token has been revoked.
func (s *Server) tokenRevoked(c *client) bool {
	return c != nil && s.revoked.Load().has(c.hash)
}
