//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// A request's version selects among a language's versions: the newest
// that matches, the newest without one; an unknown one is a 400 naming
// the versions there are. The Piston API selects the same way.
func TestVersionSelection(t *testing.T) {
	versions := map[string]string{}
	rs, err := env.Client.Runtimes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var pythons []string
	for _, r := range rs.Runtimes {
		if r.Language == "python" {
			pythons = append(pythons, r.Version)
		}
	}
	if len(pythons) < 2 || !strings.HasPrefix(pythons[0], "3.13.") || !strings.HasPrefix(pythons[1], "3.11.") {
		t.Fatalf("python's versions, newest first: %v", pythons)
	}
	newest, older := pythons[0], pythons[1]
	versions[""], versions["*"], versions["3.x"], versions["3.11"], versions["3.13"], versions[older], versions["<3.12"] = newest, newest, newest, older, newest, older, older
	prog := "import platform\nprint(platform.python_version())"
	for sel, want := range versions {
		resp := runOK(t, &api.RunRequest{Language: "python", Version: sel, Files: files("main.py", prog)})
		expectStatus(t, resp, api.StatusOK)
		if resp.Version != want || strings.TrimSpace(resp.Run.Stdout) != want {
			t.Errorf("version %q: answered %s, ran %q; want %s", sel, resp.Version, resp.Run.Stdout, want)
		}
	}
	// By an alias of one version.
	resp := runOK(t, &api.RunRequest{Language: "python3.11", Files: files("main.py", prog)})
	if resp.Version != older {
		t.Errorf("python3.11 ran %s", resp.Version)
	}

	_, err = env.Client.Run(context.Background(), &api.RunRequest{Language: "python", Version: "2.7", Files: files("main.py", prog)})
	var aerr *api.Error
	if !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusBadRequest || aerr.Code != api.CodeUnknownVersion || !strings.Contains(aerr.Message, newest) || !strings.Contains(aerr.Message, older) {
		t.Fatalf("python 2.7: %v", err)
	}

	for _, v := range []string{older, newest} {
		status, body := harness.Do(t, unixHTTP(), "POST", "http://runtimed/api/v2/execute", "application/json", "",
			`{"language":"python","version":"`+v+`","files":[{"content":"import platform\nprint(platform.python_version())"}]}`)
		var out api.PistonExecuteResponse
		if err := json.Unmarshal(body, &out); err != nil || status != 200 || out.Version != v || strings.TrimSpace(out.Run.Stdout) != v {
			t.Errorf("piston %s: %d %s", v, status, body)
		}
	}
}

// Python's newest version has the data stack: each library imports, and
// matplotlib writes a PNG into /box, which the program reads back.
func TestPythonDataStack(t *testing.T) {
	prog := `import io, struct
import numpy as np, pandas as pd, scipy, scipy.stats, sympy, PIL.Image
import matplotlib
import matplotlib.pyplot as plt
x = np.linspace(0, 2 * np.pi, 50)
df = pd.DataFrame({"x": x, "y": np.sin(x)})
plt.plot(df.x, df.y)
plt.savefig("/box/plot.png")
data = open("/box/plot.png", "rb").read()
w, h = struct.unpack(">II", data[16:24])
img = PIL.Image.open(io.BytesIO(data))
print(matplotlib.get_backend(), data[:8] == b"\x89PNG\r\n\x1a\n", w, h, img.size == (w, h))
print(round(float(scipy.stats.norm.cdf(0)), 2), sympy.simplify("sin(t)**2 + cos(t)**2"), int(df.y.idxmax()))
`
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("main.py", prog),
		Limits: api.Limits{MemoryBytes: 512 << 20, WallTimeMS: 30000, CPUTimeMS: 30000}})
	expectStatus(t, resp, api.StatusOK)
	if want := "agg true 640 480 true\n0.5 1 12\n"; strings.ToLower(resp.Run.Stdout) != want {
		t.Fatalf("stdout %q, want %q; stderr %q", resp.Run.Stdout, want, trim(resp.Run.Stderr))
	}
}
