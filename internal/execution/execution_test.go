package execution

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/pkg/api"
)

// fakeSandboxes gives fake sandboxes whose boxes are plain directories
// and whose programs are run by run: the stages' logic without
// containerd.
type fakeSandboxes struct {
	t *testing.T
	// run plays the stage's program: i counts the sandboxes acquired,
	// from 0, box is the sandbox's.
	run func(i int, prog sandbox.Program, box *sandbox.Box) (api.StageResult, error)
	// boxBytes, if set, is the size of the box of the i-th sandbox.
	boxBytes func(i int) int64
	err      error // Acquire's, if set

	mu       sync.Mutex
	acquired []*fakeSandbox
	profiles []sandbox.Profile
}

func (f *fakeSandboxes) Acquire(_ context.Context, p sandbox.Profile, _ *logrus.Entry) (Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	i := len(f.acquired)
	size := int64(1 << 20)
	if f.boxBytes != nil {
		size = f.boxBytes(i)
	}
	dir := filepath.Join(f.t.TempDir(), "box")
	if err := os.Mkdir(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	sb := &fakeSandbox{f: f, i: i, box: sandbox.BoxAt(dir, size, 1000)}
	f.acquired = append(f.acquired, sb)
	f.profiles = append(f.profiles, p)
	return sb, nil
}

// check fails the test if a sandbox was not released exactly once, or
// a kept box was not removed.
func (f *fakeSandboxes) check(t *testing.T) {
	t.Helper()
	for _, sb := range f.acquired {
		if sb.released != 1 {
			t.Errorf("sandbox %d released %d times", sb.i, sb.released)
		}
		if _, err := os.Stat(sb.box.Dir()); sb.kept && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("sandbox %d's kept box was not removed: %v", sb.i, err)
		}
	}
}

type fakeSandbox struct {
	f        *fakeSandboxes
	i        int
	box      *sandbox.Box
	kept     bool
	released int
	progs    []sandbox.Program
	last     api.StageResult
}

func (s *fakeSandbox) Box() *sandbox.Box { return s.box }

func (s *fakeSandbox) KeepBox() *sandbox.Box {
	s.kept = true
	return s.box
}

func (s *fakeSandbox) Run(_ context.Context, prog sandbox.Program) (api.StageResult, error) {
	s.progs = append(s.progs, prog)
	res, err := s.f.run(s.i, prog, s.box)
	s.last = res
	return res, err
}

func (s *fakeSandbox) Release() { s.released++ }

// Reusable: a fake sandbox takes another program unless its last one
// was a memory_limit (the verdict a killed sandbox gives).
func (s *fakeSandbox) Reusable() bool {
	return len(s.progs) > 0 && s.last.Status != api.StatusMemoryLimit
}

// countingAdmission admits every stage and counts the places taken and
// given back.
type countingAdmission struct {
	entered, left int
	contended     bool // what Contended says
}

func (a *countingAdmission) Contended() bool { return a.contended }

func (a *countingAdmission) Enter(context.Context) (func(), error) {
	a.entered++
	return func() { a.left++ }, nil
}

func lang(t *testing.T, name string) *language.Language {
	t.Helper()
	l, ok := language.NewRegistry(config.Default()).Lookup(name)
	if !ok {
		t.Fatalf("no language %s", name)
	}
	return l
}

func ok(stdout string) api.StageResult {
	return api.StageResult{Status: api.StatusOK, Stdout: stdout}
}

