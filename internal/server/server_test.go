package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/pkg/api"
)

type fakeExecutor struct {
	calls  atomic.Int32
	result api.StageResult
	err    error
	block  chan struct{} // if set, Execute waits on it
	mu     sync.Mutex
	plans  []execution.Plan
}

func (f *fakeExecutor) Execute(ctx context.Context, _ *logrus.Entry, p execution.Plan) (*api.RunResponse, error) {
	// One stage, as a plan of an interpreted language without tests has.
	if p.Admission != nil {
		leave, err := p.Admission.Enter(ctx)
		if err != nil {
			return nil, err
		}
		defer leave()
	}
	f.calls.Add(1)
	f.mu.Lock()
	f.plans = append(f.plans, p)
	f.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	res := f.result
	return &api.RunResponse{Language: p.Language.Name, Version: p.Language.Version, Status: res.Status, Run: &res}, nil
}

type fakePlatform struct {
	down     bool
	versions map[string]string
	// missing are, by image, the commands it does not hold.
	missing map[string][]string
	// allPresent: every image is there (else only Python's are).
	allPresent bool
}

func (p fakePlatform) Version(context.Context) (string, error) {
	if p.down {
		return "", errors.New("connection refused")
	}
	return "1.6.20", nil
}

func (p fakePlatform) ImageVersion(_ context.Context, ref string) (string, error) {
	return p.versions[ref], nil
}

