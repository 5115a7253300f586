package config

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestLanguagesTableMatchesTheData: docs/languages.md's table says, for
// each built-in language, what its tables say: its extension, whether it
// compiles, and its images (the other docs point to this table rather
// than listing languages by hand).
func TestLanguagesTableMatchesTheData(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "languages.md"))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ext      string
		compiled bool
		images   []string
	}
	want := map[string]*row{}
	for key, l := range DefaultLanguages() {
		name := LanguageName(key, l)
		r := want[name]
		if r == nil {
			r = &row{ext: l.Extension}
			want[name] = r
		}
		r.compiled = r.compiled || len(l.Compile) > 0
		r.images = append(r.images, strings.TrimPrefix(l.Image, "runtimed.local/"))
	}
	got := map[string]*row{}
	for _, line := range strings.Split(string(data), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 9 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		var images []string
		for _, im := range strings.Split(cells[7], ",") {
			if im = strings.Trim(strings.TrimSpace(im), "`"); im != "" {
				images = append(images, im)
			}
		}
		got[name] = &row{
			ext:      strings.Trim(strings.TrimSpace(cells[4]), "`"),
			compiled: strings.TrimSpace(cells[5]) != "",
			images:   images,
		}
	}
	for name, w := range want {
		g := got[name]
		if g == nil {
			t.Errorf("docs/languages.md has no row for %s", name)
			continue
		}
		sort.Strings(w.images)
		sort.Strings(g.images)
		w.images = slices.Compact(w.images)
		if g.ext != w.ext || g.compiled != w.compiled || !slices.Equal(g.images, w.images) {
			t.Errorf("docs/languages.md's %s: %+v, the data says %+v", name, *g, *w)
		}
	}
	for name := range got {
		if want[name] == nil {
			t.Errorf("docs/languages.md lists %s, which is no built-in language", name)
		}
	}
}
