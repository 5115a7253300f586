package language

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/pkg/config"
	"github.com/runtimed/runtimed/pkg/image"
)

// Every built-in language has an image recipe of its name, and the other
// way round.
func TestEveryLanguageHasARecipe(t *testing.T) {
	recipes, err := filepath.Glob(filepath.Join("..", "..", "packaging", "images", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, r := range recipes {
		have[strings.TrimSuffix(filepath.Base(r), ".toml")] = true
	}
	for name, l := range config.DefaultLanguages() {
		if !have[name] {
			t.Errorf("language %s has no recipe packaging/images/%s.toml", name, name)
			continue
		}
		delete(have, name)
		r, err := image.LoadRecipe(filepath.Join("..", "..", "packaging", "images", name+".toml"))
		if err != nil {
			t.Error(err)
		} else if r.Reference != l.Image || r.Name != name {
			t.Errorf("language %s runs in %s; its recipe %s builds %s", name, l.Image, r.Name, r.Reference)
		}
	}
	for name := range have {
		t.Errorf("recipe %s.toml has no language", name)
	}
}

func TestCommands(t *testing.T) {
	r := NewRegistry(config.Default())
	cpp, ok := r.Lookup("C++")
	if !ok || cpp.Name != "cpp" || !cpp.Compiled() {
		t.Fatalf("lookup c++: %+v %v", cpp, ok)
	}
	srcs := cpp.Sources([]string{"main.cpp", "util.h", "lib/util.cc", "notes.txt", "X.CXX"})
	if !slices.Equal(srcs, []string{"main.cpp", "lib/util.cc", "X.CXX"}) {
		t.Fatalf("sources %v", srcs)
	}
	cmd := cpp.CompileCommand("main.cpp", srcs, 1<<20)
	if !slices.Contains(cmd, "lib/util.cc") || slices.Contains(cmd, "{sources}") || slices.Contains(cmd, "util.h") {
		t.Fatalf("compile %v", cmd)
	}
	if run := cpp.RunCommand("main.cpp", "", []string{"a", "b"}, 1<<20); !slices.Equal(run, []string{"/box/.runtimed/main", "a", "b"}) {
		t.Fatalf("run %v", run)
	}

	java, _ := r.Lookup("java")
	if !java.NeedsMainClass() {
		t.Fatal("java does not need a main class")
	}
	run := java.RunCommand("Main.java", "app.Solution", []string{"x"}, 128<<20)
	if !slices.Contains(run, "app.Solution") || !slices.Contains(run, "-XX:MaxRAM=134217728") || run[len(run)-1] != "x" {
		t.Fatalf("java run %v", run)
	}
	if !java.OutOfMemory("Terminating due to java.lang.OutOfMemoryError: Java heap space") || java.OutOfMemory("NullPointerException") {
		t.Fatal("java out-of-memory markers")
	}

	ts, _ := r.Lookup("ts")
	if run := ts.RunCommand("src/app.main.ts", "", nil, 0); run[len(run)-1] != "/box/.runtimed/js/src/app.main.js" {
		t.Fatalf("typescript run %v", run)
	}

	py, _ := r.Lookup("py")
	if py.Compiled() || py.NeedsMainClass() {
		t.Fatal("python compiles")
	}
	if run := py.RunCommand("m.py", "", nil, 0); !slices.Equal(run, []string{"/usr/bin/python3.11", "-B", "m.py"}) {
		t.Fatalf("python run %v", run)
	}
}

func TestFindMainClass(t *testing.T) {
	dir := filepath.Join("testdata", "classes")
	for entry, want := range map[string]string{
		// A package-private class in a file of another name.
		"app/Solution.java": "app.Solution",
		"Other.java":        "Other",
		// No class from the entry file: the first by name.
		"Readme.java": "Other",
	} {
		got, err := FindMainClass(dir, entry)
		if err != nil || got != want {
			t.Errorf("entry %s: %q, %v; want %q", entry, got, err, want)
		}
	}
	empty := t.TempDir()
	if _, err := FindMainClass(empty, "Main.java"); !errors.Is(err, ErrNoMainClass) {
		t.Fatalf("no classes: %v", err)
	}
}

func TestParseClassNeverPanicsOnTruncatedInput(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "classes", "app", "Helper.class"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := parseClass(data)
	if err != nil || info.name != "app/Helper" || info.hasMain || info.source != "Solution.java" {
		t.Fatalf("%+v %v", info, err)
	}
	for i := 0; i < len(data); i++ {
		if _, err := parseClass(data[:i]); err == nil {
			t.Fatalf("a class file cut at %d bytes parsed", i)
		}
	}
}

// FuzzParseClass: no class file, however broken, makes the parser panic
// or read past its end.
func FuzzParseClass(f *testing.F) {
	for _, p := range []string{"Other.class", "app/Solution.class", "app/Helper.class"} {
		data, err := os.ReadFile(filepath.Join("testdata", "classes", p))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := parseClass(data)
		if err == nil && info.name == "" {
			t.Fatal("parsed a class without a name")
		}
	})
}
