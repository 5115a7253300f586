package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/docker/go-units"
	"github.com/urfave/cli/v2"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/pkg/api"
)

// runtimectl's exit codes, the same for every command (exitCodesHelp
// says them in --help, the man page and README).
const (
	exitFailure     = 1   // runtimed or the connection failed; a compile error
	exitUsage       = 2   // a usage error, or runtimed refused the request (4xx)
	exitTimeout     = 124 // run: a time limit, as timeout(1)
	exitOutputLimit = 125 // run: the output limit
	exitMemory      = 137 // run: the memory limit, as a SIGKILL by the OOM killer
)

// exitCodesHelp is the exit codes' table in --help.
const exitCodesHelp = `EXIT CODES (every command)
   0     success; for run, the program exited 0
   N     run: the program's own exit code
   1     runtimed or the connection failed (a 5xx, no daemon); run: a compile error; run --tests: a test not ok
   2     a usage error, or runtimed refused the request (a 4xx: bad input, not found, forbidden, rate limited)
   124   run: a wall-time or CPU-time limit
   125   run: the output limit
   137   run: the memory limit`

// defaults are runtimed's limits out of the box, for --help: a language
// or the daemon's configuration may set others.
var defaults = config.Default().Defaults

func languageDefault(v string) string {
	return "the language's; " + v + " unless configured"
}

var runCommand = &cli.Command{
	Name:         "run",
	BashComplete: complete(languageFlagValue),
	UsageText: "runtimectl run [options] FILE... [-- ARGS...]\n\n" +
		"   runtimectl run hello.py\n" +
		"   runtimectl run --memory 64M --timeout 2s solution.cpp < input.txt\n" +
		"   runtimectl run main.py lib/util.py -- arg1 arg2\n" +
		"   runtimectl run sum.c --tests tests/          # tests/1.in, tests/1.out, ...\n" +
		"   runtimectl run -i chat.py                    # stdin as it is typed",
	Usage:     "run files in a sandbox; runtimectl exits with the program's exit code",
	ArgsUsage: "FILE... [-- ARGS...]",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "language", Aliases: []string{"l"}, Usage: "language (default: from the first file's extension)"},
		&cli.StringFlag{Name: "language-version", Usage: "the language's version, a semver range such as 3.11 or 3.x (default: the newest)"},
		&cli.StringFlag{Name: "stdin", Usage: "file to give the program as stdin, - for runtimectl's own (the default when runtimectl's stdin is a pipe or a file)"},
		&cli.StringFlag{Name: "root", Usage: "send the files by their paths relative to `DIR` (default: their closest common directory; the first file is the entry)"},
		&cli.StringFlag{Name: "memory", Usage: "memory limit, e.g. 128M", DefaultText: languageDefault(api.FormatBytes(defaults.MemoryBytes))},
		&cli.Float64Flag{Name: "cpu", Usage: "CPU limit in cores, e.g. 0.5", DefaultText: languageDefault(strconv.FormatFloat(defaults.CPU, 'g', -1, 64))},
		&cli.DurationFlag{Name: "timeout", Usage: "wall-time limit, e.g. 5s", DefaultText: languageDefault(api.FormatMS(defaults.WallTimeMS))},
		&cli.DurationFlag{Name: "cpu-time", Usage: "CPU-time limit of all the program's processes, e.g. 2s", DefaultText: languageDefault(api.FormatMS(defaults.CPUTimeMS))},
		&cli.Int64Flag{Name: "pids", Usage: "process/thread limit", DefaultText: languageDefault(strconv.FormatInt(defaults.Pids, 10))},
		&cli.StringFlag{Name: "output", Usage: "cap on each of stdout and stderr, e.g. 64K", DefaultText: languageDefault(api.FormatBytes(defaults.OutputBytes))},
		&cli.BoolFlag{Name: "json", Usage: "print the whole result as JSON"},
		&cli.BoolFlag{Name: "interactive", Aliases: []string{"i"}, Usage: "send runtimectl's stdin to the program a line at a time as it runs, and print its output as it comes"},
		&cli.StringFlag{Name: "tests", Usage: "judge the program against the tests in `DIR`: N.in (stdin) and N.out (the expected stdout) pairs; prints a verdict per test and a summary"},
		&cli.DurationFlag{Name: "compile-timeout", Usage: "the compile stage's wall-time limit, e.g. 20s", DefaultText: languageDefault(api.FormatMS(config.Default().CompileDefaults.WallTimeMS))},
		&cli.StringFlag{Name: "compile-memory", Usage: "the compile stage's memory limit, e.g. 1G", DefaultText: languageDefault(api.FormatBytes(config.Default().CompileDefaults.MemoryBytes))},
	},
	Action: func(c *cli.Context) error {
		opts, err := runOptionsFrom(c)
		if err != nil {
			return cli.Exit(err.Error(), exitUsage)
		}
		code, err := runFiles(c.Context, client(c), opts, os.Stdin, c.App.Writer, c.App.ErrWriter)
		if err != nil {
			return cli.Exit(err.Error(), code)
		}
		if code != 0 {
			return cli.Exit("", code)
		}
		return nil
	},
}

