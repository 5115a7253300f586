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

// TestConfigErrorsInPeoplesWords: a value of the wrong type is named by
// its key as the file has it, without Go's names or an exponent's
// surprise; a bad language table names the file that holds it.
func TestConfigErrorsInPeoplesWords(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for content, want := range map[string]string{
		"socket = 5\n": "line 1: socket must be a string (in quotes), not a TOML integer (5)",
		"[requests]\nmax_body_bytes = 1e10 # big\n": "line 2: requests.max_body_bytes must be a whole number (no exponent, no fraction), not a TOML float (1e10)",
		"[pool]\nenabled = \"yes\"\n":               "line 2: pool.enabled must be true or false, not a TOML string",
	} {
		_, err := Load(write("c.toml", content))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "config.Config") {
			t.Errorf("%q: %v, want %q", content, err, want)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "langs"), 0o755); err != nil {
		t.Fatal(err)
	}
	bad := write("langs/foo.toml", "[languages.foo]\nversion = \"x\"\nextension = \".foo\"\nimage = \"i\"\nrun = [\"/bin/foo\"]\n")
	cfg, err := Load(write("c.toml", "languages_dir = "+strconvQuote(filepath.Join(dir, "langs"))+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "languages.foo.version") || !strings.Contains(err.Error(), "(in "+bad+")") {
		t.Fatalf("%v", err)
	}
}

func strconvQuote(s string) string { return `"` + s + `"` }