func execute(t *testing.T, f *fakeSandboxes, p Plan) (*api.RunResponse, error) {
	t.Helper()
	f.t = t
	log := logrus.NewEntry(logrus.New())
	log.Logger.SetOutput(nopWriter{})
	return New(f, metrics.New()).Execute(context.Background(), log, p)
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

var (
	runLimits     = api.Limits{MemoryBytes: 128 << 20, CPU: 1, WallTimeMS: 2000, CPUTimeMS: 1000, Pids: 32, OutputBytes: 1 << 16}
	compileLimits = api.Limits{MemoryBytes: 512 << 20, CPU: 2, WallTimeMS: 10000, CPUTimeMS: 10000, Pids: 64, OutputBytes: 1 << 16}
)

func TestInterpretedRun(t *testing.T) {
	py := lang(t, "python")
	f := &fakeSandboxes{run: func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
		got, err := os.ReadFile(filepath.Join(b.Dir(), "main.py"))
		if err != nil || string(got) != "print(input())" {
			t.Errorf("the box holds %q, %v", got, err)
		}
		if string(prog.Stdin) != "hi" || !slices.Contains(prog.Args, "a1") || prog.Limits != runLimits {
			t.Errorf("program %+v", prog)
		}
		if prog.OutOfMemory == nil {
			t.Error("the language's out-of-memory markers were not passed to the sandbox")
		}
		return ok("hi\n"), nil
	}}
	adm := &countingAdmission{}
	resp, err := execute(t, f, Plan{Language: py, Files: []api.File{{Name: "main.py", Content: "print(input())"}},
		Stdin: "hi", Args: []string{"a1"}, Limits: runLimits, Admission: adm})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != api.StatusOK || resp.Run == nil || resp.Run.Stdout != "hi\n" || resp.Compile != nil || resp.Tests != nil {
		t.Fatalf("response %+v", resp)
	}
	if resp.Language != "python" || resp.Version != py.Version {
		t.Fatalf("language %s %s", resp.Language, resp.Version)
	}
	if len(f.profiles) != 1 || f.profiles[0] != sandbox.ProfileOf(py.Image, runLimits) {
		t.Fatalf("profiles %+v", f.profiles)
	}
	if adm.entered != 1 || adm.left != 1 {
		t.Fatalf("admission: %d entered, %d left", adm.entered, adm.left)
	}
	if f.acquired[0].kept {
		t.Fatal("an interpreted run's box was kept")
	}
	f.check(t)
}

// The compile stage's box is kept; the run gets a copy of the build in a
// sandbox of its own, of the run's profile.
func TestCompileThenRun(t *testing.T) {
	cpp := lang(t, "cpp")
	f := &fakeSandboxes{run: func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
		if i == 0 {
			if prog.Limits != compileLimits || !slices.Contains(prog.Args, "main.cpp") || prog.OutOfMemory == nil {
				t.Errorf("compile program %+v", prog)
			}
			if fi, err := os.Stat(filepath.Join(b.Dir(), BuildDir)); err != nil || !fi.IsDir() {
				t.Errorf("no build directory: %v", err)
			}
			return ok(""), os.WriteFile(filepath.Join(b.Dir(), BuildDir, "main"), []byte("\x7fELF"), 0o755)
		}
		if got, err := os.ReadFile(filepath.Join(b.Dir(), BuildDir, "main")); err != nil || string(got) != "\x7fELF" {
			t.Errorf("the run's box holds %q, %v", got, err)
		}
		if prog.Limits != runLimits || prog.OutOfMemory == nil {
			t.Errorf("run program %+v", prog)
		}
		return ok("3\n"), nil
	}}
	resp, err := execute(t, f, Plan{Language: cpp, Files: []api.File{{Name: "main.cpp", Content: "int main(){}"}},
		Limits: runLimits, CompileLimits: compileLimits})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != api.StatusOK || resp.Compile == nil || resp.Compile.Status != api.StatusOK || resp.Run == nil || resp.Run.Stdout != "3\n" {
		t.Fatalf("response %+v", resp)
	}
	want := []sandbox.Profile{sandbox.ProfileOf(cpp.Image, compileLimits), sandbox.ProfileOf(cpp.Image, runLimits)}
	if !slices.Equal(f.profiles, want) {
		t.Fatalf("profiles %+v, want %+v", f.profiles, want)
	}
	if !f.acquired[0].kept || f.acquired[1].kept {
		t.Fatal("the compile's box, and only it, is kept")
	}
	f.check(t)
}