type runOptions struct {
	Language string
	Version  string
	Files    []string
	Args     []string
	Stdin    string
	Limits   api.Limits
	JSON     bool
	// Interactive runs over /v1/connect, stdin sent as it comes.
	Interactive bool
	// Root, if set, is the directory the files' names are relative to.
	Root string
	// Tests, if set, is a directory of N.in/N.out pairs to judge against.
	Tests         string
	CompileLimits api.Limits
	// StdinPiped: runtimectl's stdin is a pipe or a file, not a
	// terminal: without --stdin or -i it is the program's stdin, as
	// docker run -i users expect.
	StdinPiped bool
}

// stdinPiped reports whether runtimectl's stdin is a pipe or a file.
func stdinPiped() bool {
	fi, err := os.Stdin.Stat()
	return err == nil && (fi.Mode()&os.ModeNamedPipe != 0 || fi.Mode().IsRegular())
}

func runOptionsFrom(c *cli.Context) (runOptions, error) {
	opts := runOptions{
		Language: c.String("language"),
		Version:  c.String("language-version"),
		Stdin:    c.String("stdin"),
		JSON:     c.Bool("json"),
		Root:     c.String("root"),
		Tests:    c.String("tests"),
	}
	if d := c.Duration("compile-timeout"); d > 0 {
		opts.CompileLimits.WallTimeMS = max(d.Milliseconds(), 1)
	}
	if v := c.String("compile-memory"); v != "" {
		n, err := units.RAMInBytes(v)
		if err != nil {
			return opts, fmt.Errorf("--compile-memory: %w", err)
		}
		opts.CompileLimits.MemoryBytes = n
	}
	if opts.Tests != "" && (opts.Interactive || opts.Stdin != "") {
		return opts, errors.New("run: --tests gives each test its stdin; it goes with neither --stdin nor -i")
	}
	opts.Interactive = c.Bool("interactive")
	opts.StdinPiped = stdinPiped()
	if opts.Interactive && (opts.Stdin != "" || opts.JSON) {
		return opts, errors.New("run: -i sends runtimectl's stdin as it comes; it goes with neither --stdin nor --json")
	}
	// Everything after "--" is the program's.
	opts.Files = c.Args().Slice()
	if i := slices.Index(opts.Files, "--"); i >= 0 {
		opts.Files, opts.Args = opts.Files[:i], opts.Files[i+1:]
	}
	if len(opts.Files) == 0 {
		return opts, errors.New("run: at least one FILE is required")
	}
	if v := c.String("memory"); v != "" {
		n, err := units.RAMInBytes(v)
		if err != nil {
			return opts, fmt.Errorf("--memory: %w", err)
		}
		opts.Limits.MemoryBytes = n
	}
	if v := c.String("output"); v != "" {
		n, err := units.RAMInBytes(v)
		if err != nil {
			return opts, fmt.Errorf("--output: %w", err)
		}
		opts.Limits.OutputBytes = n
	}
	opts.Limits.CPU = c.Float64("cpu")
	opts.Limits.Pids = c.Int64("pids")
	if d := c.Duration("timeout"); d > 0 {
		opts.Limits.WallTimeMS = d.Milliseconds()
		if opts.Limits.WallTimeMS == 0 {
			opts.Limits.WallTimeMS = 1
		}
	}
	if d := c.Duration("cpu-time"); d > 0 {
		opts.Limits.CPUTimeMS = max(d.Milliseconds(), 1)
	}
	return opts, nil
}

// runFiles sends the files to runtimed, prints the program's output as it
// comes (with --json, the whole result at the end), and returns the exit
// code runtimectl should exit with.
func runFiles(ctx context.Context, cl *api.Client, opts runOptions, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	req := &api.RunRequest{Language: opts.Language, Version: opts.Version, Args: opts.Args, Limits: opts.Limits, CompileLimits: opts.CompileLimits}
	// Files keep their layout under /box: their paths relative to --root
	// or to their closest common directory.
	files, err := readFiles(opts.Files, opts.Root)
	if err != nil {
		return exitUsage, err
	}
	req.Files = files
	if opts.Tests != "" {
		return judge(ctx, cl, req, opts, stdout, stderr)
	}
	if opts.Stdin == "" && opts.StdinPiped && !opts.Interactive {
		opts.Stdin = "-"
	}
	if req.Stdin, err = readStdin(opts.Stdin, stdin); err != nil {
		return exitUsage, err
	}
	// Without --language runtimed picks it by the first file's extension:
	// one request.
	if opts.Interactive {
		return runInteractive(ctx, cl.Connect, req, stdin, stdout, stderr)
	}

	var resp *api.RunResponse
	live := &liveOutput{stdout: stdout, stderr: stderr}
	if opts.JSON {
		resp, err = cl.Run(ctx, req)
	} else {
		resp, err = cl.RunStream(ctx, req, live.event)
	}
	if err != nil {
		var aerr *api.Error
		if errors.As(err, &aerr) && aerr.HTTPStatus/100 == 4 {
			return exitUsage, err
		}
		return exitFailure, err
	}
	return printRun(resp, live, opts.JSON, stdout, stderr)
}

