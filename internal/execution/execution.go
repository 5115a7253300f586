// Package execution owns what one request runs: the compile stage, if
// the language has one, in a sandbox of its own; then the run, or one
// run per test against the same build, one after the other in one run
// sandbox whose box is restored between them (a fresh sandbox where one
// dies, or where other requests wait their turn); within the request's
// deadline; and the verdicts: compile_error, wrong_answer, skipped, and
// the summary of the tests. It tells an Events what happens as it goes.
package execution

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/internal/metrics"
	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/pkg/api"
)

// BuildDir is the directory inside /box that a compile stage writes its
// output to. Request files may not use the name.
const BuildDir = ".runtimed"

// Sandboxes gives started sandboxes, one per stage.
type Sandboxes interface {
	Acquire(ctx context.Context, p sandbox.Profile, log *logrus.Entry) (Sandbox, error)
}

// Sandbox is what a stage needs of a started sandbox: its box, to put
// the request's files or the build in; the box kept past the sandbox,
// for the build; the programs run, the next one while it is Reusable;
// and the sandbox given back.
type Sandbox interface {
	Box() *sandbox.Box
	KeepBox() *sandbox.Box
	Run(ctx context.Context, prog sandbox.Program) (api.StageResult, error)
	Reusable() bool
	Release()
}

var _ Sandbox = (*sandbox.Sandbox)(nil)

// AcquireFunc adapts a source of concrete sandboxes, such as
// (*sandbox.Runner).Acquire, to Sandboxes.
type AcquireFunc func(ctx context.Context, p sandbox.Profile, log *logrus.Entry) (*sandbox.Sandbox, error)

// Acquire takes a sandbox from f.
func (f AcquireFunc) Acquire(ctx context.Context, p sandbox.Profile, log *logrus.Entry) (Sandbox, error) {
	sb, err := f(ctx, p, log)
	if err != nil {
		// Not sb: a nil *sandbox.Sandbox in the interface is no nil.
		return nil, err
	}
	return sb, nil
}

// Admission bounds the sandboxes in use at once. A stage enters before
// it takes its sandbox and leaves when it is done with it, so a request
// with many tests takes its turn with the others between its tests.
type Admission interface {
	// Enter waits for a place. The request's first stage may be refused
	// (the error says why, as an *api.Error); a later one waits until ctx
	// ends.
	Enter(ctx context.Context) (leave func(), err error)
	// Contended reports whether others wait for a place: a request
	// running its tests in one sandbox then gives its place up between
	// two tests and queues again.
	Contended() bool
}

// Events hears an execution as it goes. Stages are "compile", "run" and
// "test"; test is the test's index, -1 for the others. Output comes as
// the program writes it, within the output limit. The calls come from
// one goroutine at a time, in order, and should not block for long: the
// program's wall time runs meanwhile.
type Events interface {
	StageStarted(stage string, test int)
	Output(stage string, test int, stream string, data []byte)
	StageEnded(stage string, test int, res api.StageResult)
}

// Plan is a validated request.
type Plan struct {
	Language      *language.Language
	Files         []api.File
	Stdin         string
	Args          []string
	Limits        api.Limits
	CompileLimits api.Limits
	Tests         []api.Test
	Compare       api.Compare
	// Timeout bounds the whole execution, its waits for sandboxes
	// included: at its end the stage running is stopped and the stages
	// not started are skipped. 0: no bound but the stages' own.
	Timeout time.Duration
	// StopOnFirstFailure skips the tests after the first that is not ok.
	StopOnFirstFailure bool
	// Admission, if set, is entered by every stage.
	Admission Admission
	// Events, if set, hears the execution as it goes.
	Events Events
	// Input and Signals, if set, are the run stage's stdin as it comes
	// (after Stdin; the channel's close ends it) and the signals for it
	// (see sandbox.Program).
	Input   <-chan []byte
	Signals <-chan syscall.Signal
	// Session, if set, runs the plan in a session's sandbox (see
	// executeSession): it has no tests, and its limits' memory, CPU and
	// pids are the session's.
	Session Session
	// Cell, with Session, is the code of a repl session's cell: it runs
	// in the session's interpreter, not as a program of Files.
	Cell *string
}

// Session is a sandbox that outlives requests: a session's. Its box keeps
// its files from one run to the next.
type Session interface {
	// Sandbox returns the session's sandbox, ready for a program, its box
	// holding the session's files: the one it has, or a fresh one with a
	// copy of the box if that one can run no other program (a limit took
	// the whole sandbox). Only one request at a time uses a session.
	Sandbox(ctx context.Context, log *logrus.Entry) (Sandbox, error)
	// Cell runs code as a cell of a repl session's interpreter, telling
	// ev; it returns the cell's result, the repr of its last expression
	// and a message if the interpreter's state was lost before it.
	Cell(ctx context.Context, log *logrus.Entry, code, stdin string, limits api.Limits, ev Events) (api.StageResult, *string, string, error)
}

