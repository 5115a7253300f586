package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/pkg/api"
)

func TestNewTokenLinesAreAValidConfig(t *testing.T) {
	var out bytes.Buffer
	if err := newToken(&out, rand.Reader, "judge-1"); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	token := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(text, "\n", 2)[0], "token:"))
	if !strings.HasPrefix(token, "rtd_") || len(token) < 40 {
		t.Fatalf("token %q", token)
	}
	cfg := config.Default()
	if err := config.Decode([]byte(text[strings.Index(text, "[[tokens]]"):]), &cfg); err != nil {
		t.Fatalf("the printed lines do not decode: %v", err)
	}
	sum := sha256.Sum256([]byte(token))
	if len(cfg.Tokens) != 1 || cfg.Tokens[0].Name != "judge-1" || cfg.Tokens[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("tokens %+v", cfg.Tokens)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	_ = newToken(&again, rand.Reader, "judge-1")
	if again.String() == text {
		t.Fatal("two tokens are the same")
	}
	if err := newToken(&out, rand.Reader, "bad name"); err == nil {
		t.Fatal("a name with a space was accepted")
	}
}

// TestTokenLsAndRevoke: token ls prints the daemon's list, token revoke
// sends the revocation and says what it did; a refusal exits 2.
func TestTokenLsAndRevoke(t *testing.T) {
	used := time.Now().Add(-90 * time.Second)
	var revoked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/tokens":
			_ = json.NewEncoder(w).Encode(api.Tokens{Tokens: []api.Token{
				{Name: "agent", SHA256Prefix: "0123456789ab", RatePerMinute: 120, Burst: 20, MaxConcurrent: 4, Sessions: 2},
				{Name: "judge", SHA256Prefix: "ba9876543210", RatePerMinute: 60, Burst: 10, MaxConcurrent: 8, InUse: 3, LastUsed: &used, Revoked: true},
			}})
		case r.Method == http.MethodDelete && r.URL.Path == "/v1/tokens/agent":
			revoked = append(revoked, "agent")
			_ = json.NewEncoder(w).Encode(api.Token{Name: "agent", Revoked: true, SessionsEnded: 2})
		default:
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: api.CodeNotFound, Message: "no token named \"nosuch\""}})
		}
	}))
	defer srv.Close()
	var out, errOut strings.Builder
	if code := runMain([]string{"runtimectl", "--socket", srv.URL, "token", "ls"}, &out, &errOut); code != 0 {
		t.Fatalf("token ls: exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(lines[1], "agent") || !strings.Contains(lines[1], "active") || !strings.Contains(lines[1], "0123456789ab") ||
		!strings.Contains(lines[2], "revoked") || !strings.Contains(lines[2], "1m30s ago") {
		t.Fatalf("token ls:\n%s", out.String())
	}
	out.Reset()
	if code := runMain([]string{"runtimectl", "--socket", srv.URL, "token", "ls", "-o", "json"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), `"sha256_prefix": "ba9876543210"`) {
		t.Fatalf("token ls -o json: exit %d: %s", code, out.String())
	}
	out.Reset()
	if code := runMain([]string{"runtimectl", "--socket", srv.URL, "token", "revoke", "agent"}, &out, &errOut); code != 0 {
		t.Fatalf("token revoke: exit %d: %s", code, errOut.String())
	}
	if len(revoked) != 1 || !strings.Contains(out.String(), "revoked agent (2 sessions ended)") {
		t.Fatalf("token revoke: %v %s", revoked, out.String())
	}
	errOut.Reset()
	if code := runMain([]string{"runtimectl", "--socket", srv.URL, "token", "revoke", "nosuch"}, io.Discard, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "no token named") {
		t.Fatalf("revoking an unknown token: exit %d: %s", code, errOut.String())
	}
	if code := runMain([]string{"runtimectl", "--socket", srv.URL, "token", "revoke"}, io.Discard, io.Discard); code != exitUsage {
		t.Fatalf("token revoke without a name: exit %d", code)
	}
}