func TestCompileError(t *testing.T) {
	cpp := lang(t, "cpp")
	failed := api.StageResult{Status: api.StatusRuntimeError, ExitCode: 1, Stderr: "main.cpp:1: error", Message: "exited with status 1"}
	f := &fakeSandboxes{run: func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
		return failed, nil
	}}
	resp, err := execute(t, f, Plan{Language: cpp, Files: []api.File{{Name: "main.cpp", Content: "int main("}},
		Limits: runLimits, CompileLimits: compileLimits, Tests: []api.Test{{}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != api.StatusCompileError || resp.Compile == nil || *resp.Compile != failed || resp.Run != nil || resp.Tests != nil || resp.Summary != nil {
		t.Fatalf("response %+v", resp)
	}
	if len(f.acquired) != 1 {
		t.Fatalf("%d sandboxes for a failed compile", len(f.acquired))
	}
	f.check(t)
}

// A build that does not fit in the run's box is the compile's fault: a
// compile_error, not a platform failure.
func TestBuildTooLarge(t *testing.T) {
	cpp := lang(t, "cpp")
	f := &fakeSandboxes{
		boxBytes: func(i int) int64 { return map[int]int64{0: 1 << 20, 1: 16}[i] },
		run: func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
			if i > 0 {
				t.Error("a build too large for the run's box ran")
			}
			return api.StageResult{Status: api.StatusOK, Stderr: "warning\n", Output: "warning\n"},
				os.WriteFile(filepath.Join(b.Dir(), BuildDir, "main"), make([]byte, 64), 0o755)
		}}
	resp, err := execute(t, f, Plan{Language: cpp, Files: []api.File{{Name: "main.cpp", Content: "int main(){}"}},
		Limits: runLimits, CompileLimits: compileLimits})
	if err != nil {
		t.Fatal(err)
	}
	c := resp.Compile
	if resp.Status != api.StatusCompileError || c == nil || c.Status != api.StatusCompileError || resp.Run != nil {
		t.Fatalf("response %+v", resp)
	}
	if !strings.HasPrefix(c.Message, "the build holds") || !strings.HasPrefix(c.Stderr, "warning\nruntimed: the build holds") ||
		!strings.HasPrefix(c.Output, "warning\nruntimed: ") || strings.Contains(c.Message, f.acquired[0].box.Dir()) {
		t.Fatalf("compile %+v", c)
	}
	f.check(t)
}

func TestMainClass(t *testing.T) {
	java := lang(t, "java")
	class, err := os.ReadFile(filepath.Join("..", "language", "testdata", "classes", "Other.class"))
	if err != nil {
		t.Fatal(err)
	}
	files := []api.File{{Name: "Other.java", Content: "class Other {}"}}
	t.Run("found", func(t *testing.T) {
		var runArgs []string
		f := &fakeSandboxes{run: func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
			if i == 0 {
				dir := filepath.Join(b.Dir(), BuildDir, "classes")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return api.StageResult{}, err
				}
				if !prog.OutOfMemory("Exception: java.lang.OutOfMemoryError: Java heap space") {
					t.Error("the compile's program does not know Java's out-of-memory message")
				}
				return ok(""), os.WriteFile(filepath.Join(dir, "Other.class"), class, 0o644)
			}
			runArgs = prog.Args
			return ok(""), nil
		}}
		resp, err := execute(t, f, Plan{Language: java, Files: files, Limits: runLimits, CompileLimits: compileLimits})
		if err != nil || resp.Status != api.StatusOK {
			t.Fatalf("%+v, %v", resp, err)
		}
		if len(runArgs) == 0 || runArgs[len(runArgs)-1] != "Other" {
			t.Fatalf("run %v", runArgs)
		}
		f.check(t)
	})
	t.Run("none", func(t *testing.T) {
		f := &fakeSandboxes{run: func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
			return ok(""), nil
		}}
		ev := &recordedEvents{}
		resp, err := execute(t, f, Plan{Language: java, Files: files, Limits: runLimits, CompileLimits: compileLimits, Events: ev})
		if err != nil {
			t.Fatal(err)
		}
		// Heard as it is answered.
		if want := []string{"end compile -1 compile_error"}; !slices.Equal(ev.got, want) {
			t.Fatalf("events %q, want %q", ev.got, want)
		}
		if resp.Status != api.StatusCompileError || resp.Compile.Status != api.StatusCompileError ||
			resp.Compile.Message == "" || !strings.Contains(resp.Compile.Stderr, "runtimed: "+resp.Compile.Message) || resp.Run != nil {
			t.Fatalf("response %+v", resp)
		}
		if len(f.acquired) != 1 {
			t.Fatalf("%d sandboxes", len(f.acquired))
		}
		f.check(t)
	})
}

