package language

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/image"
)

// Every built-in language's image has a recipe, and every recipe builds
// the image of some language.
func TestEveryLanguageHasARecipe(t *testing.T) {
	recipes, err := image.LoadRecipes(filepath.Join("..", "..", "packaging", "images"))
	if err != nil {
		t.Fatal(err)
	}
	unused := map[string]string{}
	for _, r := range recipes {
		unused[r.Reference] = r.Name
	}
	byRef := maps.Clone(unused)
	for key, l := range config.DefaultLanguages() {
		if _, ok := byRef[l.Image]; !ok {
			t.Errorf("language table %s runs in %s, which no recipe in packaging/images builds", key, l.Image)
		}
		delete(unused, l.Image)
	}
	for _, name := range unused {
		t.Errorf("recipe %s.toml builds no language's image", name)
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
	if run := py.RunCommand("m.py", "", nil, 0); !slices.Equal(run, []string{"/usr/bin/python3.13", "-B", "m.py"}) {
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
		got, err := FindMainClass(dir, entry, 1<<20)
		if err != nil || got != want {
			t.Errorf("entry %s: %q, %v; want %q", entry, got, err, want)
		}
	}
	empty := t.TempDir()
	if _, err := FindMainClass(empty, "Main.java", 1<<20); !errors.Is(err, ErrNoMainClass) {
		t.Fatalf("no classes: %v", err)
	}
	if _, err := FindMainClass(filepath.Join(empty, "gone"), "Main.java", 1<<20); !errors.Is(err, ErrNoMainClass) {
		t.Fatalf("no build directory: %v", err)
	}
}

// What FindMainClass reads is bounded by the box, not by what its files
// claim: the build came out of a sandbox.
func TestFindMainClassReadsWithinTheBox(t *testing.T) {
	class, err := os.ReadFile(filepath.Join("testdata", "classes", "Other.class"))
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(class))
	write := func(t *testing.T, p string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sparse := func(t *testing.T, p string, n int64) {
		t.Helper()
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(n); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("each inode once", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "Other.class"), class)
		for i := 0; i < 2047; i++ {
			if err := os.Link(filepath.Join(dir, "Other.class"), filepath.Join(dir, fmt.Sprintf("L%04d.class", i))); err != nil {
				t.Fatal(err)
			}
		}
		// A budget of one copy: a second read would exceed it.
		if got, err := FindMainClass(dir, "Other.java", size); err != nil || got != "Other" {
			t.Fatalf("%q, %v", got, err)
		}
	})
	t.Run("sparse, oversized, links, FIFOs and directories are skipped", func(t *testing.T) {
		dir := t.TempDir()
		sparse(t, filepath.Join(dir, "Sparse.class"), maxClassBytes)
		sparse(t, filepath.Join(dir, "Huge.class"), 1<<40)
		if _, err := FindMainClass(dir, "Other.java", 2*size); !errors.Is(err, ErrNoMainClass) || !strings.Contains(err.Error(), "2 sparse or oversized") {
			t.Fatalf("only sparse classes: %v", err)
		}
		write(t, filepath.Join(dir, "Big.class"), make([]byte, maxClassBytes+1))
		write(t, filepath.Join(t.TempDir(), "Outside.class"), []byte("not a class"))
		write(t, filepath.Join(dir, "Other.class"), class)
		if err := os.Symlink("/etc/passwd", filepath.Join(dir, "Link.class")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(t.TempDir(), filepath.Join(dir, "sub")); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mkfifo(filepath.Join(dir, "Fifo.class"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, "Dir.class"), 0o755); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var got string
		go func() {
			defer close(done)
			got, err = FindMainClass(dir, "Other.java", 2*size)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("FindMainClass blocked")
		}
		if err != nil || got != "Other" {
			t.Fatalf("%q, %v", got, err)
		}
	})
	t.Run("a budget", func(t *testing.T) {
		dir := t.TempDir()
		for _, n := range []string{"a/Other.class", "b/Other.class"} {
			write(t, filepath.Join(dir, n), class)
		}
		_, err := FindMainClass(dir, "Other.java", 2*size-1)
		if !errors.Is(err, ErrBadBuild) || !strings.Contains(err.Error(), "more than") {
			t.Fatalf("two copies over a budget of less: %v", err)
		}
		if got, err := FindMainClass(dir, "Other.java", 2*size); err != nil || got != "Other" {
			t.Fatalf("within the budget: %q, %v", got, err)
		}
	})
	t.Run("a file that is not a class", func(t *testing.T) {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "pkg", "Bad.class"), []byte("#!/bin/sh\n"))
		_, err := FindMainClass(dir, "Main.java", 1<<20)
		if !errors.Is(err, ErrBadBuild) || !strings.HasPrefix(err.Error(), "pkg/Bad.class: ") || strings.Contains(err.Error(), dir) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("too many classes", func(t *testing.T) {
		dir := t.TempDir()
		for i := 0; i <= maxClassFiles; i++ {
			write(t, filepath.Join(dir, fmt.Sprintf("C%d.class", i)), class)
		}
		if _, err := FindMainClass(dir, "Main.java", 1<<30); !errors.Is(err, ErrBadBuild) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("a main class named like an option", func(t *testing.T) {
		for _, name := range []string{"-ther", "@ther", "a//b", "a.b.", "1ther"} {
			bad := []byte(strings.Replace(string(class), "\x01\x00\x05Other", "\x01\x00"+string(rune(len(name)))+name, 1))
			dir := t.TempDir()
			write(t, filepath.Join(dir, "X.class"), bad)
			_, err := FindMainClass(dir, "Other.java", 1<<20)
			if !errors.Is(err, ErrBadBuild) || !strings.Contains(err.Error(), "not a Java binary name") {
				t.Fatalf("%q: %v", name, err)
			}
		}
	})
}

func TestIsBinaryName(t *testing.T) {
	for _, n := range []string{"Main", "app.Main", "a.b.c.Main$Inner", "_x", "$", "Ünïcode.日本", "x1.y2"} {
		if !isBinaryName(n) {
			t.Errorf("%q refused", n)
		}
	}
	for _, n := range []string{"", "-version", "@args", "-XX:+PrintFlagsFinal", ".Main", "Main.", "a..b", "1a", "a b", "a/b",
		"a-b", "a\x00b", "\xff", strings.Repeat("a", maxBinaryName+1)} {
		if isBinaryName(n) {
			t.Errorf("%q accepted", n)
		}
	}
}

// A request file name never reaches a command as an option or a response
// file; other names are passed as they are.
func TestFileNamesAreNeverOptions(t *testing.T) {
	cfg := config.Default()
	cfg.Languages["tool"] = config.Language{
		Version: "1", Extension: ".t", Image: "x",
		Compile: []string{"/bin/tool", "{entry}", "{entry_stem}.o", "--in={entry}", "{sources}"},
		Run:     []string{"/bin/run", "{entry_stem}", "/box/{entry}"},
	}
	r := NewRegistry(cfg)
	tool, _ := r.Lookup("tool")
	got := tool.CompileCommand("-specs=d/x.t", []string{"-specs=d/x.t", "@args.t", "ok.t", "d/-x.t"}, 0)
	want := []string{"/bin/tool", "./-specs=d/x.t", "./-specs=d/x.o", "--in=-specs=d/x.t", "./-specs=d/x.t", "./@args.t", "ok.t", "d/-x.t"}
	if !slices.Equal(got, want) {
		t.Fatalf("compile %q, want %q", got, want)
	}
	if got := tool.RunCommand("@x.t", "", []string{"-a"}, 0); !slices.Equal(got, []string{"/bin/run", "./@x", "/box/@x.t", "-a"}) {
		t.Fatalf("run %q", got)
	}
	if got := tool.CompileCommand("main.t", []string{"main.t", "lib/u.t"}, 0); !slices.Equal(got, []string{"/bin/tool", "main.t", "main.o", "--in=main.t", "main.t", "lib/u.t"}) {
		t.Fatalf("plain names changed: %q", got)
	}
	for _, name := range []string{"c", "cpp", "go", "rust", "typescript", "java"} {
		l, _ := r.Lookup(name)
		for _, bad := range []string{"-x", "@x"} {
			entry := bad + l.Extension
			for _, a := range l.CompileCommand(entry, l.Sources([]string{entry}), 1<<20) {
				if strings.Contains(a, bad) && !strings.HasPrefix(a, "./") {
					t.Errorf("%s: %q in %q", name, a, l.CompileCommand(entry, []string{entry}, 1<<20))
				}
			}
		}
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

// A stage's defaults are the language's own limits over the global
// ones, field by field, and the registry holds exactly those.
func TestStageDefaults(t *testing.T) {
	cfg := config.Default()
	cfg.Defaults = config.Limits{MemoryBytes: 256 << 20, CPU: 1, WallTimeMS: 5000, CPUTimeMS: 5000, Pids: 64, OutputBytes: 1 << 20}
	cfg.CompileDefaults = config.Limits{MemoryBytes: 512 << 20, CPU: 2, WallTimeMS: 20000, CPUTimeMS: 20000, Pids: 128, OutputBytes: 1 << 20}
	for _, tc := range []struct {
		name               string
		own, ownCompile    config.Limits
		wantRun, wantCompl config.Limits
	}{
		{
			name:      "none of its own",
			wantRun:   cfg.Defaults,
			wantCompl: cfg.CompileDefaults,
		},
		{
			name:       "some of its own",
			own:        config.Limits{MemoryBytes: 1 << 30, Pids: 200},
			ownCompile: config.Limits{CPU: 4},
			wantRun:    config.Limits{MemoryBytes: 1 << 30, CPU: 1, WallTimeMS: 5000, CPUTimeMS: 5000, Pids: 200, OutputBytes: 1 << 20},
			wantCompl:  config.Limits{MemoryBytes: 512 << 20, CPU: 4, WallTimeMS: 20000, CPUTimeMS: 20000, Pids: 128, OutputBytes: 1 << 20},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg.Languages["python"]
			c.Limits, c.CompileLimits = tc.own, tc.ownCompile
			run, compile := StageDefaults(cfg, c)
			if run != tc.wantRun || compile != tc.wantCompl {
				t.Errorf("StageDefaults = %+v, %+v; want %+v, %+v", run, compile, tc.wantRun, tc.wantCompl)
			}
			cfg := cfg
			cfg.Languages = map[string]config.Language{"python": c}
			l, _ := NewRegistry(cfg).Lookup("python")
			if l.Defaults != run || l.CompileDefaults != compile {
				t.Errorf("registry holds %+v, %+v; StageDefaults gives %+v, %+v", l.Defaults, l.CompileDefaults, run, compile)
			}
		})
	}
}

// A language's versions: the newest a selector matches, the newest by
// default; an alias names the versions that list it; All lists each.
func TestVersions(t *testing.T) {
	cfg := config.Default()
	old := cfg.Languages["python"]
	newer := old
	newer.Name, newer.Version, newer.Image, newer.Aliases = "python", "3.13.5", "runtimed.local/python:3.13", []string{"py", "python3", "python3.13", "snake"}
	older := old
	older.Name, older.Version, older.Image, older.Aliases = "python", "3.9.2", "runtimed.local/python:3.9", []string{"py", "python3", "python3.9"}
	cfg.Languages["python-3.13"] = newer
	cfg.Languages["python-3.9"] = older
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(cfg)
	for _, tc := range []struct{ name, selector, want string }{
		{"python", "", "3.13.5"},
		{"python", "*", "3.13.5"},
		{"Python", "3", "3.13.5"},
		{"py", "3.11", old.Version},
		{"python", "3.11.x", old.Version},
		{"python", old.Version, old.Version},
		{"python3", "3.9.2", "3.9.2"},
		{"python3.11", "", old.Version},
		{"python3.13", "", "3.13.5"},
		{"python3.9", "*", "3.9.2"},
		{"python", "^3.10", "3.13.5"},
	} {
		l, err := r.Select(tc.name, tc.selector)
		if err != nil || l.Version != tc.want || l.Name != "python" {
			t.Errorf("Select(%q, %q) = %+v, %v; want %s", tc.name, tc.selector, l, err, tc.want)
		}
	}
	if l, ok := r.Lookup("py"); !ok || l.Version != "3.13.5" || l.Image != "runtimed.local/python:3.13" {
		t.Errorf("Lookup(py) = %+v", l)
	}
	if _, err := r.Select("python", "2"); !errors.Is(err, ErrUnknownVersion) || !strings.Contains(err.Error(), "3.13.5, "+old.Version+", 3.9.2") {
		t.Errorf("python 2: %v", err)
	}
	if _, err := r.Select("python", "latest!"); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("a selector that does not parse: %v", err)
	}
	if _, err := r.Select("python3.13", "3.11"); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("python3.13 at 3.11: %v", err)
	}
	if _, err := r.Select("cobol", ""); !errors.Is(err, ErrUnknownLanguage) {
		t.Errorf("cobol: %v", err)
	}
	var got []string
	for _, l := range r.All() {
		if l.Name == "python" {
			got = append(got, l.Version)
			if !slices.Contains(l.Aliases, "py") || slices.Contains(l.Aliases, "snake") != (l.Version == "3.13.5") {
				t.Errorf("python %s has aliases %q", l.Version, l.Aliases)
			}
		}
	}
	if !slices.Equal(got, []string{"3.13.5", old.Version, "3.9.2"}) {
		t.Errorf("All lists python %q", got)
	}
}

// A language reports the version its image says it runs where that
// refines the table's (x.y → x.y.z), and is selected by it; another
// version in the image leaves the table's.
func TestImageVersions(t *testing.T) {
	for _, tc := range []struct{ declared, actual, want string }{
		{"25", "25.0.5", "25.0.5"},
		{"8.4", "8.4.27", "8.4.27"},
		{"3.13.5", "3.13.5", "3.13.5"},
		{"3.13.5", "", "3.13.5"},
		{"8.4", "8.2.28", "8.4"},
		{"2", "20.1.0", "2"},
	} {
		if got := VersionOf(tc.declared, tc.actual); got != tc.want {
			t.Errorf("VersionOf(%q, %q) = %q, want %q", tc.declared, tc.actual, got, tc.want)
		}
	}
	cfg := config.Default()
	r := NewRegistryWith(cfg, map[string]string{"runtimed.local/java:25": "25.0.5", "runtimed.local/java:17": "17.0.15", "runtimed.local/php:8.4": "8.2.1"}, nil)
	j, err := r.Select("java", "25.0.5")
	if err != nil || j.Version != "25.0.5" || j.Image != "runtimed.local/java:25" {
		t.Fatalf("java 25.0.5: %+v %v", j, err)
	}
	if j, err := r.Select("java", "17.0.x"); err != nil || j.Version != "17.0.15" {
		t.Fatalf("java 17.0.x: %+v %v", j, err)
	}
	if p, _ := r.Select("php", ""); p.Version != "8.4" {
		t.Fatalf("php with an image of another version: %s", p.Version)
	}
	if ref, err := r.ImageOf("java@21"); err != nil || ref != "runtimed.local/java:21" {
		t.Fatalf("ImageOf java@21: %q %v", ref, err)
	}
	if ref, err := r.ImageOf("py"); err != nil || ref != "runtimed.local/python:3.13" {
		t.Fatalf("ImageOf py: %q %v", ref, err)
	}
	if _, err := r.ImageOf("python@2"); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("ImageOf python@2: %v", err)
	}
}

