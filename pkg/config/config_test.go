package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The packaged config documents every key with its default: decoded
// strictly over nothing, it must be exactly the built-in defaults.
func TestPackagedConfigIsTheDefaults(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "packaging", "runtimed.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := DecodeStrict(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("packaging/runtimed.toml differs from config.Default():\n file %+v\n code %+v", cfg, Default())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownKeyIsNamed(t *testing.T) {
	for _, tc := range []struct{ toml, key string }{
		{"sockett = \"/x\"", "sockett"},
		{"[defaults]\nmemory = 5", "defaults.memory"},
		{"[languages.python]\nimage = \"x\"\nrun = [\"x\"]\nextension = \".py\"\ncmd = 1", "languages.python.cmd"},
	} {
		cfg := Default()
		err := Decode([]byte(tc.toml), &cfg)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v does not name %q", tc.toml, err, tc.key)
		}
	}
}

func TestDecodeOverridesDefaults(t *testing.T) {
	cfg := Default()
	err := Decode([]byte(`
socket = "/tmp/s.sock"
[defaults]
cpu = 0.25
[languages.ruby]
version = "3.1"
extension = ".rb"
image = "runtimed.local/ruby:3.1"
run = ["/usr/bin/ruby", "{entry}"]
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Socket != "/tmp/s.sock" || cfg.Defaults.CPU != 0.25 || cfg.Defaults.MemoryBytes != 128*MiB {
		t.Fatalf("override not applied over defaults: %+v", cfg)
	}
	if _, ok := cfg.Languages["python"]; !ok {
		t.Fatal("adding a language dropped the built-in ones")
	}
	if cfg.Languages["ruby"].Image != "runtimed.local/ruby:3.1" {
		t.Fatalf("ruby: %+v", cfg.Languages["ruby"])
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"root user", func(c *Config) { c.Sandbox.UID = 0 }, "must not be root"},
		{"default above maximum", func(c *Config) { c.Defaults.MemoryBytes = c.Maximums.MemoryBytes + 1 }, "defaults.memory_bytes"},
		{"no cpu", func(c *Config) { c.Maximums.CPU = 0 }, "maximums.cpu"},
		{"relative state dir", func(c *Config) { c.StateDir = "state" }, "state_dir"},
		{"alias clash", func(c *Config) {
			l := c.Languages["javascript"]
			l.Aliases = append(l.Aliases, "py")
			c.Languages["javascript"] = l
		}, `"py" is already used`},
		{"no run command", func(c *Config) {
			l := c.Languages["python"]
			l.Run = nil
			c.Languages["python"] = l
		}, "languages.python.run"},
		{"no concurrency", func(c *Config) { c.Requests.MaxConcurrent = 0 }, "max_concurrent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Default()
			tt.change(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
