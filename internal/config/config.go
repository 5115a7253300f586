// Package config owns runtimed's configuration: its defaults, the strict
// TOML file that overrides them, and the checks a configuration must pass
// before the daemon uses it.
package config

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/pelletier/go-toml/v2"

	"github.com/runtimed/runtimed/pkg/api"
)

// Limits are the per-stage resource limits: the defaults a request gets
// and the maxima it may ask for. They are the API's own type, so the
// request's limits, the configuration's and their one table of minimums
// (api.MinLimits) cannot drift apart.
type Limits = api.Limits

// Language is how one language is built and run: which image, which
// commands. In commands, {entry} stands for the entry file, {entry_stem}
// for it without its extension, {sources} for
// every source file (one argument each), {main_class} for the class with
// a main method among the compiled classes, and {memory_bytes} for the
// stage's memory limit.
type Language struct {
	// Name is the language's name where the table's key is not: a
	// language has several versions, one table each, that share a name
	// ([languages."python-3.11"] with name = "python"). Empty: the key.
	Name string `toml:"name"`
	// Version is the language's version in semver form (major, or
	// major.minor, or major.minor.patch); requests select it with a
	// semver range such as "3", "3.11.x" or "*", the newest that matches.
	Version string   `toml:"version"`
	Aliases []string `toml:"aliases"`
	// Runtime names what runs the language when that is not its name
	// (gcc for C, node for JavaScript); the Piston API reports it.
	Runtime   string `toml:"runtime"`
	Extension string `toml:"extension"`
	Image     string `toml:"image"`
	// EntryNamePattern, if set, names a request's first file when the
	// request gives it no name (the Piston API allows that): a regular
	// expression run on the file's content whose first group, with the
	// extension, is the name. Java uses it to name the file after its
	// public class, as javac requires.
	EntryNamePattern string `toml:"entry_name_pattern"`
	// Compile, if set, is the compile stage's command line.
	Compile []string `toml:"compile"`
	// Sources are the extensions of the files {sources} stands for;
	// Extension alone if empty.
	Sources []string `toml:"sources"`
	// Run is the run stage's command line; the request's args follow it.
	Run []string `toml:"run"`
	Env []string `toml:"env"`
	// MemoryErrors are messages by which the runtime reports that it ran
	// out of memory on its own (a JVM's OutOfMemoryError): a stage that
	// fails with one in its output gets memory_limit.
	MemoryErrors []string `toml:"memory_errors"`
	// Limits and CompileLimits are the language's own defaults, where
	// they differ from [defaults] and [compile_defaults]: a zero field
	// takes the global default. They may not exceed the maximums.
	Limits        Limits `toml:"limits"`
	CompileLimits Limits `toml:"compile_limits"`
	// PoolSize is how many sandboxes of this language a warm pool may
	// hold ready, per stage (a compiled language has a compile pool and a
	// run pool); 0 turns the pool off. A pool holds one, grows while
	// requests find it empty, and shrinks when they stop.
	PoolSize int `toml:"pool_size"`
	// Packages are Debian packages added to the language's image: its
	// recipe's build (the recipe whose reference is Image) installs them
	// with the recipe's own, so an operator adds libraries without a
	// recipe of their own.
	Packages []string `toml:"packages"`
}

// Runtime says how containerd starts a sandbox.
type Runtime struct {
	// Type is the containerd shim, e.g. io.containerd.runc.v2.
	Type string `toml:"type"`
	// Binary is the OCI runtime the runc shim executes (a runsc wrapper);
	// empty for shims that need no BinaryName, like io.containerd.runsc.v1.
	Binary      string `toml:"binary"`
	Snapshotter string `toml:"snapshotter"`
	// Init is runtimed-init on the host, every sandbox's first process.
	// Empty: next to the runtimed binary, else /usr/lib/runtimed/runtimed-init.
	Init string `toml:"init"`
}

// Images says where the language images come from: the recipes runtimed
// builds them from, the cache of built images, and the Debian mirror.
type Images struct {
	// Recipes is the directory of image recipes (*.toml), one per language.
	Recipes string `toml:"recipes"`
	// Cache holds built images as OCI layouts, one per recipe digest, so
	// an unchanged recipe is never built twice.
	Cache string `toml:"cache"`
	// Mirror is the Debian mirror the builds install packages from.
	Mirror string `toml:"mirror"`
	// MaxImportBytes caps an image archive sent to POST /v1/images/import.
	MaxImportBytes int64 `toml:"max_import_bytes"`
	// ExtraPackages are the languages' packages by image reference
	// (Config.WithExtraPackages fills it): a build of that image's recipe
	// installs them too.
	ExtraPackages map[string][]string `toml:"-"`
}