func (p fakePlatform) MissingCommands(_ context.Context, ref string, commands, _ []string) ([]string, error) {
	var out []string
	for _, c := range commands {
		if slices.Contains(p.missing[ref], c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (p fakePlatform) ImagePresent(_ context.Context, ref string) (bool, error) {
	return p.allPresent || strings.Contains(ref, "python"), nil
}

func (p fakePlatform) Pools() []api.Pool {
	return []api.Pool{{Image: "runtimed.local/python:3.11", MemoryBytes: 128 << 20, Ready: 1, Target: 1, Size: 2, Sandboxes: []string{"rt-1"}}}
}

func TestPools(t *testing.T) {
	srv := newTestServer(t, nil, nil)
	c := api.NewHTTPClient(srv.URL, "", srv.Client())
	ps, err := c.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Pools) != 1 || ps.Pools[0].Ready != 1 || ps.Pools[0].Sandboxes[0] != "rt-1" {
		t.Fatalf("pools %+v", ps)
	}
}

func newTestServer(t *testing.T, executor Executor, change func(*config.Config)) *httptest.Server {
	t.Helper()
	cfg := config.Default()
	if change != nil {
		change(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := httptest.NewServer(New(cfg, executor, fakePlatform{}, metrics.New(), logrus.NewEntry(log)))
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, srv *httptest.Server, body string) (int, []byte) {
	t.Helper()
	return postTo(t, srv, "/v1/run", "application/json", body)
}

// postTo posts body to path with a Content-Type of contentType.
func postTo(t *testing.T, srv *httptest.Server, path, contentType, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(srv.URL+path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func TestRunPassesTheJob(t *testing.T) {
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK, Stdout: "hi\n"}}
	srv := newTestServer(t, executor, nil)
	status, body := post(t, srv, `{"language":"py","files":[{"name":"main.py","content":"print('hi')"},{"name":"lib/x.py","content":""}],"args":["a"],"stdin":"in","limits":{"cpu":1}}`)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	var resp api.RunResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Language != "python" || resp.Version != "3.13.5" || resp.Status != api.StatusOK || resp.Run.Stdout != "hi\n" {
		t.Fatalf("%+v", resp)
	}
	plan := executor.plans[0]
	if plan.Language.Name != "python" || len(plan.Files) != 2 || strings.Join(plan.Args, " ") != "a" || plan.Stdin != "in" {
		t.Fatalf("plan %+v", plan)
	}
	want := api.Limits{MemoryBytes: 128 << 20, CPU: 1, WallTimeMS: 5000, CPUTimeMS: 5000, Pids: 64, OutputBytes: 64 << 10}
	if plan.Limits != want {
		t.Fatalf("limits %+v, want %+v", plan.Limits, want)
	}
	wantCompile := api.Limits{MemoryBytes: 512 << 20, CPU: 1, WallTimeMS: 10000, CPUTimeMS: 10000, Pids: 128, OutputBytes: 64 << 10}
	if plan.CompileLimits != wantCompile {
		t.Fatalf("compile limits %+v, want %+v", plan.CompileLimits, wantCompile)
	}
}

// A Java file may have any name: a source file is named after the
// public class it declares, in its directory; a file without one, a
// request's other files and a rename that would clash keep their names.
func TestJavaFilesNamedAfterTheirClass(t *testing.T) {
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}
	srv := newTestServer(t, executor, nil)
	tests := []struct {
		name  string
		files string
		want  []string
	}{
		{"entry", `[{"name":"main.java","content":"public class Main {}"}]`, []string{"Main.java"}},
		{"several", `[{"name":"solution.java","content":"import java.util.*;\npublic final class Solution {}"},{"name":"pkg/util.java","content":"package pkg;\npublic class Util {}"},{"name":"helper.java","content":"class Helper {}"},{"name":"data.txt","content":"public class X {}"}]`,
			[]string{"Solution.java", "pkg/Util.java", "helper.java", "data.txt"}},
		{"already right", `[{"name":"Main.java","content":"public class Main {}"}]`, []string{"Main.java"}},
		{"a clash keeps the names", `[{"name":"a.java","content":"public class Main {}"},{"name":"Main.java","content":"class Other {}"}]`,
			[]string{"a.java", "Main.java"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(executor.plans)
			status, body := post(t, srv, `{"language":"java","files":`+tt.files+`}`)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, body)
			}
			var got []string
			for _, f := range executor.plans[before].Files {
				got = append(got, f.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("files %q, want %q", got, tt.want)
			}
		})
	}
	// Other languages' files are never renamed.
	before := len(executor.plans)
	if status, body := post(t, srv, `{"language":"c","files":[{"name":"main.c","content":"public class Main {}"}]}`); status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	if name := executor.plans[before].Files[0].Name; name != "main.c" {
		t.Fatalf("a C file renamed to %q", name)
	}
}

func TestBadRequestsCreateNothing(t *testing.T) {
	executor := &fakeExecutor{}
	srv := newTestServer(t, executor, nil)
	cases := []struct {
		name, body string
		status     int
		code       api.ErrorCode
		field      string
	}{
		{"empty body", ``, 400, api.CodeInvalidJSON, ""},
		{"malformed", `{"language":`, 400, api.CodeInvalidJSON, ""},
		{"two values", `{"language":"python","files":[{"name":"a.py","content":""}]} {}`, 400, api.CodeInvalidJSON, ""},
		{"wrong type", `{"language":"python","files":"a.py"}`, 400, api.CodeInvalidJSON, "files"},
		{"unknown field", `{"language":"python","files":[{"name":"a.py","content":""}],"extra":true}`, 400, api.CodeInvalidRequest, "extra"},
		{"unknown nested field", `{"language":"python","files":[{"name":"a.py","content":"","mode":7}]}`, 400, api.CodeInvalidRequest, "mode"},
		{"no language, an extension none has", `{"files":[{"name":"a.xyz","content":""}]}`, 400, api.CodeInvalidRequest, "language"},
		{"no language, no extension", `{"files":[{"name":"main","content":""}]}`, 400, api.CodeInvalidRequest, "language"},
		{"unknown language", `{"language":"cobol","files":[{"name":"a.py","content":""}]}`, 400, api.CodeUnknownLanguage, "language"},
		{"unknown version", `{"language":"python","version":"2.7","files":[{"name":"a.py","content":""}]}`, 400, api.CodeUnknownVersion, "version"},
		{"no files", `{"language":"python"}`, 400, api.CodeInvalidRequest, "files"},
		{"absolute", `{"language":"python","files":[{"name":"/a.py","content":""}]}`, 400, api.CodeInvalidFile, "files[0].name"},
		{"dot dot", `{"language":"python","files":[{"name":"a/../../b","content":""}]}`, 400, api.CodeInvalidFile, "files[0].name"},
		{"duplicate", `{"language":"python","files":[{"name":"a.py","content":""},{"name":"a.py","content":""}]}`, 400, api.CodeInvalidFile, "files[1].name"},
		{"file and dir", `{"language":"python","files":[{"name":"a","content":""},{"name":"a/b.py","content":""}]}`, 400, api.CodeInvalidFile, "files[1].name"},
		{"dir and file", `{"language":"python","files":[{"name":"a/b.py","content":""},{"name":"a","content":""}]}`, 400, api.CodeInvalidFile, "files[1].name"},
		{"NUL arg", `{"language":"python","files":[{"name":"a.py","content":""}],"args":["a\u0000b"]}`, 400, api.CodeInvalidRequest, "args[0]"},
		{"over max", `{"language":"python","files":[{"name":"a.py","content":""}],"limits":{"cpu":4}}`, 400, api.CodeLimitExceeded, "limits.cpu"},
		{"negative", `{"language":"python","files":[{"name":"a.py","content":""}],"limits":{"pids":-5}}`, 400, api.CodeInvalidRequest, "limits.pids"},
		{"huge number", `{"language":"python","files":[{"name":"a.py","content":""}],"limits":{"memory_bytes":1e30}}`, 400, api.CodeInvalidJSON, "limits.memory_bytes"},
		{"stdin over cap", `{"language":"python","files":[{"name":"a.py","content":""}],"stdin":"` + strings.Repeat("s", 1<<20+1) + `"}`, 413, api.CodeBodyTooLarge, "stdin"},
		{"reserved name", `{"language":"c","files":[{"name":".runtimed/main","content":""}]}`, 400, api.CodeInvalidFile, "files[0].name"},
		{"name like an option", `{"language":"c","files":[{"name":"-specs=d/x.c","content":""}]}`, 400, api.CodeInvalidFile, "files[0].name"},
		{"name like a response file", `{"language":"c","files":[{"name":"a.c","content":""},{"name":"@args","content":""}]}`, 400, api.CodeInvalidFile, "files[1].name"},
		{"compile limit over max", `{"language":"c","files":[{"name":"a.c","content":""}],"compile_limits":{"memory_bytes":4294967296}}`, 400, api.CodeLimitExceeded, "compile_limits.memory_bytes"},
		{"bad compare", `{"language":"c","files":[{"name":"a.c","content":""}],"tests":[{}],"compare":"fuzzy"}`, 400, api.CodeInvalidRequest, "compare"},
		{"stdin beside tests", `{"language":"c","files":[{"name":"a.c","content":""}],"stdin":"x","tests":[{}]}`, 400, api.CodeInvalidRequest, "tests"},
		{"too many tests", `{"language":"c","files":[{"name":"a.c","content":""}],"tests":[` + strings.Repeat(`{},`, 64) + `{}]}`, 400, api.CodeInvalidRequest, "tests"},
		{"NUL in a test arg", `{"language":"c","files":[{"name":"a.c","content":""}],"tests":[{},{"args":["\u0000"]}]}`, 400, api.CodeInvalidRequest, "tests[1].args[0]"},
		{"body over cap", `{"language":"python","files":[{"name":"a.py","content":"` + strings.Repeat("c", 2<<20) + `"}]}`, 413, api.CodeBodyTooLarge, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := post(t, srv, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, body)
			}
			var eb api.ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if eb.Error.Code != c.code || eb.Error.Field != c.field || eb.Error.Message == "" {
				t.Fatalf("error %+v, want code %s field %q", eb.Error, c.code, c.field)
			}
		})
	}
	if n := executor.calls.Load(); n != 0 {
		t.Fatalf("the executor was called %d times for bad requests", n)
	}
}

