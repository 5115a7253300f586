//go:build integration

package security

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

var syscallZero = syscall.Signal(0)

func runBody(lang, filesJSON string, extra string) string {
	return fmt.Sprintf(`{"language": %q, "files": %s%s}`, lang, filesJSON, extra)
}

func fileJSON(name string) string {
	n, _ := json.Marshal(name)
	return fmt.Sprintf(`[{"name": %s, "content": "print(1)"}]`, n)
}

// TestRequestTricks: each is a clear 4xx, and nothing is created.
func TestRequestTricks(t *testing.T) {
	manyFiles := make([]string, 10000)
	for i := range manyFiles {
		manyFiles[i] = fmt.Sprintf(`{"name": "f%d.py", "content": ""}`, i)
	}
	nested := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
	args := make([]string, 300)
	for i := range args {
		args[i] = `"` + strings.Repeat("a", 4000) + `"`
	}
	cases := []struct {
		name   string
		body   string
		status int
		code   api.ErrorCode
	}{
		{"dot-dot", runBody("python", fileJSON("../x"), ""), 400, api.CodeInvalidFile},
		{"absolute", runBody("python", fileJSON("/etc/passwd"), ""), 400, api.CodeInvalidFile},
		{"NUL", runBody("python", fileJSON("a\x00b.py"), ""), 400, api.CodeInvalidFile},
		{"10,000-character name", runBody("python", fileJSON(strings.Repeat("n", 10000)), ""), 400, api.CodeInvalidFile},
		{"duplicates", runBody("python", `[{"name": "a.py", "content": ""}, {"name": "a.py", "content": ""}]`, ""), 400, api.CodeInvalidFile},
		{"10,000 files", runBody("python", "["+strings.Join(manyFiles, ",")+"]", ""), 400, api.CodeInvalidRequest},
		{"deeply nested JSON", `{"language": "python", "files": [], "limits": ` + nested + `}`, 400, api.CodeInvalidJSON},
		{"number out of range", runBody("python", fileJSON("a.py"), `, "limits": {"memory_bytes": 1e400}`), 400, api.CodeInvalidJSON},
		{"number too big for int64", runBody("python", fileJSON("a.py"), `, "limits": {"pids": 99999999999999999999}`), 400, api.CodeInvalidJSON},
		{"fractional integer", runBody("python", fileJSON("a.py"), `, "limits": {"pids": 1.5}`), 400, api.CodeInvalidJSON},
		{"negative memory", runBody("python", fileJSON("a.py"), `, "limits": {"memory_bytes": -1}`), 400, api.CodeInvalidRequest},
		{"negative cpu", runBody("python", fileJSON("a.py"), `, "limits": {"cpu": -0.5}`), 400, api.CodeInvalidRequest},
		{"negative output", runBody("python", fileJSON("a.py"), `, "limits": {"output_bytes": -100}`), 400, api.CodeInvalidRequest},
		{"1 MB of argv", runBody("python", fileJSON("a.py"), `, "args": [`+strings.Join(args, ",")+`]`), 400, api.CodeInvalidRequest},
		{"10 MB of stdin", runBody("python", fileJSON("a.py"), `, "stdin": "`+strings.Repeat("s", 10<<20)+`"`), 413, api.CodeBodyTooLarge},
		{"not an object", `["python"]`, 400, api.CodeInvalidJSON},
		{"null files", `{"language": "python", "files": null}`, 400, api.CodeInvalidRequest},
	}
	// What earlier tests released is removed in the background.
	harness.WaitNoLeftovers(t, 10*time.Second)
	before := strings.Join(harness.Leftovers(), ";")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := harness.PostRaw(t, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, trim(string(body)))
			}
			var e api.Error
			if err := harness.DecodeErrorBody(body, &e); err != nil || e.Code != c.code || e.Message == "" {
				t.Fatalf("error %+v (%v), want code %s", e, err, c.code)
			}
		})
	}
	if after := strings.Join(harness.Leftovers(), ";"); after != before {
		t.Fatalf("bad requests created %q", after)
	}
	if _, err := env.Client.Health(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestUnicodeNamesWork: a name in any script is a fine name.
func TestUnicodeNamesWork(t *testing.T) {
	resp := hostile(t, &api.RunRequest{Language: "python", Files: files(
		"main.py", "import importlib.util, os\nprint(sorted(os.listdir('données')), open('données/日本語.txt').read())",
		"données/日本語.txt", "ok",
	)})
	statusIn(t, resp, api.StatusOK)
	stdoutIs(t, resp, "['日本語.txt'] ok\n")
}

// TestMethodAndPathTricks: unknown paths and methods are answered, and
// nothing runs.
func TestMethodAndPathTricks(t *testing.T) {
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/v1/run"}, {http.MethodDelete, "/v1/run"}, {http.MethodPost, "/v1/run/../../etc/passwd"}, {http.MethodGet, "/%2e%2e/etc"},
	} {
		req, _ := http.NewRequest(c.method, "http://runtimed"+c.path, nil)
		resp, err := harness.UnixHTTP().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 4 && resp.StatusCode != http.StatusMovedPermanently {
			t.Errorf("%s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
}