// WithExtraPackages is c's images section with ExtraPackages filled in
// from the languages' packages.
func (c Config) WithExtraPackages() Images {
	im := c.Images
	im.ExtraPackages = map[string][]string{}
	for _, l := range c.Languages {
		for _, p := range l.Packages {
			if !slices.Contains(im.ExtraPackages[l.Image], p) {
				im.ExtraPackages[l.Image] = append(im.ExtraPackages[l.Image], p)
			}
		}
	}
	for _, ps := range im.ExtraPackages {
		slices.Sort(ps)
	}
	return im
}

// DebianPackage matches a Debian package name (Debian policy 5.6.7): it
// can never read as an option to apt.
var DebianPackage = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// Pool bounds the warm pools together.
type Pool struct {
	// Enabled turns every language's pool on (as its pool_size says) or
	// off: every request then gets a new sandbox.
	Enabled bool `toml:"enabled"`
	// MemoryBytes bounds the memory all idle pooled sandboxes hold
	// together, as measured in their cgroups.
	MemoryBytes int64 `toml:"memory_bytes"`
}

// Sandbox holds the hardening that every execution gets.
type Sandbox struct {
	UID uint32 `toml:"uid"`
	GID uint32 `toml:"gid"`
	// BoxBytes caps the writable working directory /box.
	BoxBytes int64 `toml:"box_bytes"`
	// BoxInodes caps the number of files and directories in /box.
	BoxInodes int64 `toml:"box_inodes"`
	// TmpBytes caps the writable /tmp.
	TmpBytes int64 `toml:"tmp_bytes"`
	// OpenFiles is RLIMIT_NOFILE.
	OpenFiles uint64 `toml:"open_files"`
}

// Requests caps what a request may carry.
type Requests struct {
	MaxBodyBytes  int64 `toml:"max_body_bytes"`
	MaxCodeBytes  int64 `toml:"max_code_bytes"`
	MaxStdinBytes int64 `toml:"max_stdin_bytes"`
	MaxFiles      int   `toml:"max_files"`
	MaxArgs       int   `toml:"max_args"`
	MaxArgBytes   int64 `toml:"max_arg_bytes"`
	// MaxTests is the most tests one request may carry.
	MaxTests int `toml:"max_tests"`
	// MaxConcurrent sandboxes are in use at once, each by one stage of a
	// request (the compile, the run, one test); MaxQueued stages wait for
	// one, in their order of arrival. A request whose first stage finds
	// the queue full, or waits longer than MaxQueueWaitMS, is answered
	// 503; a later stage of a request under way only waits.
	MaxConcurrent  int   `toml:"max_concurrent"`
	MaxQueued      int   `toml:"max_queued"`
	MaxQueueWaitMS int64 `toml:"max_queue_wait_ms"`
	// DeadlineMS bounds a whole request, its waits included, unless it
	// asks for another deadline (deadline_ms), at most MaxDeadlineMS. At
	// the deadline the stage running is stopped (timeout) and the tests
	// not yet run are skipped.
	DeadlineMS    int64 `toml:"deadline_ms"`
	MaxDeadlineMS int64 `toml:"max_deadline_ms"`
}

// Sessions bounds the sessions: sandboxes that live across requests.
type Sessions struct {
	// Enabled turns the sessions API on.
	Enabled bool `toml:"enabled"`
	// MaxOpen sessions exist at once, MaxPerClient of them for one client
	// (a token on TCP, a user on the unix socket).
	MaxOpen      int `toml:"max_open"`
	MaxPerClient int `toml:"max_per_client"`
	// MemoryBytes bounds the memory limits and boxes (a tmpfs each) of
	// all open sessions together: a session that would pass it is
	// refused (503).
	MemoryBytes int64 `toml:"memory_bytes"`
	// BoxBytes is a session's /box size unless it asks for another, at
	// most MaxBoxBytes.
	BoxBytes    int64 `toml:"box_bytes"`
	MaxBoxBytes int64 `toml:"max_box_bytes"`
	// IdleTimeoutS ends a session unused that long, unless it asks for
	// another timeout, at most MaxIdleTimeoutS.
	IdleTimeoutS    int64 `toml:"idle_timeout_s"`
	MaxIdleTimeoutS int64 `toml:"max_idle_timeout_s"`
	// LifetimeS ends a session that long after its creation, unless it
	// asks for another lifetime, at most MaxLifetimeS.
	LifetimeS    int64 `toml:"lifetime_s"`
	MaxLifetimeS int64 `toml:"max_lifetime_s"`
}

