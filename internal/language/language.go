// Package language owns the registry of languages runtimed runs: their
// names, aliases, versions, images and the command lines of their compile
// and run stages.
package language

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/pkg/oci"
)

// Placeholders in a language's commands.
const (
	phEntry     = "{entry}"
	phEntryStem = "{entry_stem}"
	phSources   = "{sources}"
	phMainClass = "{main_class}"
	phMemory    = "{memory_bytes}"
)

// Language is one runnable language.
type Language struct {
	Name    string
	Version string
	Aliases []string
	// Runtime is what runs the language when that is not its name.
	Runtime string
	// Defaults and CompileDefaults are the limits a stage gets when the
	// request sets none: the global defaults, with the language's own.
	Defaults, CompileDefaults config.Limits
	Extension                 string
	Image                     string
	Env                       []string
	// Unavailable says why the language cannot run (a command its
	// stages start is not in its image); empty when it can.
	Unavailable  string
	compile      []string
	run          []string
	sources      []string
	memoryErrors []string
	semver       *semver.Version
	entryName    *regexp.Regexp
}

// Matches reports whether the language's version is the one a request
// selects: the version as written, or a semver range ("3", "3.11.x",
// "^3.10", ">=3.10, <4", "*"); an empty selector selects any.
func (l *Language) Matches(selector string) bool {
	selector = strings.TrimSpace(selector)
	if selector == "" || selector == l.Version {
		return true
	}
	c, err := semver.NewConstraint(selector)
	return err == nil && l.semver != nil && c.Check(l.semver)
}

// UnnamedFile names the i-th file of a request that gave it no name:
// file0.code, file1.code, ... as the Piston API does. A compiled
// language's compiler wants its extension, which is added; the entry
// file is named by the language's entry name pattern where it matches.
func (l *Language) UnnamedFile(i int, content string) string {
	if i == 0 && l.entryName != nil {
		if m := l.entryName.FindStringSubmatch(content); len(m) > 1 && m[1] != "" {
			return m[1] + l.Extension
		}
	}
	name := "file" + strconv.Itoa(i) + ".code"
	if l.Compiled() {
		name += l.Extension
	}
	return name
}

// SourceName is the name a source file of the language must have for
// its compiler, given its content. Java wants a public top-level type in
// a file of the type's name: for a language with an entry name pattern,
// a source file whose content matches it is named after the match, in
// the same directory. Other files keep name.
func (l *Language) SourceName(name, content string) string {
	if l.entryName == nil || !slices.Contains(l.sources, strings.ToLower(path.Ext(name))) {
		return name
	}
	m := l.entryName.FindStringSubmatch(content)
	if len(m) < 2 || m[1] == "" {
		return name
	}
	want := m[1] + l.Extension
	if dir := path.Dir(name); dir != "." {
		want = dir + "/" + want
	}
	return want
}

// Compiled reports whether the language has a compile stage.
func (l *Language) Compiled() bool { return len(l.compile) > 0 }

// NeedsMainClass reports whether the run command names the class with a
// main method, which must then be found among the compiled classes.
func (l *Language) NeedsMainClass() bool { return slices.Contains(l.run, phMainClass) }

// Sources returns the names among files that are source files of the
// language, in order.
func (l *Language) Sources(files []string) []string {
	var out []string
	for _, f := range files {
		if slices.Contains(l.sources, strings.ToLower(path.Ext(f))) {
			out = append(out, f)
		}
	}
	return out
}

// CompileCommand is the compile stage's command line.
func (l *Language) CompileCommand(entry string, sources []string, memoryBytes int64) []string {
	return expand(l.compile, vars{entry: entry, sources: sources, memory: memoryBytes})
}

// RunCommand is the run stage's command line, with args after it.
func (l *Language) RunCommand(entry, mainClass string, args []string, memoryBytes int64) []string {
	return append(expand(l.run, vars{entry: entry, mainClass: mainClass, memory: memoryBytes}), args...)
}

// OutOfMemory reports whether output holds one of the runtime's own
// out-of-memory messages.
func (l *Language) OutOfMemory(output string) bool {
	for _, m := range l.memoryErrors {
		if strings.Contains(output, m) {
			return true
		}
	}
	return false
}

type vars struct {
	entry, mainClass string
	sources          []string
	memory           int64
}

