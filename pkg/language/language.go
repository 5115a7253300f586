// Package language owns the registry of languages runtimed runs: their
// names, aliases, versions, images and command lines.
package language

import (
	"sort"
	"strings"

	"github.com/runtimed/runtimed/pkg/config"
)

// Language is one runnable language.
type Language struct {
	Name      string
	Version   string
	Aliases   []string
	Extension string
	Image     string
	run       []string
	Env       []string
}

// Command returns the command line that runs entry with args.
func (l *Language) Command(entry string, args []string) []string {
	cmd := make([]string, 0, len(l.run)+len(args))
	for _, a := range l.run {
		cmd = append(cmd, strings.ReplaceAll(a, "{entry}", entry))
	}
	return append(cmd, args...)
}

// Registry finds languages by name, alias or file extension.
type Registry struct {
	byName map[string]*Language
	sorted []*Language
}

// NewRegistry builds a registry from the configured languages.
func NewRegistry(langs map[string]config.Language) *Registry {
	r := &Registry{byName: map[string]*Language{}}
	for name, c := range langs {
		l := &Language{
			Name:      name,
			Version:   c.Version,
			Aliases:   append([]string(nil), c.Aliases...),
			Extension: c.Extension,
			Image:     c.Image,
			run:       append([]string(nil), c.Run...),
			Env:       append([]string(nil), c.Env...),
		}
		r.sorted = append(r.sorted, l)
		r.byName[name] = l
		for _, a := range c.Aliases {
			r.byName[a] = l
		}
	}
	sort.Slice(r.sorted, func(i, j int) bool { return r.sorted[i].Name < r.sorted[j].Name })
	return r
}

// Lookup finds a language by name or alias, case-insensitively.
func (r *Registry) Lookup(name string) (*Language, bool) {
	l, ok := r.byName[strings.ToLower(strings.TrimSpace(name))]
	return l, ok
}

// All returns every language, sorted by name.
func (r *Registry) All() []*Language { return r.sorted }