// HTTP bounds what a client may do to a listener.
type HTTP struct {
	// ReadHeaderTimeoutMS bounds the reading of a request's headers.
	ReadHeaderTimeoutMS int64 `toml:"read_header_timeout_ms"`
	// ReadTimeoutMS bounds the reading of a whole request, body included,
	// which happens before the request may take an execution slot.
	ReadTimeoutMS int64 `toml:"read_timeout_ms"`
	// IdleTimeoutMS closes a kept-alive connection with no request.
	IdleTimeoutMS  int64 `toml:"idle_timeout_ms"`
	MaxHeaderBytes int   `toml:"max_header_bytes"`
}

// TokenLimits bound what one API token may do on the TCP listener.
type TokenLimits struct {
	// RatePerMinute is the sustained request rate; Burst how many requests
	// may come at once above it.
	RatePerMinute float64 `toml:"rate_per_minute"`
	Burst         int     `toml:"burst"`
	// MaxConcurrent sandboxes in use at once by the token's requests
	// (requests.max_concurrent bounds them all).
	MaxConcurrent int `toml:"max_concurrent"`
}

// Token is one client's credential for the TCP listener: a name and the
// SHA-256 of the secret, never the secret.
type Token struct {
	Name   string `toml:"name"`
	SHA256 string `toml:"sha256"`
	// Limits override [token_limits] where set (non-zero).
	RatePerMinute float64 `toml:"rate_per_minute,omitempty"`
	Burst         int     `toml:"burst,omitempty"`
	MaxConcurrent int     `toml:"max_concurrent,omitempty"`
}

// Limits returns the token's limits, its own where set, else def.
func (t Token) Limits(def TokenLimits) TokenLimits {
	if t.RatePerMinute > 0 {
		def.RatePerMinute = t.RatePerMinute
	}
	if t.Burst > 0 {
		def.Burst = t.Burst
	}
	if t.MaxConcurrent > 0 {
		def.MaxConcurrent = t.MaxConcurrent
	}
	return def
}

// Config is the whole of runtimed's configuration.
type Config struct {
	// Socket is the unix socket the API listens on.
	Socket string `toml:"socket"`
	// ListenTCP, if set (host:port), adds a TCP listener on which every
	// request needs a bearer token.
	ListenTCP string `toml:"listen_tcp"`
	// MetricsListen, if set (host:port), serves /metrics alone there,
	// without a token, for Prometheus.
	MetricsListen string `toml:"metrics_listen"`
	// ShutdownTimeoutMS is how long executions under way may take to finish
	// after SIGTERM; those still running then are stopped and answered 503.
	ShutdownTimeoutMS int64 `toml:"shutdown_timeout_ms"`
	// SocketGroup owns the socket, if the group exists.
	SocketGroup string `toml:"socket_group"`
	// Containerd is the address of containerd's GRPC socket.
	Containerd string `toml:"containerd"`
	// Namespace is the containerd namespace runtimed works in.
	Namespace string `toml:"namespace"`
	// Instance names this daemon; its sandboxes carry it in a label so that
	// several daemons can share one containerd.
	Instance string `toml:"instance"`
	// StateDir holds the per-run working directories.
	StateDir string `toml:"state_dir"`
	// PistonWithoutToken lets requests to the Piston API (/api/v2) on the
	// TCP listener in without a token, for deployments that authenticate
	// in NGINX. They are still bounded by [requests], not by a token's
	// limits.
	PistonWithoutToken bool `toml:"piston_without_token"`
	// LanguagesDir holds more languages, a file each of [languages.NAME]
	// tables; a language there replaces the built-in one of its name, and
	// one in this file replaces both.
	LanguagesDir string `toml:"languages_dir"`
	// LogLevel is logrus's level name.
	LogLevel string `toml:"log_level"`

	HTTP        HTTP        `toml:"http"`
	TokenLimits TokenLimits `toml:"token_limits"`
	Tokens      []Token     `toml:"tokens"`

	Runtime  Runtime  `toml:"runtime"`
	Images   Images   `toml:"images"`
	Pool     Pool     `toml:"pool"`
	Sandbox  Sandbox  `toml:"sandbox"`
	Requests Requests `toml:"requests"`
	Sessions Sessions `toml:"sessions"`
	Defaults Limits   `toml:"defaults"`
	Maximums Limits   `toml:"maximums"`
	// The compile stage's limits: a compiler needs more than a snippet.
	CompileDefaults Limits              `toml:"compile_defaults"`
	CompileMaximums Limits              `toml:"compile_maximums"`
	Languages       map[string]Language `toml:"languages"`
	// LanguageFiles names the file each language's table came from,
	// where Load read one (a file of languages_dir, or the config), so
	// that an error in it names the file.
	LanguageFiles map[string]string `toml:"-"`
}