// expand fills the placeholders of a command. A request file name never
// becomes an option or a response file: an argument that a name begins
// is prefixed with "./" when the name starts with '-' or '@' (the API
// refuses such names; this holds whatever the caller checked).
func expand(tmpl []string, v vars) []string {
	out := make([]string, 0, len(tmpl)+len(v.sources))
	for _, a := range tmpl {
		if a == phSources {
			for _, s := range v.sources {
				out = append(out, asOperand(s))
			}
			continue
		}
		named := strings.HasPrefix(a, phEntry) || strings.HasPrefix(a, phEntryStem)
		a = strings.ReplaceAll(a, phEntryStem, strings.TrimSuffix(v.entry, path.Ext(v.entry)))
		a = strings.ReplaceAll(a, phEntry, v.entry)
		a = strings.ReplaceAll(a, phMainClass, v.mainClass)
		a = strings.ReplaceAll(a, phMemory, strconv.FormatInt(v.memory, 10))
		if named {
			a = asOperand(a)
		}
		out = append(out, a)
	}
	return out
}

// asOperand keeps a relative file name from reading as an option (-x)
// or a response file (@x) to the commands that take those: gcc, javac,
// rustc, tsc and go all read ./-x as the file -x. Other names stay as
// they are, so that compilers' messages name the files as sent.
func asOperand(name string) string {
	if strings.HasPrefix(name, "-") || strings.HasPrefix(name, "@") {
		return "./" + name
	}
	return name
}

// StageDefaults are the limits of c's run and compile stages when a
// request sets none: the language's own over cfg's defaults. The warm
// pools are made at these limits, and a request takes a warm sandbox
// only when its stage's limits are the pool's, so the registry and the
// pools both take them from here.
func StageDefaults(cfg config.Config, c config.Language) (run, compile config.Limits) {
	return c.Limits.Over(cfg.Defaults), c.CompileLimits.Over(cfg.CompileDefaults)
}

// Registry finds languages by name or alias, and their versions.
type Registry struct {
	byName map[string][]*Language // newest version first
	sorted []*Language
}

// ErrUnknownLanguage and ErrUnknownVersion are why Select found nothing.
var (
	ErrUnknownLanguage = errors.New("unknown language")
	ErrUnknownVersion  = errors.New("unknown version")
)

// NewRegistry builds a registry from cfg's languages: a table each
// version.
func NewRegistry(cfg config.Config) *Registry { return NewRegistryWith(cfg, nil, nil) }

// NewRegistryWith is NewRegistry where the images say what they run:
// imageVersions has, by image reference, the version an image's recipe
// recorded (x.y.z). A language reports its image's version where that
// refines its own (the table says 8.4, the image 8.4.27), and its own
// otherwise (see VersionOf).
//
// unavailable has, by language table key, why a language cannot run
// (see Commands).
func NewRegistryWith(cfg config.Config, imageVersions map[string]string, unavailable map[string]string) *Registry {
	r := &Registry{byName: map[string][]*Language{}}
	for key, c := range cfg.Languages {
		name := config.LanguageName(key, c)
		run, compile := StageDefaults(cfg, c)
		sources := c.Sources
		if len(sources) == 0 {
			sources = []string{c.Extension}
		}
		l := &Language{
			Name:            name,
			Version:         VersionOf(c.Version, imageVersions[c.Image]),
			Aliases:         slices.Clone(c.Aliases),
			Runtime:         c.Runtime,
			Defaults:        run,
			CompileDefaults: compile,
			Extension:       c.Extension,
			Image:           c.Image,
			Env:             slices.Clone(c.Env),
			Unavailable:     unavailable[key],
			compile:         slices.Clone(c.Compile),
			run:             slices.Clone(c.Run),
			sources:         sources,
			memoryErrors:    slices.Clone(c.MemoryErrors),
		}
		// The configuration was validated, and an image's version is
		// used only where it refines the table's: both parse.
		l.semver, _ = semver.NewVersion(l.Version)
		if c.EntryNamePattern != "" {
			l.entryName, _ = regexp.Compile(c.EntryNamePattern)
		}
		r.sorted = append(r.sorted, l)
		r.byName[name] = append(r.byName[name], l)
	}
	sort.Slice(r.sorted, func(i, j int) bool { return before(r.sorted[i], r.sorted[j]) })
	// An alias names the versions whose tables list it: a language's
	// common aliases are in each of its tables, and an alias such as
	// python3.11 in one only.
	for _, l := range r.sorted {
		for _, a := range l.Aliases {
			if a != l.Name && !slices.Contains(r.byName[a], l) {
				r.byName[a] = append(r.byName[a], l)
			}
		}
	}
	for _, vs := range r.byName {
		sort.Slice(vs, func(i, j int) bool { return before(vs[i], vs[j]) })
	}
	return r
}