// The tests run one after the other in one sandbox, each on the
// request's files alone; a test whose stdout differs from its expected
// output is wrong_answer; the response's status is
// that of the first test that was not ok.
func TestJudgedTests(t *testing.T) {
	py := lang(t, "python")
	want := func(s string) *string { return &s }
	f := &fakeSandboxes{run: func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
		// What a test leaves in the box is gone for the next.
		if names, err := os.ReadDir(b.Dir()); err != nil || len(names) != 1 || names[0].Name() != "main.py" {
			t.Errorf("box %v (%v) before test %q", names, err, prog.Stdin)
		}
		if err := os.WriteFile(filepath.Join(b.Dir(), "left"), nil, 0o644); err != nil {
			t.Error(err)
		}
		if string(prog.Stdin) == "crash" {
			return api.StageResult{Status: api.StatusRuntimeError, ExitCode: 1}, nil
		}
		return ok(string(prog.Stdin) + "\n"), nil
	}}
	tests := []api.Test{
		{Stdin: "1", ExpectedOutput: want("1")},
		{Stdin: "2", ExpectedOutput: want("3")},
		{Stdin: "4"},
		{Stdin: "crash", ExpectedOutput: want("")},
		{Stdin: "5 6", ExpectedOutput: want("5\n6\n")},
	}
	resp, err := execute(t, f, Plan{Language: py, Files: []api.File{{Name: "main.py", Content: ""}},
		Limits: runLimits, Tests: tests, Compare: api.CompareTokens})
	if err != nil {
		t.Fatal(err)
	}
	var got []api.Status
	for _, r := range resp.Tests {
		got = append(got, r.Status)
	}
	wantStatus := []api.Status{api.StatusOK, api.StatusWrongAnswer, api.StatusOK, api.StatusRuntimeError, api.StatusOK}
	if !slices.Equal(got, wantStatus) {
		t.Fatalf("tests %v, want %v", got, wantStatus)
	}
	wantSummary := map[api.Status]int{api.StatusOK: 3, api.StatusWrongAnswer: 1, api.StatusRuntimeError: 1}
	if resp.Status != api.StatusWrongAnswer || resp.Run != nil || resp.Message != "" || !maps.Equal(resp.Summary, wantSummary) {
		t.Fatalf("response %+v", resp)
	}
	if len(f.acquired) != 1 || len(f.acquired[0].progs) != len(tests) {
		t.Fatalf("%d sandboxes for %d tests", len(f.acquired), len(tests))
	}
	f.check(t)
}

// recordedEvents keeps what an Events heard, one line per call.
type recordedEvents struct{ got []string }

func (r *recordedEvents) StageStarted(stage string, test int) {
	r.got = append(r.got, fmt.Sprintf("start %s %d", stage, test))
}

func (r *recordedEvents) Output(stage string, test int, stream string, data []byte) {
	r.got = append(r.got, fmt.Sprintf("%s %s %d %q", stream, stage, test, data))
}

func (r *recordedEvents) StageEnded(stage string, test int, res api.StageResult) {
	r.got = append(r.got, fmt.Sprintf("end %s %d %s", stage, test, res.Status))
}