const (
	kiB = 1 << 10
	miB = 1 << 20
	giB = 1 << 30
)

// MinDeadlineMS is the shortest deadline a request may have.
const MinDeadlineMS = 1000

// Default returns the configuration runtimed uses when a file sets
// nothing: the safe defaults.
func Default() Config {
	return Config{
		Socket:            "/run/runtimed/runtimed.sock",
		SocketGroup:       "runtimed",
		Containerd:        "/run/containerd/containerd.sock",
		Namespace:         "runtimed",
		Instance:          "runtimed",
		StateDir:          "/var/lib/runtimed",
		LanguagesDir:      "/etc/runtimed/languages.d",
		LogLevel:          "info",
		ShutdownTimeoutMS: 30000,
		HTTP: HTTP{
			ReadHeaderTimeoutMS: 5000,
			ReadTimeoutMS:       30000,
			IdleTimeoutMS:       120000,
			MaxHeaderBytes:      16 * kiB,
		},
		TokenLimits: TokenLimits{
			RatePerMinute: 120,
			Burst:         20,
			MaxConcurrent: 2,
		},
		Runtime: Runtime{
			Type:        "io.containerd.runc.v2",
			Binary:      "/usr/lib/runtimed/runsc-runtimed",
			Snapshotter: "overlayfs",
		},
		Images: Images{
			Recipes:        "/usr/share/runtimed/images",
			Cache:          "/var/cache/runtimed/images",
			Mirror:         "http://deb.debian.org/debian",
			MaxImportBytes: 4 * giB,
		},
		Pool: Pool{Enabled: true, MemoryBytes: 1024 * miB},
		Sandbox: Sandbox{
			UID:       65534,
			GID:       65534,
			BoxBytes:  16 * miB,
			BoxInodes: 16384,
			TmpBytes:  16 * miB,
			OpenFiles: 256,
		},
		Requests: Requests{
			MaxBodyBytes:   2 * miB,
			MaxCodeBytes:   64 * kiB,
			MaxStdinBytes:  1 * miB,
			MaxFiles:       32,
			MaxArgs:        64,
			MaxArgBytes:    4 * kiB,
			MaxTests:       64,
			MaxConcurrent:  4,
			MaxQueued:      64,
			MaxQueueWaitMS: 10_000,
			DeadlineMS:     60_000,
			MaxDeadlineMS:  300_000,
		},
		Sessions: Sessions{
			Enabled:         true,
			MaxOpen:         32,
			MaxPerClient:    8,
			MemoryBytes:     4 * giB,
			BoxBytes:        64 * miB,
			MaxBoxBytes:     256 * miB,
			IdleTimeoutS:    600,
			MaxIdleTimeoutS: 3600,
			LifetimeS:       3600,
			MaxLifetimeS:    86400,
		},
		Defaults: Limits{
			MemoryBytes: 128 * miB,
			CPU:         0.5,
			WallTimeMS:  5000,
			CPUTimeMS:   5000,
			Pids:        64,
			OutputBytes: 64 * kiB,
		},
		Maximums: Limits{
			MemoryBytes: 512 * miB,
			CPU:         2,
			WallTimeMS:  30000,
			CPUTimeMS:   30000,
			Pids:        256,
			OutputBytes: 1 * miB,
		},
		CompileDefaults: Limits{
			MemoryBytes: 512 * miB,
			CPU:         1,
			WallTimeMS:  10000,
			CPUTimeMS:   10000,
			Pids:        128,
			OutputBytes: 64 * kiB,
		},
		CompileMaximums: Limits{
			MemoryBytes: 1024 * miB,
			CPU:         2,
			WallTimeMS:  30000,
			CPUTimeMS:   30000,
			Pids:        256,
			OutputBytes: 1 * miB,
		},
		Languages: DefaultLanguages(),
	}
}