// before orders languages by name, then newest version first.
func before(a, b *Language) bool {
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	if a.semver != nil && b.semver != nil && !a.semver.Equal(b.semver) {
		return a.semver.GreaterThan(b.semver)
	}
	return a.Version > b.Version
}

// Lookup finds a language by name or alias, case-insensitively: its
// newest version.
func (r *Registry) Lookup(name string) (*Language, bool) {
	vs := r.Versions(name)
	if len(vs) == 0 {
		return nil, false
	}
	return vs[0], true
}

// Versions returns the versions of the language of that name or alias,
// newest first.
func (r *Registry) Versions(name string) []*Language {
	return r.byName[strings.ToLower(strings.TrimSpace(name))]
}

// Select finds the newest version of a language that a request's
// version selector matches (see Language.Matches; empty: the newest).
// The error wraps ErrUnknownLanguage or ErrUnknownVersion and says what
// there is.
func (r *Registry) Select(name, selector string) (*Language, error) {
	vs := r.Versions(name)
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w %q", ErrUnknownLanguage, name)
	}
	for _, l := range vs {
		if l.Matches(selector) {
			return l, nil
		}
	}
	have := make([]string, len(vs))
	for i, l := range vs {
		have[i] = l.Version
	}
	return nil, fmt.Errorf("%w: %s has %s, none of them %q", ErrUnknownVersion, vs[0].Name, strings.Join(have, ", "), selector)
}

// ByExtension names the language whose files have the extension of
// file (".py" for main.py), for a request that names none: of several
// (c and c23 share .c), the one with the shortest name, then the first
// by name. "" if none has it.
func (r *Registry) ByExtension(file string) string {
	ext := strings.ToLower(path.Ext(file))
	if ext == "" {
		return ""
	}
	best := ""
	for _, l := range r.sorted {
		if !strings.EqualFold(l.Extension, ext) {
			continue
		}
		if best == "" || len(l.Name) < len(best) || len(l.Name) == len(best) && l.Name < best {
			best = l.Name
		}
	}
	return best
}

// Commands are the programs a language's stages start that its image
// must hold: the first word of its compile and run commands, an absolute
// path or a name looked up in SearchPath. A program the compile stage
// makes, or one in the box or /tmp, is not the image's.
func Commands(c config.Language) []string {
	var out []string
	for _, argv := range [][]string{c.Compile, c.Run} {
		if len(argv) == 0 {
			continue
		}
		cmd := argv[0]
		switch {
		case strings.Contains(cmd, "{"), // a placeholder: a request's file
			strings.Contains(cmd, "/") && !path.IsAbs(cmd), // relative to the box
			path.IsAbs(cmd) && madeAtRunTime(cmd),
			// A name looked up in a directory a run makes may be found
			// there.
			!strings.Contains(cmd, "/") && slices.ContainsFunc(SearchPath(c), madeAtRunTime):
			continue
		}
		if !slices.Contains(out, cmd) {
			out = append(out, cmd)
		}
	}
	return out
}

// madeAtRunTime reports whether a directory of a program's PATH, or a
// command, is not the image's: relative (to the box), in the box or in
// /tmp (mounts over the image's).
func madeAtRunTime(p string) bool {
	return !path.IsAbs(p) || p == "/box" || strings.HasPrefix(p, "/box/") || p == "/tmp" || strings.HasPrefix(p, "/tmp/")
}

// SearchPath is the PATH a language's programs run with, whose
// directories a command without a slash is looked up in.
func SearchPath(c config.Language) []string {
	var dirs string
	for _, kv := range oci.ProgramEnv(c.Env) {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			dirs = v
		}
	}
	return strings.Split(dirs, ":")
}

// All returns every version of every language, sorted by name, newest
// version first.
func (r *Registry) All() []*Language { return r.sorted }

// ImageOf answers the image a language runs in, named as a user would:
// NAME (or an alias) for its newest version, NAME@VERSION for the newest
// version VERSION selects (see Language.Matches).
func (r *Registry) ImageOf(name string) (string, error) {
	name, selector, _ := strings.Cut(name, "@")
	l, err := r.Select(name, selector)
	if err != nil {
		return "", err
	}
	return l.Image, nil
}

// VersionOf is the version a language with version declared reports when
// its image runs actual (empty: unknown): actual where it is declared or
// refines it (declared 25, actual 25.0.5), else declared.
func VersionOf(declared, actual string) string {
	if actual != "" && (actual == declared || strings.HasPrefix(actual, declared+".")) {
		if _, err := semver.NewVersion(actual); err == nil {
			return actual
		}
	}
	return declared
}
