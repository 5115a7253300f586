//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// docCommands extracts the curl commands of a markdown file: the lines of
// its sh blocks (continuations joined) and the one-line `curl ...` spans,
// those that talk to runtimed's socket.
func docCommands(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(harness.RepoRoot(), file))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(data), -1) {
		joined := strings.ReplaceAll(block[1], "\\\n", " ")
		for _, line := range strings.Split(joined, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "curl ") {
				out = append(out, strings.TrimSpace(line))
			}
		}
	}
	for _, m := range regexp.MustCompile("`(curl --unix-socket [^`]+)`").FindAllStringSubmatch(string(data), -1) {
		out = append(out, m[1])
	}
	var mine []string
	for _, c := range out {
		if strings.Contains(c, "/run/runtimed/runtimed.sock") {
			mine = append(mine, c)
		}
	}
	return mine
}

// TestDocExamples runs the curl examples of docs/api.md, docs/piston.md
// and README against the suite's runtimed: each must be answered 2xx (so
// an example with the wrong method or path fails here). The two that need
// what the suite has not got — an image archive, a registry — are run
// with an empty archive and must be refused by their handler (400, 502),
// not by the router (404, 405).
func TestDocExamples(t *testing.T) {
	// A runtimed of its own, that knows the image recipes (the build
	// example) and shares the suite's containerd and images.
	in, _ := harness.StartInstance(t, "docs", fmt.Sprintf("[images]\nrecipes = %q\ncache = %q\n[pool]\nenabled = false\n",
		filepath.Join(harness.RepoRoot(), "packaging", "images"), env.ImageCache))
	c := api.NewClient(in.Socket, "")
	ctx := context.Background()
	s, err := c.CreateSession(ctx, &api.SessionRequest{Language: "python"})
	if err != nil {
		t.Fatal(err)
	}
	// The examples open sessions of their own: none may outlive the test.
	t.Cleanup(func() {
		list, err := c.Sessions(context.Background())
		if err != nil {
			t.Error(err)
			return
		}
		for _, s := range list.Sessions {
			if err := c.DeleteSession(context.Background(), s.ID); err != nil {
				t.Error(err)
			}
		}
	})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lua.tar"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.PutSessionFile(ctx, s.ID, "notes.txt", strings.NewReader("from the docs")); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, file := range []string{"docs/api.md", "docs/piston.md", "README.md"} {
		for _, ex := range docCommands(t, file) {
			if strings.Contains(ex, "…") {
				continue // an abbreviated form of an example run in full
			}
			n++
			cmd := strings.ReplaceAll(ex, "/run/runtimed/runtimed.sock", in.Socket)
			cmd = strings.ReplaceAll(cmd, "$ID", s.ID)
			cmd += " -s -o /dev/null -w '%{http_code}' --max-time 120"
			sh := exec.Command("sh", "-c", cmd)
			sh.Dir = dir
			out, err := sh.CombinedOutput()
			code := strings.TrimSpace(string(out))
			switch {
			case err != nil:
				t.Errorf("%s: %s: %v %s", file, ex, err, out)
			case strings.Contains(ex, "/v1/images/import"):
				if code != "400" {
					t.Errorf("%s: %s: %s with an empty archive, want 400 (the handler's refusal)", file, ex, code)
				}
			case strings.Contains(ex, "/v1/images/pull"):
				if code == "404" || code == "405" || code[0] == '2' {
					t.Errorf("%s: %s: %s without a registry, want the pull's failure", file, ex, code)
				}
			case code[0] != '2':
				t.Errorf("%s: %s: HTTP %s", file, ex, code)
			}
		}
	}
	if n < 12 {
		t.Fatalf("only %d examples found: the extraction is broken", n)
	}
}
