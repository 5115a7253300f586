package server

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/pkg/api"
)

// The Piston API: /api/v2, and /api/v2/piston as the public Piston
// instance spells it. Requests go through the same checks, limits,
// admission and sandboxes as /v1/run; only the shapes differ.
const pistonPrefix = "/api/v2/"

func isPiston(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, pistonPrefix) }

func (s *Server) routePiston() {
	for _, base := range []string{"/api/v2", "/api/v2/piston"} {
		s.route("POST", base+"/execute", s.handlePistonExecute)
		s.route("GET", base+"/runtimes", s.handlePistonRuntimes)
		s.route("GET", base+"/packages", s.handlePistonPackages)
	}
}

func (s *Server) handlePistonExecute(w http.ResponseWriter, r *http.Request) {
	plan, aerr := s.decodePiston(w, r)
	if aerr != nil {
		s.fail(w, r, aerr)
		return
	}
	resp := s.execute(w, r, plan)
	if resp == nil {
		return
	}
	out := api.PistonExecuteResponse{Language: resp.Language, Version: resp.Version}
	if resp.Compile != nil {
		c := pistonStage(resp.Compile)
		out.Compile = &c
	}
	switch {
	case resp.Run != nil:
		out.Run = pistonStage(resp.Run)
	case out.Compile != nil:
		out.Run = *out.Compile
	}
	writeJSON(w, http.StatusOK, out)
}

// decodePiston reads a Piston execute request and turns it into a plan.
// Nothing is created before it has passed.
func (s *Server) decodePiston(w http.ResponseWriter, r *http.Request) (execution.Plan, *api.Error) {
	st := stateFrom(r.Context())
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return execution.Plan{}, newError(api.CodeUnsupportedMediaType, "the body must be JSON, sent with Content-Type: application/json")
	}
	var req api.PistonExecuteRequest
	// Unknown fields are ignored, as Piston does: clients send their own.
	if aerr := decodeBody(w, r, st.cfg.Requests.MaxBodyBytes, &req, false); aerr != nil {
		return execution.Plan{}, aerr
	}
	return st.pistonPlan(&req)
}

// pistonPlan checks a decoded Piston request against the configuration:
// an execute body, or a connection's init message.
func (st *state) pistonPlan(req *api.PistonExecuteRequest) (execution.Plan, *api.Error) {
	if strings.TrimSpace(req.Language) == "" {
		return execution.Plan{}, badRequest(api.CodeInvalidRequest, "language", "language is required as a string")
	}
	lang, err := st.langs.Select(req.Language, req.Version)
	if err != nil {
		version := req.Version
		if version == "" {
			version = "*"
		}
		code := api.CodeUnknownVersion
		if errors.Is(err, language.ErrUnknownLanguage) {
			code = api.CodeUnknownLanguage
		}
		return execution.Plan{}, badRequest(code, "language", "%s-%s runtime is unknown", req.Language, version)
	}
	if aerr := cannotRun(lang); aerr != nil {
		return execution.Plan{}, aerr
	}
	if len(req.Files) == 0 {
		return execution.Plan{}, badRequest(api.CodeInvalidRequest, "files", "files is required as an array of at least one file; the first is the entry point")
	}
	if len(req.Files) > st.cfg.Requests.MaxFiles {
		return execution.Plan{}, badRequest(api.CodeInvalidRequest, "files", "%d files is more than the maximum of %d", len(req.Files), st.cfg.Requests.MaxFiles)
	}
	files := make([]api.File, len(req.Files))
	for i, f := range req.Files {
		if f.Content == nil {
			return execution.Plan{}, badRequest(api.CodeInvalidFile, fmt.Sprintf("files[%d].content", i), "files[%d].content is required as a string", i)
		}
		content, err := decodeContent(*f.Content, f.Encoding)
		if err != nil {
			return execution.Plan{}, badRequest(api.CodeInvalidFile, fmt.Sprintf("files[%d]", i), "files[%d]: %v", i, err)
		}
		name := f.Name
		if name == "" {
			name = lang.UnnamedFile(i, content)
		}
		files[i] = api.File{Name: name, Content: content}
	}
	if aerr := validateFiles(files, st.cfg.Requests); aerr != nil {
		return execution.Plan{}, aerr
	}
	if aerr := validateInput("", req.Stdin, req.Args, st.cfg.Requests); aerr != nil {
		return execution.Plan{}, aerr
	}
	run, aerr := pistonLimits("run", req.RunTimeout, req.RunCPUTime, req.RunMemoryLimit, lang.Defaults, st.cfg.Maximums)
	if aerr != nil {
		return execution.Plan{}, aerr
	}
	compile, aerr := pistonLimits("compile", req.CompileTimeout, req.CompileCPUTime, req.CompileMemoryLimit, lang.CompileDefaults, st.cfg.CompileMaximums)
	if aerr != nil {
		return execution.Plan{}, aerr
	}
	timeout, _ := st.timeout(0) // Piston's requests have no deadline of their own
	return execution.Plan{
		Language:      lang,
		Files:         nameSources(lang, files, st.cfg.Requests),
		Stdin:         req.Stdin,
		Args:          req.Args,
		Limits:        run,
		CompileLimits: compile,
		Timeout:       timeout,
	}, nil
}

