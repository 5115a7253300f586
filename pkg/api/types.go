// Package api owns runtimed's wire format: the JSON bodies of its HTTP API,
// the error codes it answers with, and a Go client for them.
package api

// File is one source file of a request. Name is relative to the sandbox's
// working directory, /box.
type File struct {
	Name    string `json:"name"`
	Content string `json:"content"`
}

// Limits bounds one stage of an execution. A zero field means "the
// configured default"; a field above the configured maximum is refused.
type Limits struct {
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	CPU         float64 `json:"cpu,omitempty"`
	WallTimeMS  int64   `json:"wall_time_ms,omitempty"`
	Pids        int64   `json:"pids,omitempty"`
	OutputBytes int64   `json:"output_bytes,omitempty"`
}

// RunRequest is the body of POST /v1/run.
type RunRequest struct {
	Language string   `json:"language"`
	Version  string   `json:"version,omitempty"`
	Files    []File   `json:"files"`
	Stdin    string   `json:"stdin,omitempty"`
	Args     []string `json:"args,omitempty"`
	Limits   Limits   `json:"limits,omitempty"`
}

// Status is the verdict of a stage or of a whole execution.
type Status string

const (
	StatusOK            Status = "ok"
	StatusRuntimeError  Status = "runtime_error"
	StatusTimeout       Status = "timeout"
	StatusMemoryLimit   Status = "memory_limit"
	StatusOutputLimit   Status = "output_limit"
	StatusInternalError Status = "internal_error"
)

// StageResult is what one stage (the run) of an execution did.
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
}

// RunResponse is the body of a 200 answer to POST /v1/run. The user's
// program failing is reported here, in Status, not as an HTTP error.
type RunResponse struct {
	Language string      `json:"language"`
	Version  string      `json:"version"`
	Status   Status      `json:"status"`
	Run      StageResult `json:"run"`
}

// Runtime describes one language runtimed can run.
type Runtime struct {
	Language     string   `json:"language"`
	Version      string   `json:"version"`
	Aliases      []string `json:"aliases"`
	Extension    string   `json:"extension"`
	Image        string   `json:"image"`
	ImagePresent bool     `json:"image_present"`
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
