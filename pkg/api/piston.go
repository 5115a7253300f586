package api

// The Piston API (/api/v2): the request and answer bodies of the code
// runner many bots, judges and editors already talk to, so that their
// clients can point at runtimed unchanged. docs/piston.md says where
// runtimed's answers differ.

// PistonFile is one file of a Piston request. Encoding is "utf8" (the
// default), "base64" or "hex".
type PistonFile struct {
	Name     string  `json:"name,omitempty"`
	Content  *string `json:"content"`
	Encoding string  `json:"encoding,omitempty"`
}

// PistonExecuteRequest is the body of POST /api/v2/execute. Times are in
// milliseconds, memory in bytes; -1 or an absent field means the
// configured default.
type PistonExecuteRequest struct {
	Language           string       `json:"language"`
	Version            string       `json:"version,omitempty"`
	Files              []PistonFile `json:"files"`
	Stdin              string       `json:"stdin,omitempty"`
	Args               []string     `json:"args,omitempty"`
	CompileTimeout     *int64       `json:"compile_timeout,omitempty"`
	RunTimeout         *int64       `json:"run_timeout,omitempty"`
	CompileCPUTime     *int64       `json:"compile_cpu_time,omitempty"`
	RunCPUTime         *int64       `json:"run_cpu_time,omitempty"`
	CompileMemoryLimit *int64       `json:"compile_memory_limit,omitempty"`
	RunMemoryLimit     *int64       `json:"run_memory_limit,omitempty"`
}

// Piston's stage statuses.
const (
	PistonRuntimeError = "RE" // exited with a non-zero status
	PistonSignal       = "SG" // killed by a signal (memory limit included)
	PistonTimeout      = "TO" // wall or CPU time limit
	PistonStdoutLimit  = "OL" // stdout longer than the output limit
	PistonStderrLimit  = "EL" // stderr longer than the output limit
	PistonInternal     = "XX" // the sandbox failed
)

// PistonStage is what one stage did, in Piston's shape. Code is null when
// a signal ended the stage; Signal, Message and Status are null when all
// went well.
type PistonStage struct {
	Stdout   string  `json:"stdout"`
	Stderr   string  `json:"stderr"`
	Output   string  `json:"output"`
	Code     *int    `json:"code"`
	Signal   *string `json:"signal"`
	Message  *string `json:"message"`
	Status   *string `json:"status"`
	CPUTime  int64   `json:"cpu_time"`
	WallTime int64   `json:"wall_time"`
	Memory   int64   `json:"memory"`
}

// PistonExecuteResponse is the answer to POST /api/v2/execute. Compile is
// set for compiled languages; when compilation fails, Run is a copy of it.
type PistonExecuteResponse struct {
	Language string       `json:"language"`
	Version  string       `json:"version"`
	Run      PistonStage  `json:"run"`
	Compile  *PistonStage `json:"compile,omitempty"`
}

// PistonRuntime is one entry of GET /api/v2/runtimes.
type PistonRuntime struct {
	Language string   `json:"language"`
	Version  string   `json:"version"`
	Aliases  []string `json:"aliases"`
	Runtime  string   `json:"runtime,omitempty"`
}

// PistonPackage is one entry of GET /api/v2/packages: a language and
// whether its image is installed.
type PistonPackage struct {
	Language        string `json:"language"`
	LanguageVersion string `json:"language_version"`
	Installed       bool   `json:"installed"`
}

// PistonError is the body of every non-2xx answer on /api/v2.
type PistonError struct {
	Message string `json:"message"`
}