func TestImageCommands(t *testing.T) {
	for _, c := range []struct {
		lang config.Language
		want []string
	}{
		{config.Language{Compile: []string{"/usr/bin/g++-14", "-o", "/box/.runtimed/main", "{sources}"}, Run: []string{"/box/.runtimed/main"}}, []string{"/usr/bin/g++-14"}},
		{config.Language{Compile: []string{"/usr/bin/tsc"}, Run: []string{"/usr/bin/node", "/box/.runtimed/js/{entry}"}}, []string{"/usr/bin/tsc", "/usr/bin/node"}},
		{config.Language{Compile: []string{"/usr/bin/javac"}, Run: []string{"/usr/bin/java", "-cp", "/box"}}, []string{"/usr/bin/javac", "/usr/bin/java"}},
		{config.Language{Run: []string{"python3", "{entry}"}}, []string{"python3"}},
		// A name its PATH may find in the box (or /tmp, or relative to the box) is not looked for.
		{config.Language{Run: []string{"tool"}, Env: []string{"PATH=/box/bin:/usr/bin"}}, nil},
		{config.Language{Run: []string{"tool"}, Env: []string{"PATH=bin:/usr/bin"}}, nil},
		{config.Language{Run: []string{"tool"}, Env: []string{"PATH=/usr/bin::/bin"}}, nil},
		{config.Language{Run: []string{"/usr/bin/tool"}, Env: []string{"PATH=/box/bin:/usr/bin"}}, []string{"/usr/bin/tool"}},
		{config.Language{Run: []string{"{entry}"}}, nil},
		{config.Language{Run: []string{"./a.out"}}, nil},
		{config.Language{Run: []string{"/tmp/x"}}, nil},
		{config.Language{Compile: []string{"/usr/bin/cc"}, Run: []string{"/usr/bin/cc"}}, []string{"/usr/bin/cc"}},
	} {
		if got := Commands(c.lang); !slices.Equal(got, c.want) {
			t.Errorf("Commands(%q, %q) = %q, want %q", c.lang.Compile, c.lang.Run, got, c.want)
		}
	}
	// Every built-in language starts something its image must hold.
	for key, l := range config.DefaultLanguages() {
		if len(Commands(l)) == 0 {
			t.Errorf("%s: no command to check in its image", key)
		}
	}
}

func TestSearchPath(t *testing.T) {
	if got := SearchPath(config.Language{}); !slices.Contains(got, "/usr/bin") || !slices.Contains(got, "/usr/local/bin") {
		t.Errorf("the default search path %q lacks /usr/bin or /usr/local/bin", got)
	}
	// The language's own PATH is the one its programs see.
	if got := SearchPath(config.Language{Env: []string{"PATH=/opt/go/bin:/usr/bin"}}); !slices.Equal(got, []string{"/opt/go/bin", "/usr/bin"}) {
		t.Errorf("search path %q, want the language's", got)
	}
}

func TestUnavailable(t *testing.T) {
	cfg := config.Default()
	r := NewRegistryWith(cfg, nil, map[string]string{"lua": "/usr/bin/lua5.4 is not in its image"})
	for _, l := range r.All() {
		if want := l.Name == "lua" && l.Version == cfg.Languages["lua"].Version; (l.Unavailable != "") != want {
			t.Errorf("%s %s: unavailable %q", l.Name, l.Version, l.Unavailable)
		}
	}
}
