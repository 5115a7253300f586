package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/internal/server"
	"github.com/runtimed/runtimed/pkg/api"
)

func runApp(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(append([]string{"runtimed"}, args...))
	return out.String(), err
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runtimed.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigUnknownKeyIsNamed(t *testing.T) {
	p := writeConfig(t, "socket = \"/a.sock\"\n[defaults]\nmemory_byts = 1\n")
	_, err := runApp(t, "--config", p, "config")
	if err == nil || !strings.Contains(err.Error(), "defaults.memory_byts") {
		t.Fatalf("error %v does not name the unknown key", err)
	}
}

func TestFlagsOverrideTheFile(t *testing.T) {
	p := writeConfig(t, "socket = \"/from/file.sock\"\ncontainerd = \"/from/file/containerd.sock\"\n")
	out, err := runApp(t, "--config", p, "--socket", "/from/flag.sock", "--containerd", "/flag/containerd.sock", "config")
	if err != nil {
		t.Fatal(err)
	}
	var cfg config.Config
	if err := config.DecodeStrict([]byte(out), &cfg); err != nil {
		t.Fatalf("config output does not decode strictly: %v\n%s", err, out)
	}
	if cfg.Socket != "/from/flag.sock" || cfg.Containerd != "/flag/containerd.sock" {
		t.Fatalf("socket %q containerd %q", cfg.Socket, cfg.Containerd)
	}
}

func TestMissingConfigThatWasAskedFor(t *testing.T) {
	_, err := runApp(t, "--config", filepath.Join(t.TempDir(), "nope.toml"), "config")
	if err == nil {
		t.Fatal("a missing --config file was accepted")
	}
}

func TestInvalidConfigIsRefused(t *testing.T) {
	p := writeConfig(t, "[sandbox]\nuid = 0\n")
	_, err := runApp(t, "--config", p, "config")
	if err == nil || !strings.Contains(err.Error(), "root") {
		t.Fatalf("error %v", err)
	}
}

// A request with a language's default limits must find the language's
// pool: the pools' profiles and the requests' are computed apart (here
// and in internal/server), so they are tied by this test.
func TestPoolProfilesAreTheRequestsDefaults(t *testing.T) {
	cfg := config.Default()
	pools := map[sandbox.Profile]bool{}
	for _, p := range poolConfigs(cfg) {
		pools[p.Profile] = true
	}
	for _, l := range language.NewRegistry(cfg).All() {
		if cfg.Languages[l.Name].PoolSize == 0 {
			continue
		}
		type stage struct {
			name     string
			def, max config.Limits
		}
		stages := []stage{{"run", l.Defaults, cfg.Maximums}}
		if l.Compiled() {
			stages = append(stages, stage{"compile", l.CompileDefaults, cfg.CompileMaximums})
		}
		for _, st := range stages {
			limits, aerr := server.ResolveLimits(st.name, api.Limits{}, st.def, st.max)
			if aerr != nil {
				t.Fatal(aerr)
			}
			if p := sandbox.ProfileOf(l.Image, limits); !pools[p] {
				t.Errorf("%s: a %s stage at the default limits wants %+v, which no pool holds", l.Name, st.name, p)
			}
		}
	}
}
