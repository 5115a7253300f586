package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/pkg/api"
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
	// The languages are built in (languages/*.toml), not in the file.
	want := Default()
	want.Languages = nil
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("packaging/runtimed.toml differs from config.Default():\n file %+v\n code %+v", cfg, want)
	}
	cfg.Languages = Default().Languages
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
	if cfg.Socket != "/tmp/s.sock" || cfg.Defaults.CPU != 0.25 || cfg.Defaults.MemoryBytes != 128*miB {
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
		{"a version twice", func(c *Config) {
			l := c.Languages["python"]
			l.Name = "python" // the same version as languages.python
			c.Languages["python-again"] = l
		}, "is also languages.python"},
		{"another language's name", func(c *Config) {
			l := c.Languages["ruby"]
			l.Aliases = []string{"node"}
			c.Languages["ruby-2"] = Language{Name: "ruby", Version: "2.7.0", Image: l.Image, Run: l.Run, Extension: l.Extension, Aliases: l.Aliases}
		}, `"node" is already used by javascript`},
		{"a package that is an option", func(c *Config) {
			l := c.Languages["python"]
			l.Packages = []string{"python3-numpy", "--force-yes"}
			c.Languages["python"] = l
		}, `languages.python.packages: "--force-yes"`},
		{"two tokens of one hash", func(c *Config) {
			h := strings.Repeat("ab", 32)
			c.Tokens = []Token{{Name: "judge", SHA256: h}, {Name: "agent", SHA256: strings.ToUpper(h)}}
		}, "tokens[1] (agent): the same sha256 as judge"},
		{"a name in capitals", func(c *Config) {
			l := c.Languages["python"]
			l.Name, l.Version = "Python", "3.99.0"
			c.Languages["python-3.99"] = l
		}, `languages.python-3.99.name "Python"`},
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

// A language may have several versions, one table each under a name of
// their own; they may share aliases.
func TestLanguageVersions(t *testing.T) {
	cfg := Default()
	l := cfg.Languages["python"]
	l.Name, l.Version, l.Image = "python", "3.99.1", "runtimed.local/python:3.99"
	cfg.Languages["python-3.99"] = l
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := LanguageName("python-3.99", l); got != "python" {
		t.Fatalf("name %q", got)
	}
	if got := LanguageName("python", cfg.Languages["python"]); got != "python" {
		t.Fatalf("name %q", got)
	}
}

// The languages' packages, by the image they go into.
func TestWithExtraPackages(t *testing.T) {
	cfg := Default()
	py := cfg.Languages["python"]
	py.Packages = []string{"python3-numpy", "python3-pandas"}
	cfg.Languages["python"] = py
	other := py
	other.Name, other.Version, other.Packages = "python", "3.11.9", []string{"python3-scipy", "python3-numpy"}
	cfg.Languages["python-again"] = other
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	im := cfg.WithExtraPackages()
	if got := strings.Join(im.ExtraPackages[py.Image], " "); got != "python3-numpy python3-pandas python3-scipy" {
		t.Fatalf("python's image gets %q", got)
	}
	if len(im.ExtraPackages) != 1 || cfg.Images.ExtraPackages != nil {
		t.Fatalf("extra packages %v; the config's own images section %v", im.ExtraPackages, cfg.Images.ExtraPackages)
	}
}

// Languages come from the built-in files, then languages_dir, then the
// config's own tables, each replacing the one before per language.
func TestLanguagesDir(t *testing.T) {
	dir := t.TempDir()
	langs := filepath.Join(dir, "languages.d")
	if err := os.Mkdir(langs, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(langs, "lua.toml"), `
[languages.lua]
version = "5.4.4"
extension = ".lua"
image = "runtimed.local/lua:5.4"
run = ["/usr/bin/lua5.4", "{entry}"]
limits = { memory_bytes = 67108864, wall_time_ms = 2000 }
`)
	write(filepath.Join(langs, "python.toml"), `
[languages.python]
version = "3.11.9"
extension = ".py"
image = "example/python:3.11"
run = ["/usr/bin/python3", "{entry}"]
`)
	write(filepath.Join(langs, "README"), "not a language file")
	cfgPath := filepath.Join(dir, "runtimed.toml")
	write(cfgPath, "languages_dir = "+strconv.Quote(langs)+`
[languages.lua]
version = "5.4.6"
extension = ".lua"
image = "runtimed.local/lua:5.4"
run = ["/usr/bin/lua5.4", "{entry}"]
`)
	cfg, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Languages["python"].Image != "example/python:3.11" {
		t.Errorf("languages_dir did not replace the built-in python: %+v", cfg.Languages["python"])
	}
	if cfg.Languages["lua"].Version != "5.4.6" || cfg.Languages["lua"].Limits.MemoryBytes != 0 {
		t.Errorf("the config's own table did not win: %+v", cfg.Languages["lua"])
	}
	if cfg.Languages["java"].Image == "" {
		t.Error("a built-in language was lost")
	}

	write(filepath.Join(langs, "bad.toml"), "[languages.bad]\nimage = \"x\"\ncommand = 1\n")
	if _, err := Load(cfgPath); err == nil || !strings.Contains(err.Error(), "bad.toml") || !strings.Contains(err.Error(), "command") {
		t.Fatalf("a bad language file: %v", err)
	}
}

// A language's own default limits may not exceed the maximums, nor go
// below what a sandbox needs.
func TestLanguageLimits(t *testing.T) {
	for _, tc := range []struct {
		limits, compile Limits
		wantErr         string
	}{
		{Limits{MemoryBytes: 256 * miB, WallTimeMS: 10000}, Limits{}, ""},
		{Limits{}, Limits{MemoryBytes: 1024 * miB}, ""},
		{Limits{MemoryBytes: 1024 * miB}, Limits{}, "languages.python.limits.memory_bytes"},
		{Limits{}, Limits{CPU: 4}, "languages.python.compile_limits.cpu"},
		{Limits{WallTimeMS: 5}, Limits{}, "languages.python.limits.wall_time_ms"},
	} {
		cfg := Default()
		py := cfg.Languages["python"]
		py.Limits, py.CompileLimits = tc.limits, tc.compile
		cfg.Languages["python"] = py
		err := cfg.Validate()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v / %+v: error %v, want %q", tc.limits, tc.compile, err, tc.wantErr)
		}
	}
	if got := (Limits{MemoryBytes: 1, Pids: 2}).Over(Default().Defaults); got.MemoryBytes != 1 || got.Pids != 2 || got.CPU != Default().Defaults.CPU {
		t.Errorf("Over: %+v", got)
	}
}

// The configuration's defaults and maximums are held to the minimums a
// request is (api.MinLimits): at them a configuration loads, below any of
// them it does not, with an error naming the field.
func TestLimitsMinimums(t *testing.T) {
	minimum := api.MinLimits()
	cfg := Default()
	cfg.Defaults, cfg.CompileDefaults = minimum, minimum
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the minimums: %v", err)
	}
	for _, f := range api.LimitFields() {
		cfg := Default()
		below := minimum
		var zero api.Limits
		f.Copy(&below, zero)
		cfg.Defaults = below
		err := cfg.Validate()
		if want := "defaults." + f.Name + " must be at least " + f.Describe(minimum); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s below its minimum: error %v, want %q", f.Name, err, want)
		}
	}
	cfg = Default()
	cfg.Maximums.MemoryBytes = minimum.MemoryBytes - 1
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "maximums.memory_bytes must be at least") {
		t.Errorf("a byte under the memory minimum: %v", err)
	}
}