// builtin holds the languages runtimed knows without a config: one file
// per language, each a [languages.NAME] table as a config file would have
// it.
//
//go:embed languages/*.toml
var builtin embed.FS

// DefaultLanguages are the languages runtimed knows without a config
// file. A [languages.NAME] table in a file of languages_dir or in the
// config replaces the entry whole.
func DefaultLanguages() map[string]Language {
	out := map[string]Language{}
	names, _ := fs.Glob(builtin, "languages/*.toml")
	for _, name := range names {
		data, _ := builtin.ReadFile(name)
		langs, err := decodeLanguages(data)
		if err != nil {
			// Built in and checked by the tests: cannot happen in a build
			// that passed them.
			panic(fmt.Sprintf("built-in %s: %v", name, err))
		}
		for k, v := range langs {
			out[k] = v
		}
	}
	return out
}

// decodeLanguages decodes a file of [languages.NAME] tables, strictly.
func decodeLanguages(data []byte) (map[string]Language, error) {
	var f struct {
		Languages map[string]Language `toml:"languages"`
	}
	if err := DecodeStrict(data, &f); err != nil {
		return nil, err
	}
	return f.Languages, nil
}

// loadLanguagesDir reads every *.toml file of dir, in name order: each
// holds [languages.NAME] tables. A missing directory holds none.
func loadLanguagesDir(dir string) (map[string]Language, map[string]string, error) {
	out, files := map[string]Language{}, map[string]string{}
	if dir == "" {
		return out, files, nil
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, nil, err
		}
		langs, err := decodeLanguages(data)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		for k, v := range langs {
			out[k], files[k] = v, name
		}
	}
	return out, files, nil
}

// Load reads the TOML file at path over the defaults. Unknown keys are an
// error that names them.
//
// Languages come from three places, each replacing the one before per
// language: the built-in ones, the files of languages_dir, and the
// config's own [languages.NAME] tables.
func Load(path string) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	own, err := decode(data, &cfg)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	fromDir, files, err := loadLanguagesDir(cfg.LanguagesDir)
	if err != nil {
		return cfg, fmt.Errorf("languages_dir: %w", err)
	}
	cfg.LanguageFiles = map[string]string{}
	for name, l := range fromDir {
		if _, set := own[name]; !set {
			cfg.Languages[name] = l
			cfg.LanguageFiles[name] = files[name]
		}
	}
	for name := range own {
		cfg.LanguageFiles[name] = path
	}
	return cfg, nil
}

// Decode decodes TOML data over cfg, strictly.
func Decode(data []byte, cfg *Config) error {
	_, err := decode(data, cfg)
	return err
}

// decode is Decode; it also returns the file's own language tables.
func decode(data []byte, cfg *Config) (map[string]Language, error) {
	// A language table in the file replaces the built-in one whole, so
	// decode languages apart and merge after.
	if err := DecodeStrict(data, cfg); err != nil {
		return nil, err
	}
	var own struct {
		Languages map[string]Language `toml:"languages"`
	}
	if err := toml.Unmarshal(data, &own); err != nil {
		return nil, err
	}
	if len(own.Languages) > 0 {
		merged := DefaultLanguages()
		for name, l := range own.Languages {
			merged[name] = l
		}
		cfg.Languages = merged
	}
	return own.Languages, nil
}

// DecodeStrict decodes TOML data into v. A key v has no field for is an
// error that names the key; a syntax error names its line and column.
func DecodeStrict(data []byte, v any) error {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var strict *toml.StrictMissingError
	var derr *toml.DecodeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &strict):
		keys := make([]string, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			keys = append(keys, strings.Join(e.Key(), "."))
		}
		return fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
	case errors.As(err, &derr):
		row, col := derr.Position()
		if msg, ok := typeError(data, row, derr.Error()); ok {
			return fmt.Errorf("line %d: %s", row, msg)
		}
		return fmt.Errorf("line %d column %d: %s", row, col, derr.Error())
	default:
		return err
	}
}

