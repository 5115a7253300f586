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

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/pkg/api"
)

// FuzzDecodeRun posts arbitrary bodies to /v1/run (see fuzzDecode).
func FuzzDecodeRun(f *testing.F) {
	f.Add([]byte(`{"language":"python","files":[{"name":"main.py","content":"print(1)"}]}`))
	f.Add([]byte(`{"language":"c","files":[{"name":"a.c","content":""}],"tests":[{"stdin":"1","expected_output":"2"}],"compare":"tokens"}`))
	f.Add([]byte(`{"language":"py","files":[{"name":"a/b.py","content":""}],"limits":{"memory_bytes":134217728,"cpu":0.5,"cpu_time_ms":100}}`))
	fuzzDecode(f, "/v1/run")
}

// FuzzDecodePiston does the same to the Piston API's /api/v2/execute.
func FuzzDecodePiston(f *testing.F) {
	f.Add([]byte(`{"language":"python","version":"*","files":[{"content":"print(1)"}]}`))
	f.Add([]byte(`{"language":"java","version":"17","files":[{"content":"public class A {}"},{"name":"b.java","content":"YQ==","encoding":"base64"}],"run_timeout":100}`))
	f.Add([]byte(`{"language":"c","version":"^12","files":[{"content":"00","encoding":"hex"}],"compile_memory_limit":-1,"run_cpu_time":50,"stdin":"x","args":["1"]}`))
	fuzzDecode(f, "/api/v2/execute")
}

// fuzzDecode posts arbitrary bodies to path: the answer is a 200 from the
// executor or a 4xx, never a 5xx or a panic, and what reaches the
// executor has passed every check.
func fuzzDecode(f *testing.F, path string) {
	cfg := config.Default()
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := New(cfg, executor, fakePlatform{}, metrics.New(), logrus.NewEntry(log))
	f.Fuzz(func(t *testing.T, body []byte) {
		before := executor.calls.Load()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		srv.ServeHTTP(rec, req)
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
				if err := validateFileName(f.Name); err != nil {
					t.Fatalf("bad name %q reached the executor: %v", f.Name, err)
				}
			}
			checkLimits(t, p.Limits, cfg.Maximums)
			checkLimits(t, p.CompileLimits, cfg.CompileMaximums)
		case rec.Code/100 == 4 && !ran:
		default:
			t.Fatalf("status %d (executor called: %v): %s", rec.Code, ran, rec.Body.String())
		}
	})
}

func checkLimits(t *testing.T, l api.Limits, m config.Limits) {
	t.Helper()
	minimum := api.MinLimits()
	for _, f := range api.LimitFields() {
		if f.Less(l, minimum) || f.Less(m, l) {
			t.Fatalf("%s %s outside [%s, %s]", f.Name, f.Format(l), f.Format(minimum), f.Format(m))
		}
	}
}

// FuzzValidateFileName: an accepted name is a clean relative path inside
// /box, outside the build directory, that no command takes as an option.
func FuzzValidateFileName(f *testing.F) {
	for _, s := range []string{"main.py", "lib/x.py", "../x", "/etc/passwd", "a\x00b", ".runtimed/main", "a//b", "日本.py", "-specs=d/x.c", "@args", "d/-x.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if validateFileName(name) != nil {
			return
		}
		if path.IsAbs(name) || path.Clean(name) != name || name == "." || strings.HasPrefix(name, "../") ||
			strings.Contains(name, "/../") || name == ".." || strings.HasPrefix(name, ".runtimed") && (name == ".runtimed" || strings.HasPrefix(name, ".runtimed/")) ||
			!utf8.ValidString(name) || len(name) > 255 || strings.ContainsRune(name, 0) ||
			strings.HasPrefix(name, "-") || strings.HasPrefix(name, "@") {
			t.Fatalf("accepted %q", name)
		}
	})
}