// A test's end is heard with its verdict: a wrong answer is one, not the
// ok its program exited with.
func TestEventsHearTheTestsVerdicts(t *testing.T) {
	want := func(s string) *string { return &s }
	f := &fakeSandboxes{run: func(_ int, prog sandbox.Program, _ *sandbox.Box) (api.StageResult, error) {
		prog.Started()
		prog.Output("stdout", prog.Stdin)
		return ok(string(prog.Stdin)), nil
	}}
	ev := &recordedEvents{}
	_, err := execute(t, f, Plan{Language: lang(t, "python"), Files: []api.File{{Name: "main.py", Content: ""}},
		Limits: runLimits, Tests: []api.Test{{Stdin: "1", ExpectedOutput: want("1")}, {Stdin: "2", ExpectedOutput: want("3")}},
		Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	wantEvents := []string{
		"start test 0", `stdout test 0 "1"`, "end test 0 ok",
		"start test 1", `stdout test 1 "2"`, "end test 1 wrong_answer",
	}
	if !slices.Equal(ev.got, wantEvents) {
		t.Fatalf("events\n%s\nwant\n%s", strings.Join(ev.got, "\n"), strings.Join(wantEvents, "\n"))
	}
	f.check(t)
}

// Tests that could not start before the request's deadline are skipped,
// and the response says how many.
func TestTestsSkippedAfterTheDeadline(t *testing.T) {
	py := lang(t, "python")
	const timeout = 50 * time.Millisecond
	var deadline time.Time
	f := &fakeSandboxes{run: func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
		deadline = prog.Deadline
		time.Sleep(timeout + 20*time.Millisecond)
		return ok(""), nil
	}}
	adm := &countingAdmission{}
	start := time.Now()
	resp, err := execute(t, f, Plan{Language: py, Files: []api.File{{Name: "main.py", Content: ""}},
		Limits: runLimits, Tests: []api.Test{{}, {}, {}}, Timeout: timeout, Admission: adm})
	if err != nil {
		t.Fatal(err)
	}
	if deadline.Before(start.Add(timeout)) || deadline.After(time.Now()) {
		t.Errorf("the program's deadline %v is not the request's", deadline)
	}
	got := []api.Status{}
	for _, r := range resp.Tests {
		got = append(got, r.Status)
	}
	if !slices.Equal(got, []api.Status{api.StatusOK, api.StatusSkipped, api.StatusSkipped}) {
		t.Fatalf("tests %v", got)
	}
	if !strings.HasPrefix(resp.Tests[1].Message, "not run: the request's deadline of 50 ms was reached before the test could start") {
		t.Fatalf("skipped: %q", resp.Tests[1].Message)
	}
	if resp.Status != api.StatusSkipped || resp.Message != "the request's deadline of 50 ms was reached: 2 of 3 tests were skipped" ||
		!maps.Equal(resp.Summary, map[api.Status]int{api.StatusOK: 1, api.StatusSkipped: 2}) {
		t.Fatalf("response %+v", resp)
	}
	if len(f.acquired) != 1 || adm.entered != adm.left {
		t.Fatalf("%d sandboxes; admission: %d entered, %d left", len(f.acquired), adm.entered, adm.left)
	}
	f.check(t)
}

func TestCompileSkippedAfterTheDeadline(t *testing.T) {
	f := &fakeSandboxes{run: func(int, sandbox.Program, *sandbox.Box) (api.StageResult, error) {
		t.Error("a stage ran after the deadline")
		return ok(""), nil
	}}
	resp, err := execute(t, f, Plan{Language: lang(t, "cpp"), Files: []api.File{{Name: "main.cpp"}},
		Limits: runLimits, CompileLimits: compileLimits, Timeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != api.StatusSkipped || resp.Compile == nil || resp.Compile.Status != api.StatusSkipped || len(f.acquired) != 0 {
		t.Fatalf("response %+v", resp)
	}
}

// A platform failure is an error, not a verdict, and the sandbox is
// given back all the same.
func TestPlatformFailures(t *testing.T) {
	py := lang(t, "python")
	plan := Plan{Language: py, Files: []api.File{{Name: "main.py"}}, Limits: runLimits}
	t.Run("run", func(t *testing.T) {
		lost := errors.New("lost the sandbox")
		f := &fakeSandboxes{run: func(int, sandbox.Program, *sandbox.Box) (api.StageResult, error) {
			return api.StageResult{}, lost
		}}
		resp, err := execute(t, f, plan)
		if !errors.Is(err, lost) || !strings.HasPrefix(err.Error(), "run stage: ") || resp != nil {
			t.Fatalf("%+v, %v", resp, err)
		}
		f.check(t)
	})
	t.Run("acquire", func(t *testing.T) {
		gone := errors.New("no image")
		adm := &countingAdmission{}
		p := plan
		p.Admission = adm
		resp, err := execute(t, &fakeSandboxes{err: gone}, p)
		if !errors.Is(err, gone) || resp != nil || adm.left != adm.entered {
			t.Fatalf("%+v, %v; admission: %d entered, %d left", resp, err, adm.entered, adm.left)
		}
	})
}

// An error from the source of concrete sandboxes is a nil Sandbox, not a
// nil *sandbox.Sandbox in a Sandbox.
func TestAcquireFuncError(t *testing.T) {
	gone := errors.New("gone")
	sb, err := AcquireFunc(func(context.Context, sandbox.Profile, *logrus.Entry) (*sandbox.Sandbox, error) {
		return nil, gone
	}).Acquire(context.Background(), sandbox.Profile{}, nil)
	if sb != nil || !errors.Is(err, gone) {
		t.Fatalf("%v, %v", sb, err)
	}
}

// A test whose sandbox cannot take another program after it (a memory
// kill takes the whole sandbox) is followed by a fresh sandbox; so is a
// sandbox that turns out spent before its program starts, with no verdict
// for that attempt.
func TestJudgedTestsGoOnInAFreshSandbox(t *testing.T) {
	py := lang(t, "python")
	f := &fakeSandboxes{}
	f.run = func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
		switch string(prog.Stdin) {
		case "eat":
			return api.StageResult{Status: api.StatusMemoryLimit, ExitCode: 137}, nil
		case "spent":
			if len(f.acquired[i].progs) > 1 {
				return api.StageResult{}, sandbox.ErrSpent
			}
		}
		return ok(string(prog.Stdin)), nil
	}
	tests := []api.Test{{Stdin: "a"}, {Stdin: "eat"}, {Stdin: "b"}, {Stdin: "spent"}, {Stdin: "c"}}
	resp, err := execute(t, f, Plan{Language: py, Files: []api.File{{Name: "main.py"}}, Limits: runLimits, Tests: tests})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range resp.Tests {
		got = append(got, string(r.Status)+":"+r.Stdout)
	}
	if want := "ok:a memory_limit: ok:b ok:spent ok:c"; strings.Join(got, " ") != want {
		t.Fatalf("tests %v, want %s", got, want)
	}
	// a, eat | b, spent (refused) | spent, c
	var per []int
	for _, sb := range f.acquired {
		per = append(per, len(sb.progs))
	}
	if !slices.Equal(per, []int{2, 2, 2}) {
		t.Fatalf("programs per sandbox %v, want [2 2 2]", per)
	}
	f.check(t)
}

// A request running its tests gives its place up between two tests when
// others wait for one, and takes a fresh sandbox.
func TestJudgedTestsYieldWhenContended(t *testing.T) {
	py := lang(t, "python")
	adm := &countingAdmission{}
	f := &fakeSandboxes{run: func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
		adm.contended = string(prog.Stdin) == "2"
		return ok(""), nil
	}}
	resp, err := execute(t, f, Plan{Language: py, Files: []api.File{{Name: "main.py"}}, Limits: runLimits,
		Tests: []api.Test{{Stdin: "1"}, {Stdin: "2"}, {Stdin: "3"}, {Stdin: "4"}}, Admission: adm})
	if err != nil || resp.Status != api.StatusOK {
		t.Fatalf("%+v, %v", resp, err)
	}
	if len(f.acquired) != 2 || len(f.acquired[0].progs) != 2 || adm.entered != 2 || adm.left != 2 {
		t.Fatalf("%d sandboxes, %d programs in the first; admission %d entered, %d left", len(f.acquired), len(f.acquired[0].progs), adm.entered, adm.left)
	}
	f.check(t)
}

func TestStopOnFirstFailure(t *testing.T) {
	py := lang(t, "python")
	want := func(s string) *string { return &s }
	f := &fakeSandboxes{run: func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
		return ok(string(prog.Stdin)), nil
	}}
	tests := []api.Test{{Stdin: "1", ExpectedOutput: want("1")}, {Stdin: "2", ExpectedOutput: want("3")}, {Stdin: "3"}, {Stdin: "4"}}
	resp, err := execute(t, f, Plan{Language: py, Files: []api.File{{Name: "main.py"}}, Limits: runLimits, Tests: tests, StopOnFirstFailure: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []api.Status
	for _, r := range resp.Tests {
		got = append(got, r.Status)
	}
	if !slices.Equal(got, []api.Status{api.StatusOK, api.StatusWrongAnswer, api.StatusSkipped, api.StatusSkipped}) ||
		resp.Status != api.StatusWrongAnswer || !strings.Contains(resp.Message, "2 of 4 tests were skipped (stop_on_first_failure)") {
		t.Fatalf("tests %v, response %+v", got, resp)
	}
	if len(f.acquired[0].progs) != 2 {
		t.Fatalf("%d programs ran", len(f.acquired[0].progs))
	}
}

// recorder is an Events that writes down what it hears.
type recorder struct{ heard []string }

func (r *recorder) StageStarted(stage string, test int) {
	r.heard = append(r.heard, fmt.Sprintf("start %s %d", stage, test))
}

func (r *recorder) Output(stage string, test int, stream string, data []byte) {
	r.heard = append(r.heard, fmt.Sprintf("%s %s %d %q", stream, stage, test, data))
}

func (r *recorder) StageEnded(stage string, test int, res api.StageResult) {
	r.heard = append(r.heard, fmt.Sprintf("end %s %d %s", stage, test, res.Status))
}

// Events hears each stage start, its output as the sandbox relays it,
// and its end, in order.
func TestEvents(t *testing.T) {
	f := &fakeSandboxes{run: func(i int, prog sandbox.Program, b *sandbox.Box) (api.StageResult, error) {
		prog.Started()
		prog.Output("stdout", []byte("o"+string(prog.Stdin)))
		prog.Output("stderr", []byte("e"))
		return ok("o" + string(prog.Stdin)), nil
	}}
	rec := &recorder{}
	_, err := execute(t, f, Plan{Language: lang(t, "cpp"), Files: []api.File{{Name: "main.cpp"}}, Limits: runLimits, CompileLimits: compileLimits,
		Tests: []api.Test{{Stdin: "1"}, {Stdin: "2"}}, Events: rec})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`start compile -1`, `stdout compile -1 "o"`, `stderr compile -1 "e"`, `end compile -1 ok`,
		`start test 0`, `stdout test 0 "o1"`, `stderr test 0 "e"`, `end test 0 ok`,
		`start test 1`, `stdout test 1 "o2"`, `stderr test 1 "e"`, `end test 1 ok`,
	}
	if !slices.Equal(rec.heard, want) {
		t.Fatalf("heard\n%s\nwant\n%s", strings.Join(rec.heard, "\n"), strings.Join(want, "\n"))
	}
}

// A place that comes as the request's context ends (the client went
// away while its stage waited) is given back.
func TestPlaceGivenBackWhenTheRequestEnds(t *testing.T) {
	py := lang(t, "python")
	adm := &countingAdmission{}
	f := &fakeSandboxes{run: func(int, sandbox.Program, *sandbox.Box) (api.StageResult, error) {
		t.Error("a stage ran for a request that had ended")
		return ok(""), nil
	}}
	f.t = t
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	log := logrus.NewEntry(logrus.New())
	log.Logger.SetOutput(nopWriter{})
	_, err := New(f, metrics.New()).Execute(ctx, log, Plan{Language: py, Files: []api.File{{Name: "main.py"}}, Limits: runLimits, Admission: adm})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if adm.entered != 1 || adm.left != 1 {
		t.Fatalf("admission: %d entered, %d left", adm.entered, adm.left)
	}
}