// tomlTypeError is go-toml's message for a value of the wrong type.
var tomlTypeError = regexp.MustCompile(`cannot decode TOML (\w+) into (?:struct field \S+ of type|a Go value of type) (\S+)`)

// typeError says a value of the wrong type in people's words, with the
// key as the file has it (section.key), not Go's names: "requests.
// max_body_bytes must be a whole number, not a TOML float (1e10)".
func typeError(data []byte, row int, msg string) (string, bool) {
	m := tomlTypeError.FindStringSubmatch(msg)
	lines := strings.Split(string(data), "\n")
	if m == nil || row < 1 || row > len(lines) {
		return "", false
	}
	key, value, found := strings.Cut(lines[row-1], "=")
	if !found {
		return "", false
	}
	key = strings.Trim(strings.TrimSpace(key), `"`)
	for i := row - 2; i >= 0; i-- {
		if h := strings.TrimSpace(lines[i]); strings.HasPrefix(h, "[") && !strings.HasPrefix(h, "[[") {
			key = strings.Trim(h, "[] ") + "." + key
			break
		}
	}
	want := map[string]string{
		"string": "a string (in quotes)", "int64": "a whole number (no exponent, no fraction)", "int": "a whole number (no exponent, no fraction)",
		"uint32": "a whole number (no exponent, no fraction)", "uint64": "a whole number (no exponent, no fraction)",
		"float64": "a number", "bool": "true or false", "[]string": "a list of strings",
	}[m[2]]
	if want == "" {
		want = "of another type"
	}
	value, _, _ = strings.Cut(strings.TrimSpace(value), "#")
	return fmt.Sprintf("%s must be %s, not a TOML %s (%s)", key, want, m[1], strings.TrimSpace(value)), true
}