// readStdin is what --stdin names: a file's content, runtimectl's own
// stdin for "-", nothing for "".
func readStdin(name string, stdin io.Reader) (string, error) {
	var data []byte
	var err error
	switch name {
	case "":
		return "", nil
	case "-":
		data, err = io.ReadAll(stdin)
	default:
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return "", fmt.Errorf("stdin: %w", err)
	}
	return string(data), nil
}

// printRun prints a run's answer — as JSON, or what was not printed as
// it came (the output of a runtimed that does not stream, a failed
// compile's messages, a repl cell's value, why it ended) — and returns
// runtimectl's exit code.
func printRun(resp *api.RunResponse, live *liveOutput, asJSON bool, stdout, stderr io.Writer) (int, error) {
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return exitCodeFor(resp), enc.Encode(resp)
	}
	if c := resp.Compile; c != nil && resp.Status == api.StatusCompileError {
		// The compiler's messages are for the user: they go to stderr.
		if _, err := io.WriteString(stderr, c.Stdout+c.Stderr); err != nil {
			return exitFailure, err
		}
	}
	if r := resp.Run; r != nil && !live.ran {
		// Not printed as it came (a runtimed that does not stream).
		if _, err := io.WriteString(stdout, r.Stdout); err != nil {
			return exitFailure, err
		}
		if _, err := io.WriteString(stderr, r.Stderr); err != nil {
			return exitFailure, err
		}
	}
	if resp.Result != nil {
		// A repl cell's value, as an interpreter's prompt shows it.
		if _, err := fmt.Fprintln(stdout, *resp.Result); err != nil {
			return exitFailure, err
		}
	}
	if resp.Message != "" {
		fmt.Fprintln(stderr, "runtimectl:", resp.Message)
	}
	if reason := reasonFor(resp); reason != "" {
		fmt.Fprintln(stderr, "runtimectl:", reason)
	}
	return exitCodeFor(resp), nil
}

// liveOutput prints the run's output as runtimed streams it. A compile's
// output is not: it is printed at the end, and only if the compile
// failed.
type liveOutput struct {
	stdout, stderr io.Writer
	ran            bool // the run started: its output is printed as it comes
}

func (l *liveOutput) event(ev api.Event) error {
	if ev.Stage != "run" {
		return nil
	}
	l.ran = true
	var err error
	switch ev.Event {
	case api.EventStdout:
		_, err = io.WriteString(l.stdout, ev.Data)
	case api.EventStderr:
		_, err = io.WriteString(l.stderr, ev.Data)
	case api.EventStage, api.EventResult, api.EventDone, api.EventError:
	}
	return err
}

func exitCodeFor(resp *api.RunResponse) int {
	switch resp.Status {
	case api.StatusTimeout:
		return exitTimeout
	case api.StatusMemoryLimit:
		return exitMemory
	case api.StatusOutputLimit:
		return exitOutputLimit
	case api.StatusInternalError, api.StatusCompileError:
		return exitFailure
	case api.StatusOK, api.StatusRuntimeError, api.StatusWrongAnswer, api.StatusSkipped:
		// The program's own exit code.
	}
	if resp.Run == nil {
		return exitFailure
	}
	return resp.Run.ExitCode
}

func reasonFor(resp *api.RunResponse) string {
	if resp.Status == api.StatusCompileError {
		return "compile error"
	}
	r := resp.Run
	if r == nil {
		return ""
	}
	switch resp.Status {
	case api.StatusTimeout:
		if r.Message != "" {
			return fmt.Sprintf("timed out after %s: %s", time.Duration(r.WallTimeMS)*time.Millisecond, r.Message)
		}
		return fmt.Sprintf("timed out after %s", time.Duration(r.WallTimeMS)*time.Millisecond)
	case api.StatusMemoryLimit:
		return "killed: memory limit exceeded"
	case api.StatusOutputLimit:
		return "stopped: output limit exceeded (output truncated)"
	case api.StatusRuntimeError:
		if r.Signal != "" {
			return "killed by " + r.Signal
		}
	case api.StatusOK, api.StatusInternalError, api.StatusCompileError, api.StatusWrongAnswer, api.StatusSkipped:
		// Nothing to add to the program's output and exit code.
	}
	return ""
}