// Executor carries out plans.
type Executor struct {
	sandboxes Sandboxes
	metrics   *metrics.Metrics
}

// New returns an executor running its stages in sandboxes.
func New(sandboxes Sandboxes, m *metrics.Metrics) *Executor {
	return &Executor{sandboxes: sandboxes, metrics: m}
}

// Execute compiles (if the language compiles) and runs the plan. An error
// means the platform failed.
func (e *Executor) Execute(ctx context.Context, log *logrus.Entry, p Plan) (*api.RunResponse, error) {
	resp, err := e.execute(ctx, log, p)
	var unfit *unfitBuild
	if errors.As(err, &unfit) {
		resp, err = unfit.response(p.Language), nil
	}
	if err == nil {
		e.metrics.Execution(p.Language.Name, string(resp.Status))
	}
	return resp, err
}

func (e *Executor) execute(ctx context.Context, log *logrus.Entry, p Plan) (*api.RunResponse, error) {
	if p.Session != nil {
		return e.executeSession(ctx, log, p)
	}
	lang := p.Language
	resp := &api.RunResponse{Language: lang.Name, Version: lang.Version}
	entry := p.Files[0].Name
	var deadline time.Time
	if p.Timeout > 0 {
		deadline = time.Now().Add(p.Timeout)
	}
	// acquire waits for the stage's turn and a sandbox; nil without an
	// error means the deadline came first.
	acquire := func(log *logrus.Entry, limits api.Limits) (*stageSandbox, error) {
		return e.acquire(ctx, log, p.Admission, deadline, sandbox.ProfileOf(lang.Image, limits))
	}
	skipped := func(what string) api.StageResult {
		return api.StageResult{Status: api.StatusSkipped, Message: fmt.Sprintf("not run: the request's deadline of %d ms was reached before the %s could start", p.Timeout.Milliseconds(), what)}
	}

	// A compiled language's build: the compile stage's box, kept after
	// its sandbox is gone; each run gets a copy.
	var build *sandbox.Box
	mainClass := ""
	if lang.Compiled() {
		sb, err := acquire(log, p.CompileLimits)
		if err != nil {
			return nil, err
		}
		if sb == nil {
			res := skipped("compile")
			resp.Compile, resp.Status = &res, api.StatusSkipped
			return resp, nil
		}
		build = sb.KeepBox()
		defer removeBox(log, build)
		var findErr error
		judge := findMainClass(lang, entry, func() *sandbox.Box { return build }, &mainClass, &findErr)
		res, err := e.compile(ctx, log, sb.Sandbox, p, deadline, judge)
		sb.release()
		e.metrics.Program(false)
		if err == nil && findErr != nil {
			err = fmt.Errorf("find the main class: %w", findErr)
		}
		if err != nil {
			return nil, err
		}
		resp.Compile = &res
		if res.Status != api.StatusOK {
			resp.Status = api.StatusCompileError
			return resp, nil
		}
	}

	// The run sandbox: the tests run in it one after the other, each on
	// a box restored from the build or the request's files. A sandbox
	// whose program ended without its agent's report (a limit that took
	// the whole sandbox, a sandbox that died) is replaced, and so is one
	// whose place others wait for.
	var cur *stageSandbox
	defer func() {
		if cur != nil {
			cur.release()
		}
	}()
	run := func(log *logrus.Entry, name string, test int, stdin string, args []string, interactive bool) (api.StageResult, error) {
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return skipped(name), nil
		}
		for attempt := 0; ; attempt++ {
			again := cur != nil && cur.runs > 0
			if cur != nil && (!cur.Reusable() || p.Admission != nil && p.Admission.Contended()) {
				cur.release()
				cur, again = nil, false
			}
			if cur == nil {
				sb, err := acquire(log, p.Limits)
				if err != nil {
					return api.StageResult{}, err
				}
				if sb == nil {
					return skipped(name), nil
				}
				cur = sb
			} else if err := cur.Box().Empty(); err != nil {
				return api.StageResult{}, err
			}
			var err error
			if build != nil {
				err = build.CopyTo(cur.Box())
				if errors.Is(err, sandbox.ErrBuildTooLarge) {
					return api.StageResult{}, &unfitBuild{compile: *resp.Compile, err: err}
				}
			} else {
				err = cur.Box().Write(p.Files)
			}
			if err != nil {
				return api.StageResult{}, err
			}
			prog := sandbox.Program{
				Args:        lang.RunCommand(entry, mainClass, args, p.Limits.MemoryBytes),
				Env:         lang.Env,
				Stdin:       []byte(stdin),
				Limits:      p.Limits,
				Deadline:    deadline,
				OutOfMemory: lang.OutOfMemory,
				FreshCPU:    test >= 0,
			}
			if interactive {
				prog.Input, prog.Signals = p.Input, p.Signals
			}
			var judge func(*api.StageResult)
			if test >= 0 {
				judge = func(res *api.StageResult) { p.judge(test, res) }
			}
			cur.runs++
			res, err := e.stage(ctx, log, name, test, cur.Sandbox, prog, p.Events, judge)
			if errors.Is(err, sandbox.ErrSpent) && attempt == 0 {
				// The sandbox could not take another program; nothing
				// ran. The test goes to a fresh one.
				log.Debug("the run sandbox is spent; the test runs in a fresh one")
				cur.release()
				cur = nil
				continue
			}
			if err == nil {
				e.metrics.Program(again)
			}
			return res, err
		}
	}

	if len(p.Tests) == 0 {
		res, err := run(log, "run", -1, p.Stdin, p.Args, true)
		if err != nil {
			return nil, err
		}
		resp.Run = &res
		resp.Status = res.Status
		return resp, nil
	}

	resp.Status = api.StatusOK
	resp.Summary = map[api.Status]int{}
	failed := false
	for i, t := range p.Tests {
		var res api.StageResult
		if failed && p.StopOnFirstFailure {
			res = api.StageResult{Status: api.StatusSkipped, Message: "not run: an earlier test failed (stop_on_first_failure)"}
		} else {
			var err error
			res, err = run(log.WithField("test", i), "test", i, t.Stdin, t.Args, false)
			if err != nil {
				return nil, err
			}
			if res.Status != api.StatusOK && res.Status != api.StatusSkipped {
				failed = true
			}
		}
		resp.Tests = append(resp.Tests, res)
		resp.Summary[res.Status]++
		if resp.Status == api.StatusOK {
			resp.Status = res.Status
		}
	}
	if n := resp.Summary[api.StatusSkipped]; n > 0 {
		if failed && p.StopOnFirstFailure {
			resp.Message = fmt.Sprintf("a test failed: %d of %d tests were skipped (stop_on_first_failure)", n, len(p.Tests))
		} else {
			resp.Message = fmt.Sprintf("the request's deadline of %d ms was reached: %d of %d tests were skipped", p.Timeout.Milliseconds(), n, len(p.Tests))
		}
	}
	return resp, nil
}