// Validate checks that the configuration is usable and safe.
func (c *Config) Validate() error {
	var errs []error
	req := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	req(c.Socket != "", "socket must be set")
	req(c.Containerd != "", "containerd must be set")
	req(c.Namespace != "", "namespace must be set")
	req(c.Instance != "" && !strings.ContainsAny(c.Instance, " /"), "instance must be a non-empty word")
	req(filepath.IsAbs(c.StateDir), "state_dir must be an absolute path")
	req(c.Runtime.Type != "", "runtime.type must be set")
	req(c.Runtime.Snapshotter != "", "runtime.snapshotter must be set")
	req(c.Runtime.Init == "" || filepath.IsAbs(c.Runtime.Init), "runtime.init must be an absolute path (or empty)")
	req(filepath.IsAbs(c.Images.Recipes), "images.recipes must be an absolute path")
	req(filepath.IsAbs(c.Images.Cache), "images.cache must be an absolute path")
	req(strings.HasPrefix(c.Images.Mirror, "http://") || strings.HasPrefix(c.Images.Mirror, "https://"), "images.mirror must be an http:// or https:// URL")
	req(c.Images.MaxImportBytes > 0, "images.max_import_bytes must be positive")
	req(c.Pool.MemoryBytes >= 0, "pool.memory_bytes must not be negative")
	req(c.Sandbox.UID != 0 && c.Sandbox.GID != 0, "sandbox.uid and sandbox.gid must not be root (0)")
	req(c.Sandbox.BoxBytes >= 64*kiB, "sandbox.box_bytes must be at least 64 KiB")
	req(c.Sandbox.BoxInodes >= 64, "sandbox.box_inodes must be at least 64")
	req(c.Sandbox.TmpBytes >= 64*kiB, "sandbox.tmp_bytes must be at least 64 KiB")
	req(c.Sandbox.OpenFiles >= 16, "sandbox.open_files must be at least 16")
	r := c.Requests
	req(r.MaxBodyBytes > 0, "requests.max_body_bytes must be positive")
	req(r.MaxCodeBytes > 0 && r.MaxCodeBytes <= r.MaxBodyBytes, "requests.max_code_bytes must be positive and at most max_body_bytes")
	req(r.MaxStdinBytes >= 0 && r.MaxStdinBytes <= r.MaxBodyBytes, "requests.max_stdin_bytes must be at most max_body_bytes")
	req(r.MaxFiles > 0, "requests.max_files must be positive")
	req(r.MaxArgs >= 0, "requests.max_args must not be negative")
	req(r.MaxArgBytes > 0, "requests.max_arg_bytes must be positive")
	req(r.MaxConcurrent > 0, "requests.max_concurrent must be positive")
	req(r.MaxQueued >= 0, "requests.max_queued must not be negative")
	req(r.MaxQueueWaitMS > 0, "requests.max_queue_wait_ms must be positive")
	req(r.DeadlineMS >= MinDeadlineMS && r.DeadlineMS <= r.MaxDeadlineMS,
		"requests.deadline_ms must be at least %d and at most requests.max_deadline_ms", MinDeadlineMS)

	req(r.MaxTests > 0, "requests.max_tests must be positive")
	ss := c.Sessions
	req(ss.MaxOpen > 0 && ss.MaxPerClient > 0, "sessions.max_open and sessions.max_per_client must be positive")
	req(ss.MemoryBytes > 0, "sessions.memory_bytes must be positive")
	req(ss.BoxBytes >= 64*kiB && ss.BoxBytes <= ss.MaxBoxBytes, "sessions.box_bytes must be at least 64 KiB and at most sessions.max_box_bytes")
	req(ss.IdleTimeoutS > 0 && ss.IdleTimeoutS <= ss.MaxIdleTimeoutS, "sessions.idle_timeout_s must be positive and at most sessions.max_idle_timeout_s")
	req(ss.LifetimeS > 0 && ss.LifetimeS <= ss.MaxLifetimeS, "sessions.lifetime_s must be positive and at most sessions.max_lifetime_s")
	for key, addr := range map[string]string{"listen_tcp": c.ListenTCP, "metrics_listen": c.MetricsListen} {
		if addr != "" {
			_, port, err := net.SplitHostPort(addr)
			req(err == nil && port != "", "%s must be host:port, e.g. 127.0.0.1:8081", key)
		}
	}
	req(c.ShutdownTimeoutMS >= 0, "shutdown_timeout_ms must not be negative")
	h := c.HTTP
	req(h.ReadHeaderTimeoutMS > 0 && h.ReadTimeoutMS > 0 && h.IdleTimeoutMS > 0, "http timeouts must be positive")
	req(h.MaxHeaderBytes >= 1024, "http.max_header_bytes must be at least 1024")
	req(c.TokenLimits.RatePerMinute > 0 && c.TokenLimits.Burst > 0 && c.TokenLimits.MaxConcurrent > 0,
		"token_limits: rate_per_minute, burst and max_concurrent must be positive")
	names := map[string]bool{}
	hashes := map[string]string{}
	for i, t := range c.Tokens {
		req(t.Name != "", "tokens[%d].name must be set", i)
		req(!names[t.Name], "tokens[%d]: the name %q is used twice", i, t.Name)
		names[t.Name] = true
		// One token is one client: its requests, limits and sessions
		// are the name's.
		other, dup := hashes[strings.ToLower(t.SHA256)]
		req(!dup, "tokens[%d] (%s): the same sha256 as %s; each client needs a token of its own (runtimectl token new)", i, t.Name, other)
		hashes[strings.ToLower(t.SHA256)] = t.Name
		raw, err := hex.DecodeString(t.SHA256)
		req(err == nil && len(raw) == sha256.Size, "tokens[%d] (%s): sha256 must be 64 hex digits (runtimectl token new prints it)", i, t.Name)
		req(t.RatePerMinute >= 0 && t.Burst >= 0 && t.MaxConcurrent >= 0, "tokens[%d] (%s): limits must not be negative", i, t.Name)
	}

	errs = append(errs, validateLimitPair("defaults", "maximums", c.Defaults, c.Maximums)...)
	errs = append(errs, validateLimitPair("compile_defaults", "compile_maximums", c.CompileDefaults, c.CompileMaximums)...)

	req(len(c.Languages) > 0, "at least one language must be configured")
	seen := map[string]string{}                // name or alias: its language's name
	versions := map[string]map[string]string{} // name: version: table
	langs := make([]string, 0, len(c.Languages))
	for name := range c.Languages {
		langs = append(langs, name)
	}
	sort.Strings(langs)
	for _, name := range langs {
		first := len(errs)
		l := c.Languages[name]
		lang := LanguageName(name, l)
		req(validLanguageName(lang), "languages.%s.name %q must be a lower-case word", name, lang)
		req(l.Image != "", "languages.%s.image must be set", name)
		v, err := semver.NewVersion(l.Version)
		req(err == nil, "languages.%s.version %q must be a version in semver form: 3, 3.11 or 3.11.2", name, l.Version)
		if err == nil {
			if versions[lang] == nil {
				versions[lang] = map[string]string{}
			}
			if other, dup := versions[lang][v.String()]; dup {
				errs = append(errs, fmt.Errorf("languages.%s: %s %s is also languages.%s", name, lang, l.Version, other))
			}
			versions[lang][v.String()] = name
		}
		if l.EntryNamePattern != "" {
			re, err := regexp.Compile(l.EntryNamePattern)
			req(err == nil && re.NumSubexp() >= 1, "languages.%s.entry_name_pattern must be a regular expression with a group: %v", name, err)
		}
		req(len(l.Run) > 0, "languages.%s.run must be set", name)
		req(l.PoolSize >= 0 && l.PoolSize <= 64, "languages.%s.pool_size must be from 0 to 64", name)
		for _, p := range l.Packages {
			req(DebianPackage.MatchString(p), "languages.%s.packages: %q is not a Debian package name", name, p)
		}
		for _, stage := range []struct {
			key        string
			own        Limits
			def, max   Limits
			maxSection string
		}{
			{"limits", l.Limits, c.Defaults, c.Maximums, "maximums"},
			{"compile_limits", l.CompileLimits, c.CompileDefaults, c.CompileMaximums, "compile_maximums"},
		} {
			if stage.own == (Limits{}) {
				continue
			}
			section := "languages." + name + "." + stage.key
			merged := stage.own.Over(stage.def)
			errs = append(errs, validateLimits(section, merged)...)
			errs = append(errs, validateUnder(section, stage.maxSection, merged, stage.max)...)
		}
		for _, e := range l.Sources {
			req(strings.HasPrefix(e, "."), "languages.%s.sources: %q must start with a dot", name, e)
		}
		req(strings.HasPrefix(l.Extension, "."), "languages.%s.extension must start with a dot", name)
		// The versions of a language may repeat its aliases; another
		// language may not use them.
		for _, key := range append([]string{lang}, l.Aliases...) {
			if other, dup := seen[key]; dup && other != lang {
				errs = append(errs, fmt.Errorf("languages.%s: name or alias %q is already used by %s", name, key, other))
				continue
			}
			seen[key] = lang
		}
		// The errors of a table read from a file name the file.
		if file := c.LanguageFiles[name]; file != "" {
			for i := first; i < len(errs); i++ {
				errs[i] = fmt.Errorf("%w (in %s)", errs[i], file)
			}
		}
	}
	return errors.Join(errs...)
}