func TestBusyWhenQueueIsFull(t *testing.T) {
	executor := &fakeExecutor{block: make(chan struct{}), result: api.StageResult{Status: api.StatusOK}}
	srv := newTestServer(t, executor, func(c *config.Config) {
		c.Requests.MaxConcurrent = 1
		c.Requests.MaxQueued = 1
	})
	body := `{"language":"python","files":[{"name":"a.py","content":""}]}`
	results := make(chan int, 2)
	for i := 0; i < 2; i++ { // one runs, one waits
		go func() {
			s, _ := post(t, srv, body)
			results <- s
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for executor.calls.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the second one queue
	resp, err := http.Post(srv.URL+"/v1/run", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third request: status %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	close(executor.block)
	for i := 0; i < 2; i++ {
		if s := <-results; s != 200 {
			t.Fatalf("admitted request got %d", s)
		}
	}
}

func TestPlatformFailureIs5xx(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   api.ErrorCode
	}{
		{errors.New("copy box: open /var/lib/runtimed/runs/runtimed/rt-1f2e3d/x: no space left on device"), 500, api.CodeInternal},
		{fmt.Errorf("image runtimed.local/python:3.11: %w", sandbox.ErrImageMissing), 503, api.CodeImageMissing},
	} {
		srv := newTestServer(t, &fakeExecutor{err: tc.err}, nil)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/run", strings.NewReader(`{"language":"python","files":[{"name":"a.py","content":""}]}`))
		req.Header.Set("X-Request-Id", "req-42")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var eb api.ErrorBody
		_ = json.Unmarshal(body, &eb)
		if resp.StatusCode != tc.status || eb.Error.Code != tc.code {
			t.Errorf("%v: status %d code %s, want %d %s", tc.err, resp.StatusCode, eb.Error.Code, tc.status, tc.code)
		}
		// What went wrong on the host stays in the log: no paths, no
		// sandbox ids, no instance; the request id leads there.
		for _, secret := range []string{"/var/lib", "rt-1f2e3d", "runs/runtimed", "no space"} {
			if strings.Contains(string(body), secret) {
				t.Errorf("%v: the answer shows %q: %s", tc.err, secret, body)
			}
		}
		if tc.status == 500 && !strings.Contains(eb.Error.Message, "req-42") {
			t.Errorf("a 500 without the request id: %s", body)
		}
	}
}

func TestRuntimesAndHealth(t *testing.T) {
	srv := newTestServer(t, &fakeExecutor{}, nil)
	resp, err := http.Get(srv.URL + "/v1/runtimes")
	if err != nil {
		t.Fatal(err)
	}
	var rs api.RuntimesResponse
	if err := json.NewDecoder(resp.Body).Decode(&rs); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := map[string]api.Runtime{}
	for _, r := range rs.Runtimes {
		got[r.Language] = r
	}
	if len(rs.Runtimes) != len(config.DefaultLanguages()) || got["javascript"].ImagePresent || !got["python"].ImagePresent || got["python"].Extension != ".py" {
		t.Fatalf("%+v", rs)
	}
	resp, err = http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("healthz %d", resp.StatusCode)
	}
}

// A language with two versions: both listed by /v1/runtimes and Piston's
// runtimes, the newest run by default, the other by its selector, and an
// unknown version named with the versions there are.
func TestLanguageVersions(t *testing.T) {
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}
	srv := newTestServer(t, executor, func(c *config.Config) {
		l := c.Languages["python"]
		l.Name, l.Version, l.Image = "python", "3.13.5", "runtimed.local/python:3.13"
		c.Languages["python-3.13"] = l
	})
	var rs api.RuntimesResponse
	getJSON(t, srv.URL+"/v1/runtimes", &rs)
	var listed []string
	for _, r := range rs.Runtimes {
		if r.Language == "python" {
			listed = append(listed, r.Version+" "+r.Image)
		}
	}
	if !slices.Equal(listed, []string{"3.13.5 runtimed.local/python:3.13", "3.11.2 runtimed.local/python:3.11"}) {
		t.Fatalf("/v1/runtimes lists python %q", listed)
	}
	for _, tc := range []struct{ version, want string }{{"", "3.13.5"}, {"3.11", "3.11.2"}, {"3.x", "3.13.5"}, {"<3.12", "3.11.2"}} {
		before := len(executor.plans)
		status, body := post(t, srv, `{"language":"py","version":"`+tc.version+`","files":[{"name":"a.py","content":""}]}`)
		if status != http.StatusOK {
			t.Fatalf("version %q: %d %s", tc.version, status, body)
		}
		var resp api.RunResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		if l := executor.plans[before].Language; l.Version != tc.want || resp.Version != tc.want {
			t.Errorf("version %q ran %s (%s), answered %s; want %s", tc.version, l.Version, l.Image, resp.Version, tc.want)
		}
	}
	status, body := post(t, srv, `{"language":"python","version":"2","files":[{"name":"a.py","content":""}]}`)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "unknown_version") || !strings.Contains(string(body), "3.13.5, 3.11.2") {
		t.Fatalf("python 2: %d %s", status, body)
	}
	var prs []api.PistonRuntime
	getJSON(t, srv.URL+"/api/v2/runtimes", &prs)
	listed = nil
	for _, r := range prs {
		if r.Language == "python" {
			listed = append(listed, r.Version)
		}
	}
	if !slices.Equal(listed, []string{"3.13.5", "3.11.2"}) {
		t.Fatalf("Piston runtimes list python %q", listed)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func tcpServer(t *testing.T, executor Executor, change func(*config.Config)) (*httptest.Server, string) {
	t.Helper()
	const secret = "rtd_secret-for-tests"
	sum := sha256.Sum256([]byte(secret))
	cfg := config.Default()
	cfg.Tokens = []config.Token{{Name: "judge", SHA256: hex.EncodeToString(sum[:])}}
	if change != nil {
		change(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := httptest.NewServer(New(cfg, executor, fakePlatform{}, metrics.New(), logrus.NewEntry(log)).TCPHandler())
	t.Cleanup(srv.Close)
	return srv, secret
}

func getWith(t *testing.T, url, auth string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestTCPNeedsAToken(t *testing.T) {
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}
	srv, secret := tcpServer(t, executor, nil)
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic " + secret, "Bearer " + secret + "x"} {
		resp := getWith(t, srv.URL+"/v1/runtimes", auth)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: %d", auth, resp.StatusCode)
		}
	}
	// The probes need none: load balancers and Kubernetes carry none.
	for _, path := range []string{"/healthz", "/readyz"} {
		if resp := getWith(t, srv.URL+path, ""); resp.StatusCode == http.StatusUnauthorized {
			t.Errorf("%s without a token: %d", path, resp.StatusCode)
		}
	}
	// Only GET: a POST to a probe's path still needs the token.
	if resp, err := http.Post(srv.URL+"/healthz", "application/json", strings.NewReader("{}")); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /healthz without a token: %v %v", resp, err)
	}
	// A refused request reaches nothing, not even an unknown path's 404.
	if resp := getWith(t, srv.URL+"/nope", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown path without a token: %d", resp.StatusCode)
	}
	if resp := getWith(t, srv.URL+"/healthz", "Bearer "+secret); resp.StatusCode != http.StatusOK {
		t.Fatalf("good token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/run", strings.NewReader(`{"language":"python","files":[{"name":"a.py","content":""}]}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("run without a token: %v %v", resp, err)
	}
	if executor.calls.Load() != 0 {
		t.Fatal("an unauthenticated run executed")
	}
}

func TestTokenRateLimit(t *testing.T) {
	srv, secret := tcpServer(t, &fakeExecutor{}, func(c *config.Config) {
		c.Tokens[0].RatePerMinute = 1
		c.Tokens[0].Burst = 3
	})
	for i := 0; i < 3; i++ {
		if resp := getWith(t, srv.URL+"/v1/runtimes", "Bearer "+secret); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: %d", i, resp.StatusCode)
		}
	}
	resp := getWith(t, srv.URL+"/v1/runtimes", "Bearer "+secret)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("over the burst: %d", resp.StatusCode)
	}
	// One request a minute: the next is 60 s away, give or take.
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 50 || ra > 60 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
}

func TestTokenConcurrencyLimit(t *testing.T) {
	executor := &fakeExecutor{block: make(chan struct{}), result: api.StageResult{Status: api.StatusOK}}
	srv, secret := tcpServer(t, executor, func(c *config.Config) { c.Tokens[0].MaxConcurrent = 1 })
	run := func() *http.Response {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/run", strings.NewReader(`{"language":"python","files":[{"name":"a.py","content":""}]}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return nil
		}
		resp.Body.Close()
		return resp
	}
	first := make(chan int, 1)
	go func() {
		if r := run(); r != nil {
			first <- r.StatusCode
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for executor.calls.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r := run(); r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("second concurrent run: %d", r.StatusCode)
	}
	close(executor.block)
	if s := <-first; s != 200 {
		t.Fatalf("first run: %d", s)
	}
}

func TestReadyz(t *testing.T) {
	srv := newTestServer(t, &fakeExecutor{}, func(c *config.Config) { c.Runtime.Binary = "/bin/sh" })
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready api.Readiness
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	// The fake platform has only the python image.
	if resp.StatusCode != http.StatusServiceUnavailable || ready.Ready || ready.Checks["containerd"] != "ok" ||
		ready.Checks["runtime"] != "ok" || !strings.Contains(ready.Checks["images"], "runtimed.local/javascript:18") {
		t.Fatalf("%d %+v", resp.StatusCode, ready)
	}
	srv = newTestServer(t, &fakeExecutor{}, func(c *config.Config) {
		c.Runtime.Binary = "/bin/sh"
		c.Languages = map[string]config.Language{"python": config.DefaultLanguages()["python"]}
	})
	resp, err = http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with every image present: %d", resp.StatusCode)
	}
}

// TestReadyzListsASharedImageOnce: an image several languages use is
// one missing image.
func TestReadyzListsASharedImageOnce(t *testing.T) {
	srv := newTestServer(t, &fakeExecutor{}, func(c *config.Config) {
		js := config.DefaultLanguages()["javascript"]
		other := js
		other.Name, other.Extension, other.Aliases = "jsplus", ".jsp", nil
		c.Languages = map[string]config.Language{"javascript": js, "jsplus": other}
	})
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready api.Readiness
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if n := strings.Count(ready.Checks["images"], "javascript:18"); n != 1 {
		t.Fatalf("images check %q names the shared image %d times", ready.Checks["images"], n)
	}
}

// TestMetricsListener: metrics_listen serves /metrics and the probes,
// and answers other paths with the JSON error.
func TestMetricsListener(t *testing.T) {
	cfg := config.Default()
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := httptest.NewServer(New(cfg, &fakeExecutor{}, fakePlatform{}, metrics.New(), logrus.NewEntry(log)).MetricsHandler())
	t.Cleanup(srv.Close)
	for path, want := range map[string]int{"/metrics": 200, "/healthz": 200, "/readyz": 503, "/v1/run": 404, "/": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
		var eb api.ErrorBody
		if want == 404 && (json.Unmarshal(body, &eb) != nil || eb.Error.Code != api.CodeNotFound) {
			t.Errorf("GET %s: not the JSON error: %s", path, body)
		}
	}
	resp, err := http.Post(srv.URL+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}
}

func TestMetricsCountRejectionsAndLoad(t *testing.T) {
	executor := &fakeExecutor{block: make(chan struct{}), result: api.StageResult{Status: api.StatusOK}}
	srv := newTestServer(t, executor, nil)
	post(t, srv, `{"language":"cobol","files":[{"name":"a","content":""}]}`)
	go func() {
		resp, err := http.Post(srv.URL+"/v1/run", "application/json", strings.NewReader(`{"language":"python","files":[{"name":"a.py","content":""}]}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for executor.calls.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	close(executor.block)
	for _, want := range []string{
		`runtimed_rejections_total{reason="unknown_language"} 1`,
		`runtimed_executions_in_flight 1`,
		`runtimed_executions_queued 0`,
		`runtimed_phase_duration_seconds_count{phase="queue"} 1`,
		`go_goroutines`, `process_open_fds`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// The versions the images record are the languages' versions once
// RefreshImages has read them: listed, selected, and in the answers; a
// reload keeps them.
func TestImageVersionsAreReported(t *testing.T) {
	cfg := config.Default()
	log := logrus.New()
	log.SetOutput(io.Discard)
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}
	s := New(cfg, executor, fakePlatform{versions: map[string]string{"runtimed.local/java:25": "25.0.5", "runtimed.local/php:8.4": "8.4.27"}},
		metrics.New(), logrus.NewEntry(log))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	versions := func() map[string]bool {
		var rs api.RuntimesResponse
		getJSON(t, srv.URL+"/v1/runtimes", &rs)
		out := map[string]bool{}
		for _, r := range rs.Runtimes {
			out[r.Language+" "+r.Version] = true
		}
		return out
	}
	if v := versions(); !v["java 25"] || !v["php 8.4"] {
		t.Fatalf("before the images are read: %v", v)
	}
	s.RefreshImages(context.Background())
	if v := versions(); !v["java 25.0.5"] || !v["php 8.4.27"] || !v["java 21"] || v["java 25"] {
		t.Fatalf("after: %v", v)
	}
	status, body := post(t, srv, `{"language":"java","version":"25.0.5","files":[{"name":"Main.java","content":"class Main{}"}]}`)
	if status != 200 || !strings.Contains(string(body), `"version":"25.0.5"`) {
		t.Fatalf("java 25.0.5: %d %s", status, body)
	}
	s.Reload(cfg)
	if v := versions(); !v["php 8.4.27"] {
		t.Fatalf("after a reload: %v", v)
	}
}

// TestLogMissingImages: start-up names each language without its image.
func TestLogMissingImages(t *testing.T) {
	cfg := config.Default()
	log := logrus.New()
	var buf strings.Builder
	log.SetOutput(&buf)
	s := New(cfg, &fakeExecutor{}, fakePlatform{}, metrics.New(), logrus.NewEntry(log))
	n := s.LogMissingImages(context.Background())
	want := 0
	for _, l := range s.state.Load().langs.All() {
		if !strings.Contains(l.Image, "python") {
			want++
		}
	}
	if n != want || want == 0 {
		t.Fatalf("%d languages without an image, want %d", n, want)
	}
	if !strings.Contains(buf.String(), "language=javascript") || strings.Contains(buf.String(), "language=python") {
		t.Fatalf("log: %s", buf.String())
	}
}

// TestLanguageByExtension: a request without a language runs in the one
// its first file's extension names; of several, the shortest name.
func TestLanguageByExtension(t *testing.T) {
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}
	srv := newTestServer(t, executor, nil)
	for file, want := range map[string]string{"a.py": "python", "x/m.c": "c", "m.CPP": "cpp", "s.sh": "bash", "t.ts": "typescript"} {
		status, body := post(t, srv, fmt.Sprintf(`{"files":[{"name":%q,"content":""}]}`, file))
		var resp api.RunResponse
		if err := json.Unmarshal(body, &resp); status != 200 || err != nil || resp.Language != want {
			t.Errorf("%s: %d %s, want %s", file, status, body, want)
		}
	}
}

// A language whose command is not in its image is unavailable once
// RefreshImages has looked: listed with the reason, its requests
// refused 503 language_unavailable on every API, /readyz not ready; it
// runs again when its image holds the command.
func TestUnavailableLanguage(t *testing.T) {
	cfg := config.Default()
	log := logrus.New()
	var logged strings.Builder
	log.SetOutput(&logged)
	platform := &fakePlatform{missing: map[string][]string{"runtimed.local/lua:5.4": {"/usr/bin/lua5.4"}}, allPresent: true}
	executor := &fakeExecutor{result: api.StageResult{Status: api.StatusOK}}
	s := New(cfg, executor, platform, metrics.New(), logrus.NewEntry(log))
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.RefreshImages(context.Background())

	var rs api.RuntimesResponse
	getJSON(t, srv.URL+"/v1/runtimes", &rs)
	for _, r := range rs.Runtimes {
		want := r.Language == "lua" && r.Version == cfg.Languages["lua"].Version
		if (r.Unavailable != "") != want {
			t.Errorf("%s %s: unavailable %q", r.Language, r.Version, r.Unavailable)
		}
		if want && !strings.Contains(r.Unavailable, "/usr/bin/lua5.4 is not in its image runtimed.local/lua:5.4") {
			t.Errorf("reason %q", r.Unavailable)
		}
	}
	if !strings.Contains(logged.String(), "the language cannot run") {
		t.Errorf("not logged: %s", logged.String())
	}
	for _, c := range []struct{ path, body string }{
		{"/v1/run", `{"language":"lua","version":"5.4.4","files":[{"name":"a.lua","content":""}]}`},
		{"/api/v2/execute", `{"language":"lua","version":"5.4.4","files":[{"content":""}]}`},
	} {
		status, body := postTo(t, srv, c.path, "application/json", c.body)
		if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "/usr/bin/lua5.4 is not in its image") {
			t.Errorf("%s: %d %s", c.path, status, body)
		}
		if c.path == "/v1/run" && !strings.Contains(string(body), string(api.CodeLanguageUnavailable)) {
			t.Errorf("%s: %s", c.path, body)
		}
	}
	if executor.calls.Load() != 0 {
		t.Fatalf("%d executions of an unavailable language", executor.calls.Load())
	}
	// Piston's clients are not offered it, and no retry is offered.
	var prs []api.PistonRuntime
	getJSON(t, srv.URL+"/api/v2/runtimes", &prs)
	luas := 0
	for _, pr := range prs {
		if pr.Language == "lua" {
			luas++
			if pr.Version == "5.4.4" {
				t.Errorf("/api/v2/runtimes lists lua 5.4.4")
			}
		}
	}
	if luas != 1 {
		t.Errorf("/api/v2/runtimes lists %d versions of lua, want the one that runs", luas)
	}
	resp0, err := http.Post(srv.URL+"/v1/run", "application/json", strings.NewReader(`{"language":"lua","version":"5.4.4","files":[{"name":"a.lua","content":""}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp0.Body.Close()
	if resp0.StatusCode != http.StatusServiceUnavailable || resp0.Header.Get("Retry-After") != "" {
		t.Errorf("status %d, Retry-After %q", resp0.StatusCode, resp0.Header.Get("Retry-After"))
	}
	// The other version of lua runs.
	if status, body := post(t, srv, `{"language":"lua","version":"5.4.7","files":[{"name":"a.lua","content":""}]}`); status != 200 {
		t.Fatalf("lua 5.4.7: %d %s", status, body)
	}
	var ready api.Readiness
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if !strings.Contains(ready.Checks["languages"], "lua 5.4.4 (/usr/bin/lua5.4 is not in its image") {
		t.Fatalf("/readyz: %+v", ready)
	}

	// The image gets the command (rebuilt, or the table fixed).
	platform.missing = nil
	s.RefreshImages(context.Background())
	if status, body := post(t, srv, `{"language":"lua","version":"5.4.4","files":[{"name":"a.lua","content":""}]}`); status != 200 {
		t.Fatalf("lua 5.4.4 once its image holds its command: %d %s", status, body)
	}
	if !strings.Contains(logged.String(), "the language can run again") {
		t.Errorf("not logged: %s", logged.String())
	}
}