// judge gives test i, which ran, its verdict on what it printed.
func (p *Plan) judge(i int, res *api.StageResult) {
	t := p.Tests[i]
	if res.Status == api.StatusOK && t.ExpectedOutput != nil && !equal(res.Stdout, *t.ExpectedOutput, p.Compare) {
		res.Status = api.StatusWrongAnswer
	}
}

// stageSandbox is a stage's sandbox and its place in the admission.
type stageSandbox struct {
	Sandbox
	leave func()
	runs  int // programs started in it
}

// release gives the sandbox back, then the place.
func (s *stageSandbox) release() {
	s.Release()
	s.leave()
}

// acquire waits for a place in adm (the first stage of a request may be
// refused: an *api.Error) and takes a sandbox of profile prof. It returns
// nil and no error when the deadline comes first: the stage is skipped.
func (e *Executor) acquire(ctx context.Context, log *logrus.Entry, adm Admission, deadline time.Time, prof sandbox.Profile) (*stageSandbox, error) {
	leave := func() {}
	if adm != nil {
		wctx := ctx
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			wctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		l, err := adm.Enter(wctx)
		var refused *api.Error
		switch {
		case err == nil:
			leave = l
		case errors.As(err, &refused) || ctx.Err() != nil:
			return nil, err
		default:
			return nil, nil // the deadline came first
		}
	}
	// A place that came as ctx ended (both were ready) is given back.
	if err := ctx.Err(); err != nil {
		leave()
		return nil, err
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		leave()
		return nil, nil
	}
	sb, err := e.sandboxes.Acquire(ctx, prof, log)
	if err != nil {
		leave()
		return nil, err
	}
	return &stageSandbox{Sandbox: sb, leave: leave}, nil
}

// unfitBuild is a build that does not fit in a run's box: a verdict on
// the compile (the compile stage made it), not a platform failure. The
// run that found it stops the execution with it; Execute answers it.
type unfitBuild struct {
	compile api.StageResult
	err     error
}

func (u *unfitBuild) Error() string { return u.err.Error() }
func (u *unfitBuild) Unwrap() error { return u.err }