// LanguageName is the name of the language the table key describes:
// its name field, or the key.
func LanguageName(key string, l Language) string {
	if l.Name != "" {
		return l.Name
	}
	return key
}

// validLanguageName reports whether name can name a language in
// requests: lower case, no space or slash.
func validLanguageName(name string) bool {
	return name != "" && name == strings.ToLower(name) && !strings.ContainsAny(name, " \t\n/")
}

// validateLimitPair checks a defaults section and its maximums.
func validateLimitPair(defName, maxName string, def, maximum Limits) []error {
	errs := append(validateLimits(defName, def), validateLimits(maxName, maximum)...)
	return append(errs, validateUnder(defName, maxName, def, maximum)...)
}

// validateUnder checks that no default exceeds its maximum.
func validateUnder(defName, maxName string, def, maximum Limits) []error {
	var errs []error
	for _, f := range api.LimitFields() {
		if f.Less(maximum, def) {
			errs = append(errs, fmt.Errorf("%s.%s (%s) exceeds %s.%s (%s)", defName, f.Name, f.Format(def), maxName, f.Name, f.Format(maximum)))
		}
	}
	return errs
}

// validateLimits checks that every limit is at least its minimum, the
// smallest with which a sandbox runs a program.
func validateLimits(section string, l Limits) []error {
	var errs []error
	minimum := api.MinLimits()
	for _, f := range api.LimitFields() {
		if !(f.Value(l) >= f.Value(minimum)) { // NaN too
			errs = append(errs, fmt.Errorf("%s.%s must be at least %s", section, f.Name, f.Describe(minimum)))
		}
	}
	return errs
}
