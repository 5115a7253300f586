package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/pkg/api"
)

// tokenServers serves s on the TCP listener and on the unix socket as
// root and as another user would reach it.
type tokenServers struct {
	tcp        *httptest.Server
	root, user *api.Client
}

func serveTokens(t *testing.T, s *Server) tokenServers {
	t.Helper()
	asPeer := func(uid uint32) *api.Client {
		srv := httptest.NewUnstartedServer(s)
		srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, peerKey, &unix.Ucred{Uid: uid, Pid: 1})
		}
		srv.Start()
		t.Cleanup(srv.Close)
		return api.NewHTTPClient(srv.URL, "", srv.Client())
	}
	tcp := httptest.NewServer(s.TCPHandler())
	t.Cleanup(tcp.Close)
	return tokenServers{tcp: tcp, root: asPeer(0), user: asPeer(1000)}
}

func tokenConfig(secrets ...string) config.Config {
	cfg := config.Default()
	for i, secret := range secrets {
		sum := sha256.Sum256([]byte(secret))
		cfg.Tokens = append(cfg.Tokens, config.Token{Name: []string{"judge", "agent"}[i], SHA256: hex.EncodeToString(sum[:])})
	}
	return cfg
}

func newTokenServer(t *testing.T, cfg config.Config, revocations string) *Server {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	s := New(cfg, &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}, fakePlatform{}, metrics.New(), logrus.NewEntry(log))
	if err := s.LoadRevocations(revocations); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRevokeToken: root on the unix socket lists the tokens and revokes
// one; its requests are refused at once, after a reload and after a
// restart, and the other token's still work.
func TestRevokeToken(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "state", "revoked-tokens.json")
	cfg := tokenConfig("judge-secret", "agent-secret")
	s := newTokenServer(t, cfg, file)
	srvs := serveTokens(t, s)
	status := func(secret string) int {
		return getWith(t, srvs.tcp.URL+"/v1/runtimes", "Bearer "+secret).StatusCode
	}
	if status("judge-secret") != 200 || status("agent-secret") != 200 {
		t.Fatal("the tokens do not work before the revocation")
	}

	// Only root on the unix socket.
	_, err := srvs.user.Tokens(ctx)
	wantAPIError(t, err, http.StatusForbidden, api.CodeForbidden, "only root")
	_, err = srvs.user.RevokeToken(ctx, "judge")
	wantAPIError(t, err, http.StatusForbidden, api.CodeForbidden, "only root")
	if st := getWith(t, srvs.tcp.URL+"/v1/tokens", "Bearer judge-secret").StatusCode; st != http.StatusForbidden {
		t.Fatalf("GET /v1/tokens on TCP: %d", st)
	}

	list, err := srvs.root.Tokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tokens) != 2 || list.Tokens[0].Name != "agent" || list.Tokens[1].Name != "judge" {
		t.Fatalf("tokens %+v", list.Tokens)
	}
	judge := list.Tokens[1]
	if judge.Revoked || judge.LastUsed == nil || len(judge.SHA256Prefix) != 12 || cfg.Tokens[0].SHA256[:12] != judge.SHA256Prefix || judge.MaxConcurrent != cfg.TokenLimits.MaxConcurrent {
		t.Fatalf("judge %+v", judge)
	}

	_, err = srvs.root.RevokeToken(ctx, "nosuch")
	wantAPIError(t, err, http.StatusNotFound, api.CodeNotFound, "no token named")
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a refused revocation wrote %s: %v", file, err)
	}

	got, err := srvs.root.RevokeToken(ctx, "judge")
	if err != nil || !got.Revoked || got.RevokedAt == nil {
		t.Fatalf("revoke: %+v %v", got, err)
	}
	if status("judge-secret") != http.StatusUnauthorized || status("agent-secret") != 200 {
		t.Fatal("after the revocation: the revoked token works, or the other does not")
	}
	// Again: the same answer, nothing changes.
	if again, err := srvs.root.RevokeToken(ctx, "judge"); err != nil || !again.Revoked || !again.RevokedAt.Equal(*got.RevokedAt) {
		t.Fatalf("revoking again: %+v %v", again, err)
	}
	var kept revocationFile
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &kept); err != nil || len(kept.Revoked) != 1 || kept.Revoked[0].SHA256 != cfg.Tokens[0].SHA256 {
		t.Fatalf("revocation file %s: %v", data, err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("revocation file mode %v", fi.Mode())
	}

	// A reload of the same configuration does not bring it back.
	s.Reload(cfg)
	if status("judge-secret") != http.StatusUnauthorized || status("agent-secret") != 200 {
		t.Fatal("after a reload")
	}
	list, err = srvs.root.Tokens(ctx)
	if err != nil || !list.Tokens[1].Revoked || list.Tokens[0].Revoked {
		t.Fatalf("listed after the reload: %+v %v", list, err)
	}

	// Nor does a restart.
	restarted := serveTokens(t, newTokenServer(t, cfg, file))
	if st := getWith(t, restarted.tcp.URL+"/v1/runtimes", "Bearer judge-secret").StatusCode; st != http.StatusUnauthorized {
		t.Fatalf("after a restart, the revoked token: %d", st)
	}
	if st := getWith(t, restarted.tcp.URL+"/v1/runtimes", "Bearer agent-secret").StatusCode; st != 200 {
		t.Fatalf("after a restart, the other token: %d", st)
	}
}

// A revocation file that cannot be read keeps runtimed from starting:
// it must not serve the tokens it holds.
func TestBadRevocationFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "revoked-tokens.json")
	if err := os.WriteFile(file, []byte(`{"revoked": [{"name": "x", "sha256": "zz"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	s := New(config.Default(), &fakeExecutor{}, fakePlatform{}, metrics.New(), logrus.NewEntry(log))
	if err := s.LoadRevocations(file); err == nil {
		t.Fatal("a bad revocation file was accepted")
	}
}