// decodeContent decodes a file's content from its encoding.
func decodeContent(content, encoding string) (string, error) {
	switch encoding {
	case "", "utf8", "utf-8":
		return content, nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(content)
		if err != nil {
			return "", fmt.Errorf("content is not valid base64: %w", err)
		}
		return string(b), nil
	case "hex":
		b, err := hex.DecodeString(content)
		if err != nil {
			return "", fmt.Errorf("content is not valid hex: %w", err)
		}
		return string(b), nil
	default:
		return "", fmt.Errorf("encoding must be utf8, base64 or hex, not %q", encoding)
	}
}

// pistonLimits resolves one stage's limits from Piston's fields: absent
// or -1 is the configured default; more than the configured maximum is
// refused, naming the field.
func pistonLimits(stage string, timeout, cpuTime, memory *int64, def, maximums config.Limits) (api.Limits, *api.Error) {
	var req api.Limits
	for _, f := range []struct {
		name string
		v    *int64
		dst  *int64
	}{
		{stage + "_timeout", timeout, &req.WallTimeMS},
		{stage + "_cpu_time", cpuTime, &req.CPUTimeMS},
		{stage + "_memory_limit", memory, &req.MemoryBytes},
	} {
		switch {
		case f.v == nil || *f.v == -1:
		case *f.v <= 0:
			return req, badRequest(api.CodeInvalidRequest, f.name, "%s must be a positive number, or -1 for the configured default", f.name)
		default:
			*f.dst = *f.v
		}
	}
	names := map[string]string{
		"wall_time_ms": stage + "_timeout",
		"cpu_time_ms":  stage + "_cpu_time",
		"memory_bytes": stage + "_memory_limit",
	}
	return resolveLimits(req, def, maximums, func(field string) string { return names[field] })
}

// pistonStage reports a stage in Piston's shape. Limits runtimed enforced
// by killing the sandbox report SIGKILL, as Piston does.
func pistonStage(res *api.StageResult) api.PistonStage {
	st := api.PistonStage{
		Stdout: res.Stdout, Stderr: res.Stderr, Output: res.Output,
		CPUTime: res.CPUTimeMS, WallTime: res.WallTimeMS, Memory: res.MemoryBytes,
	}
	signal := res.Signal
	status := ""
	switch res.Status {
	case api.StatusOK:
	case api.StatusTimeout:
		status, signal = api.PistonTimeout, "SIGKILL"
	case api.StatusSkipped: // the request's deadline came before the stage
		status = api.PistonTimeout
	case api.StatusOutputLimit:
		status, signal = api.PistonStderrLimit, "SIGKILL"
		if res.StdoutTruncated {
			status = api.PistonStdoutLimit
		}
	case api.StatusInternalError:
		status = api.PistonInternal
	default: // runtime_error, memory_limit, compile_error
		status = api.PistonRuntimeError
		if signal != "" {
			status = api.PistonSignal
		}
	}
	if signal != "" {
		st.Signal = &signal
	} else {
		code := res.ExitCode
		st.Code = &code
	}
	if status != "" {
		st.Status = &status
	}
	if res.Message != "" {
		msg := res.Message
		st.Message = &msg
	}
	return st
}

// handlePistonRuntimes lists the languages that can run now: those whose
// image is installed (as Piston lists its installed packages) and holds
// their commands.
func (s *Server) handlePistonRuntimes(w http.ResponseWriter, r *http.Request) {
	out := []api.PistonRuntime{}
	for _, l := range stateFrom(r.Context()).langs.All() {
		if l.Unavailable != "" || !s.imagePresent(r, l) {
			continue
		}
		aliases := append([]string{}, l.Aliases...)
		out = append(out, api.PistonRuntime{Language: l.Name, Version: l.Version, Aliases: aliases, Runtime: l.Runtime})
	}
	writeJSON(w, http.StatusOK, out)
}

// handlePistonPackages lists every configured language and whether its
// image is installed. Installing and removing go through runtimed's own
// image commands, not this API.
func (s *Server) handlePistonPackages(w http.ResponseWriter, r *http.Request) {
	out := []api.PistonPackage{}
	for _, l := range stateFrom(r.Context()).langs.All() {
		out = append(out, api.PistonPackage{Language: l.Name, LanguageVersion: l.Version, Installed: s.imagePresent(r, l)})
	}
	writeJSON(w, http.StatusOK, out)
}
