// Package api owns runtimed's wire format: the JSON bodies of its HTTP API,
// the error codes it answers with, and a Go client for them.
package api

// File is one source file of a request. Name is relative to the sandbox's
// working directory, /box.
type File struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// RunRequest is the body of POST /v1/run.
type RunRequest struct {
	Language string   `json:"language"`
	Version  string   `json:"version,omitempty"`
	Files    []File   `json:"files"`
	Stdin    string   `json:"stdin,omitempty"`
	Args     []string `json:"args,omitempty"`
	Limits   Limits   `json:"limits,omitempty"`
	// CompileLimits bound the compile stage of compiled languages.
	CompileLimits Limits `json:"compile_limits,omitempty"`
	// Tests, if given, run the program once per test after one compile,
	// one after the other in one sandbox whose box is restored between
	// them; Stdin and Args must then be empty.
	Tests []Test `json:"tests,omitempty"`
	// StopOnFirstFailure skips the tests after the first one that is not
	// ok (its status says how); the skipped ones are "skipped".
	StopOnFirstFailure bool `json:"stop_on_first_failure,omitempty"`
	// Compare says how a test's stdout is compared with its
	// expected_output: CompareExact, CompareTrim (the default) or
	// CompareTokens.
	Compare Compare `json:"compare,omitempty"`
	// DeadlineMS bounds the whole request, its waits for a sandbox
	// included; 0 means the configured default. At the deadline the
	// stage running is stopped (timeout) and the tests not yet run are
	// skipped.
	DeadlineMS int64 `json:"deadline_ms,omitempty"`
}

// Test is one input of a judged run.
type Test struct {
	Stdin string   `json:"stdin,omitempty"`
	Args  []string `json:"args,omitempty"`
	// ExpectedOutput, if set, is compared with the test's stdout; a
	// difference makes the test's status wrong_answer.
	ExpectedOutput *string `json:"expected_output,omitempty"`
}

// Compare is how output is compared with the expected output.
type Compare string

const (
	// CompareExact: byte for byte.
	CompareExact Compare = "exact"
	// CompareTrim: trailing whitespace on each line, and trailing empty
	// lines, are ignored.
	CompareTrim Compare = "trim"
	// CompareTokens: the whitespace-separated tokens are equal.
	CompareTokens Compare = "tokens"
)

// Status is the verdict of a stage or of a whole execution.
type Status string

const (
	StatusOK            Status = "ok"
	StatusRuntimeError  Status = "runtime_error"
	StatusTimeout       Status = "timeout"
	StatusMemoryLimit   Status = "memory_limit"
	StatusOutputLimit   Status = "output_limit"
	StatusInternalError Status = "internal_error"
	// StatusCompileError: the compile stage failed; nothing ran.
	StatusCompileError Status = "compile_error"
	// StatusWrongAnswer: a test ran fine but its output differs from the
	// expected output.
	StatusWrongAnswer Status = "wrong_answer"
	// StatusSkipped: the stage did not run; the request's deadline came
	// first.
	StatusSkipped Status = "skipped"
)

// StageResult is what one stage of an execution (the compile, the run, a
// test) did.
type StageResult struct {
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	ExitCode        int    `json:"exit_code"`
	Signal          string `json:"signal,omitempty"`
	Status          Status `json:"status"`
	WallTimeMS      int64  `json:"wall_time_ms"`
	CPUTimeMS       int64  `json:"cpu_time_ms"`
	MemoryBytes     int64  `json:"memory_bytes"`
	StdoutTruncated bool   `json:"stdout_truncated"`
	StderrTruncated bool   `json:"stderr_truncated"`
	// Message says in words why the stage did not end well: the limit it
	// hit, the exit status or the signal; empty when it did.
	Message string `json:"message,omitempty"`
	// Output is stdout and stderr interleaved in the order the sandbox
	// relayed them. /v1 leaves it out of its answers (it repeats stdout
	// and stderr); /api/v2 reports it as run.output.
	Output string `json:"-"`
}

// RunResponse is the body of a 200 answer to POST /v1/run. The user's
// program failing is reported here, in Status, not as an HTTP error.
type RunResponse struct {
	Language string `json:"language"`
	Version  string `json:"version"`
	// Status is compile_error if the compile failed; otherwise the run's
	// status, or with tests, the status of the first test that was not ok.
	Status Status `json:"status"`
	// Compile is set for compiled languages.
	Compile *StageResult `json:"compile,omitempty"`
	// Run is set when the request had no tests and the program ran.
	Run *StageResult `json:"run,omitempty"`
	// Tests and Summary are set when the request had tests and the
	// program compiled; Summary counts the tests by status.
	Tests   []StageResult  `json:"tests,omitempty"`
	Summary map[Status]int `json:"summary,omitempty"`
	// Message says why the request ended early (its deadline), if it did;
	// in a repl session, that the interpreter's state was lost.
	Message string `json:"message,omitempty"`
	// Result is, in a repl session, the repr of the cell's last
	// expression (absent if it was none, or None/undefined).
	Result *string `json:"result,omitempty"`
}

// Runtime describes one language runtimed can run.
type Runtime struct {
	Language     string   `json:"language"`
	Version      string   `json:"version"`
	Aliases      []string `json:"aliases"`
	Extension    string   `json:"extension"`
	Image        string   `json:"image"`
	ImagePresent bool     `json:"image_present"`
	// ImageBuilding: the daemon is building the image in the background.
	ImageBuilding bool `json:"image_building,omitempty"`
	// Unavailable says why the language cannot run here (a command it
	// starts is not in its image); its requests are answered 503
	// language_unavailable.
	Unavailable string `json:"unavailable,omitempty"`
}

// RuntimesResponse is the body of GET /v1/runtimes.
type RuntimesResponse struct {
	Runtimes []Runtime `json:"runtimes"`
}

// Health is the body of GET /healthz.
type Health struct {
	Status     string `json:"status"`
	Containerd string `json:"containerd"`
	Version    string `json:"version"`
}

// Readiness is the body of GET /readyz: whether runtimed can take work
// now, and the result of each check (containerd, runtime, images): "ok" or
// what is wrong.
type Readiness struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

// Pool is one warm pool: sandboxes of one image and set of limits,
// created and started ahead of the requests that take them.
type Pool struct {
	Image       string  `json:"image"`
	MemoryBytes int64   `json:"memory_bytes"`
	CPU         float64 `json:"cpu"`
	Pids        int64   `json:"pids"`
	Ready       int     `json:"ready"`
	Creating    int     `json:"creating"`
	// Target is what the pool fills to now: it grows while requests find
	// the pool empty, up to Size, and shrinks when they stop.
	Target int `json:"target"`
	Size   int `json:"size"`
	// IdleBytes is the memory one idle sandbox of the pool held, as last
	// measured in its cgroup.
	IdleBytes int64 `json:"idle_bytes"`
	// Sandboxes are the ids (containerd containers) of the pool's ready
	// and starting sandboxes.
	Sandboxes []string `json:"sandboxes"`
}

// Pools is GET /v1/pools's answer.
type Pools struct {
	Pools []Pool `json:"pools"`
}
