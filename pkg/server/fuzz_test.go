package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/pkg/config"
	"github.com/runtimed/runtimed/pkg/metrics"
)

// FuzzDecodeRun posts arbitrary bodies to /v1/run. Whatever the body, the
// answer is a 200 from the executor or a 4xx, never a 5xx or a panic, and
// what reaches the executor has passed every check.
func FuzzDecodeRun(f *testing.F) {
	f.Add([]byte(`{"language":"python","files":[{"name":"main.py","content":"print(1)"}]}`))
	f.Add([]byte(`{"language":"c","files":[{"name":"a.c","content":""}],"tests":[{"stdin":"1","expected_output":"2"}],"compare":"tokens"}`))
	f.Add([]byte(`{"language":"py","files":[{"name":"a/b.py","content":""}],"limits":{"memory_bytes":134217728,"cpu":0.5}}`))
	cfg := config.Default()
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := New(cfg, executor, fakePlatform{}, metrics.New(), logrus.NewEntry(log))
	f.Fuzz(func(t *testing.T, body []byte) {
		before := executor.calls.Load()
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/run", strings.NewReader(string(body))))
		ran := executor.calls.Load() > before
		switch {
		case rec.Code == http.StatusOK && ran:
			executor.mu.Lock()
			p := executor.plans[len(executor.plans)-1]
			executor.mu.Unlock()
			if len(p.Files) == 0 || len(p.Files) > cfg.Requests.MaxFiles {
				t.Fatalf("%d files reached the executor", len(p.Files))
			}
			for _, f := range p.Files {
				if err := ValidateFileName(f.Name); err != nil {
					t.Fatalf("bad name %q reached the executor: %v", f.Name, err)
				}
			}
			l, m := p.Limits, cfg.Maximums
			if l.MemoryBytes <= 0 || l.MemoryBytes > m.MemoryBytes || l.CPU <= 0 || l.CPU > m.CPU ||
				l.WallTimeMS <= 0 || l.WallTimeMS > m.WallTimeMS || l.Pids <= 0 || l.Pids > m.Pids ||
				l.OutputBytes <= 0 || l.OutputBytes > m.OutputBytes {
				t.Fatalf("limits %+v outside (0, %+v]", l, m)
			}
		case rec.Code/100 == 4 && !ran:
		default:
			t.Fatalf("status %d (executor called: %v): %s", rec.Code, ran, rec.Body.String())
		}
	})
}

// FuzzValidateFileName: an accepted name is a clean relative path inside
// /box, outside the build directory.
func FuzzValidateFileName(f *testing.F) {
	for _, s := range []string{"main.py", "lib/x.py", "../x", "/etc/passwd", "a\x00b", ".runtimed/main", "a//b", "日本.py"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateFileName(name) != nil {
			return
		}
		if path.IsAbs(name) || path.Clean(name) != name || name == "." || strings.HasPrefix(name, "../") ||
			strings.Contains(name, "/../") || name == ".." || strings.HasPrefix(name, ".runtimed") && (name == ".runtimed" || strings.HasPrefix(name, ".runtimed/")) ||
			!utf8.ValidString(name) || len(name) > 255 || strings.ContainsRune(name, 0) {
			t.Fatalf("accepted %q", name)
		}
	})
}
