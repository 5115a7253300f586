package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/pkg/api"
)

// TestReorderArgs: flags after a command's arguments move before them;
// what follows "--" is the program's and stays.
func TestReorderArgs(t *testing.T) {
	// Once it ran, urfave/cli has given each command a help subcommand:
	// that changes nothing.
	runMain([]string{"runtimectl", "run", "--help"}, io.Discard, io.Discard)
	app := newApp()
	for _, tc := range []struct{ in, want string }{
		{"run hello.py --json", "run --json hello.py"},
		{"run hello.py --memory 64M --json -- --json x", "run --memory 64M --json hello.py -- --json x"},
		{"run --json hello.py", "run --json hello.py"},
		{"--socket /s run a.py -l python b.py", "--socket /s run -l python a.py b.py"},
		{"run a.py --timeout=2s", "run --timeout=2s a.py"},
		{"session run ses-1 --code x -i", "session run --code x -i ses-1"},
		{"session create python --repl --box 8M", "session create --repl --box 8M python"},
		{"images build python --nosuch", "images build python --nosuch"},
		{"run - --stdin in.txt", "run --stdin in.txt -"},
	} {
		got := strings.Join(reorderArgs(app, append([]string{"runtimectl"}, strings.Fields(tc.in)...))[1:], " ")
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestPipedStdinIsTheProgramsStdin: with stdin piped, runtimectl run gives it
// to the program without --stdin.
func TestPipedStdinIsTheProgramsStdin(t *testing.T) {
	var got api.RunRequest
	cl := fakeDaemon(t, api.RunResponse{Status: api.StatusOK, Run: &api.StageResult{Status: api.StatusOK}}, &got)
	dir := t.TempDir()
	main := writeTemp(t, dir, "main.py", "print(input())")
	var stdout, stderr strings.Builder
	for _, piped := range []bool{true, false} {
		got = api.RunRequest{}
		opts := runOptions{Files: []string{main}, StdinPiped: piped}
		if _, err := runFiles(context.Background(), cl, opts, strings.NewReader("from the pipe\n"), &stdout, &stderr); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: "from the pipe\n", false: ""}[piped]; got.Stdin != want {
			t.Errorf("piped %v: stdin %q, want %q", piped, got.Stdin, want)
		}
	}
}

func writeTemp(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVersionFlag: runtimectl --version prints runtimectl's version.
func TestVersionFlag(t *testing.T) {
	app := newApp()
	var out strings.Builder
	app.Writer = &out
	if err := app.Run([]string{"runtimectl", "--version"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "runtimectl version ") {
		t.Fatalf("%q", out.String())
	}
}

// TestOutputFormats: a listing as a table, JSON or YAML (the API's
// names); another format is a usage error.
func TestOutputFormats(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(api.RuntimesResponse{Runtimes: []api.Runtime{{Language: "python", Version: "3.13.5", Extension: ".py", ImagePresent: true}}})
	}))
	defer srv.Close()
	for format, want := range map[string]string{"table": "LANGUAGE", "json": `"language": "python"`, "yaml": "language: python", "-json": `"version": "3.13.5"`} {
		app := newApp()
		var out strings.Builder
		app.Writer = &out
		args := []string{"runtimectl", "--socket", srv.URL, "runtimes", "-o", format}
		if format == "-json" {
			args = []string{"runtimectl", "--socket", srv.URL, "runtimes", "--json"}
		}
		if err := app.Run(args); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if !strings.Contains(out.String(), want) {
			t.Errorf("-o %s: %q lacks %q", format, out.String(), want)
		}
	}
	app := newApp()
	app.Writer = io.Discard
	if err := app.Run([]string{"runtimectl", "--socket", srv.URL, "runtimes", "-o", "xml"}); err == nil {
		t.Fatal("-o xml was taken")
	}
}

// TestReadFilesKeepsTheLayout: files keep their paths relative to their
// closest common directory, or to --root.
func TestReadFilesKeepsTheLayout(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"multi/main.py", "multi/lib/m.py", "src/app.py", "other/x.py"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	at := func(names ...string) []string {
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = filepath.Join(dir, n)
		}
		return out
	}
	for _, tc := range []struct {
		names []string
		root  string
		want  string
	}{
		{at("multi/main.py", "multi/lib/m.py"), "", "main.py lib/m.py"},
		{at("multi/lib/m.py"), "", "m.py"},
		{at("src/app.py", "other/x.py"), "", "src/app.py other/x.py"},
		{at("multi/lib/m.py", "multi/main.py"), filepath.Join(dir, "multi"), "lib/m.py main.py"},
		{at("multi/lib/m.py"), dir, "multi/lib/m.py"},
	} {
		files, err := readFiles(tc.names, tc.root)
		if err != nil {
			t.Fatalf("%v: %v", tc.names, err)
		}
		var got []string
		for _, f := range files {
			got = append(got, f.Name)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%v (root %q): %v, want %s", tc.names, tc.root, got, tc.want)
		}
	}
	if _, err := readFiles(at("other/x.py"), filepath.Join(dir, "multi")); err == nil {
		t.Fatal("a file outside --root was taken")
	}
}
