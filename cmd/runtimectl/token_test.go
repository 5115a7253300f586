package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/internal/config"
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