func (u *unfitBuild) response(lang *language.Language) *api.RunResponse {
	return &api.RunResponse{
		Language: lang.Name, Version: lang.Version,
		Status:  api.StatusCompileError,
		Compile: buildFault(u.compile, u.err),
	}
}

// buildFault is a compile that ended well but left a build runtimed will
// not run: a compile_error saying why. err names no host path.
func buildFault(res api.StageResult, err error) *api.StageResult {
	res.Status = api.StatusCompileError
	res.Message = err.Error()
	res.Stderr += "runtimed: " + err.Error() + "\n"
	res.Output += "runtimed: " + err.Error() + "\n"
	return &res
}

// compile puts the request's files in the sandbox's box and compiles
// them into the build directory.
func (e *Executor) compile(ctx context.Context, log *logrus.Entry, sb Sandbox, p Plan, deadline time.Time, judge func(*api.StageResult)) (api.StageResult, error) {
	if err := sb.Box().Write(p.Files); err != nil {
		return api.StageResult{}, err
	}
	if err := sb.Box().Mkdir(BuildDir); err != nil {
		return api.StageResult{}, err
	}
	return e.stage(ctx, log, "compile", -1, sb, p.compileProgram(deadline), p.Events, judge)
}

// compileProgram is the plan's compile stage: its files compiled into
// the build directory.
func (p *Plan) compileProgram(deadline time.Time) sandbox.Program {
	lang := p.Language
	names := make([]string, len(p.Files))
	for i, f := range p.Files {
		names[i] = f.Name
	}
	return sandbox.Program{
		Args:        lang.CompileCommand(p.Files[0].Name, lang.Sources(names), p.CompileLimits.MemoryBytes),
		Env:         lang.Env,
		Limits:      p.CompileLimits,
		Deadline:    deadline,
		OutOfMemory: lang.OutOfMemory,
	}
}

// findMainClass is a compile's judge for a language that runs a main
// class: it finds the class in the build of box() into *mainClass. A
// build without the class to run is the compile's failure (judged before
// its end is heard); another failure of the search goes to *findErr.
// What the class files say is the compile stage's word: the search reads
// within the box, and a name that is not a Java name never reaches the
// command line.
func findMainClass(lang *language.Language, entry string, box func() *sandbox.Box, mainClass *string, findErr *error) func(*api.StageResult) {
	return func(res *api.StageResult) {
		if res.Status != api.StatusOK || !lang.NeedsMainClass() {
			return
		}
		b := box()
		*mainClass, *findErr = language.FindMainClass(filepath.Join(b.Dir(), BuildDir), entry, b.Size())
		if errors.Is(*findErr, language.ErrNoMainClass) || errors.Is(*findErr, language.ErrBadBuild) {
			*res, *findErr = *buildFault(*res, *findErr), nil
		}
	}
}

// stage runs one program; its verdict is the sandbox's, the language's
// out-of-memory markers (in prog) included, then judge's if set (a
// test's, on its output). ev, if set, hears it, the verdict included.
func (e *Executor) stage(ctx context.Context, log *logrus.Entry, name string, test int, sb Sandbox, prog sandbox.Program, ev Events, judge func(*api.StageResult)) (api.StageResult, error) {
	start := time.Now()
	if ev != nil {
		prog.Started = func() { ev.StageStarted(name, test) }
		prog.Output = func(stream string, data []byte) { ev.Output(name, test, stream, data) }
	}
	res, err := sb.Run(ctx, prog)
	if err != nil {
		return res, fmt.Errorf("%s stage: %w", name, err)
	}
	if judge != nil {
		judge(&res)
	}
	if ev != nil {
		ev.StageEnded(name, test, res)
	}
	if name == "compile" {
		e.metrics.Phase(metrics.PhaseCompile, time.Since(start))
	} else {
		e.metrics.Phase(metrics.PhaseRun, time.Duration(res.WallTimeMS)*time.Millisecond)
	}
	log.WithFields(logrus.Fields{
		"stage": name, "status": res.Status, "exit_code": res.ExitCode,
		"wall_ms": res.WallTimeMS, "cpu_ms": res.CPUTimeMS, "memory_bytes": res.MemoryBytes,
	}).Debug("stage")
	return res, nil
}

func removeBox(log *logrus.Entry, b *sandbox.Box) {
	if err := b.Remove(); err != nil {
		log.WithError(err).Warn("remove box")
	}
}

// IsReserved reports whether a request file name falls in the build
// directory.
func IsReserved(name string) bool {
	first, _, _ := strings.Cut(path.Clean(name), "/")
	return first == BuildDir
}
