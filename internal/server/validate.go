package server

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/pkg/api"
)

// File names: at most this long in all, this long per part, this deep.
const (
	maxNameBytes = 255
	maxNameParts = 8
)

// badRequest is a refusal of a request's field (a 4xx of the code's).
func badRequest(code api.ErrorCode, field, format string, args ...any) *api.Error {
	e := newError(code, format, args...)
	e.Field = field
	return e
}

func tooLarge(field, format string, args ...any) *api.Error {
	return badRequest(api.CodeBodyTooLarge, field, format, args...)
}

// validateFileName checks that name is a relative path inside /box: no
// empty, "." or ".." parts, no NUL or control characters, valid UTF-8,
// bounded in length and depth, and not starting with '-' or '@' (an
// option or a response file to the commands that take it).
func validateFileName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("file name is empty")
	case len(name) > maxNameBytes:
		return fmt.Errorf("file name is longer than %d bytes", maxNameBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("file name is not valid UTF-8")
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("file name %q is absolute; names are relative to /box", name)
	case strings.HasPrefix(name, "-"):
		// Compilers take the names as arguments: -specs=x.c is an option.
		return fmt.Errorf("file name %q starts with '-', which a command would take as an option", name)
	case strings.HasPrefix(name, "@"):
		// gcc, javac, rustc and tsc read @x.c as a file of arguments.
		return fmt.Errorf("file name %q starts with '@', which a command would take as a file of arguments", name)
	}
	for _, r := range name {
		if r == 0 {
			return fmt.Errorf("file name contains NUL")
		}
		if unicode.IsControl(r) || r == '\\' {
			return fmt.Errorf("file name %q contains a control character or backslash", name)
		}
	}
	if execution.IsReserved(name) {
		return fmt.Errorf("file name %q is in %s/, which runtimed reserves for build output", name, execution.BuildDir)
	}
	parts := strings.Split(name, "/")
	if len(parts) > maxNameParts {
		return fmt.Errorf("file name %q is nested deeper than %d levels", name, maxNameParts)
	}
	for _, p := range parts {
		switch p {
		case "":
			return fmt.Errorf("file name %q has an empty part", name)
		case ".", "..":
			return fmt.Errorf("file name %q has a %q part", name, p)
		}
	}
	return nil
}

// validateFiles checks the request's files against the configured caps.
func validateFiles(files []api.File, req config.Requests) *api.Error {
	if len(files) == 0 {
		return badRequest(api.CodeInvalidRequest, "files", "at least one file is required; the first is the entry point")
	}
	if len(files) > req.MaxFiles {
		return badRequest(api.CodeInvalidRequest, "files", "%d files is more than the maximum of %d", len(files), req.MaxFiles)
	}
	seen := make(map[string]bool, len(files))
	var total int64
	for i, f := range files {
		field := fmt.Sprintf("files[%d].name", i)
		if err := validateFileName(f.Name); err != nil {
			return badRequest(api.CodeInvalidFile, field, "%v", err)
		}
		if seen[f.Name] {
			return badRequest(api.CodeInvalidFile, field, "file %q is given twice", f.Name)
		}
		// A file and a directory of the same name cannot both exist.
		for dir := f.Name; strings.Contains(dir, "/"); {
			dir = dir[:strings.LastIndex(dir, "/")]
			if seen[dir] {
				return badRequest(api.CodeInvalidFile, field, "file %q is inside %q, which is a file", f.Name, dir)
			}
			seen[dir+"/"] = true
		}
		if seen[f.Name+"/"] {
			return badRequest(api.CodeInvalidFile, field, "file %q is also a directory", f.Name)
		}
		seen[f.Name] = true
		total += int64(len(f.Content))
	}
	if total > req.MaxCodeBytes {
		return tooLarge("files", "files hold %d bytes; the maximum is %d", total, req.MaxCodeBytes)
	}
	return nil
}

// nameSources gives each source file the name its compiler wants for
// its content (a Java file is named after its public class), so a
// client may send Java in a file of any name. Where the new names would
// not make a valid set of files (two files for one class, a name taken),
// the files keep the names the client gave and the compiler says what is
// wrong. files is not changed.
func nameSources(lang *language.Language, files []api.File, req config.Requests) []api.File {
	var out []api.File
	for i, f := range files {
		name := lang.SourceName(f.Name, f.Content)
		if name == f.Name {
			continue
		}
		if out == nil {
			out = slices.Clone(files)
		}
		out[i].Name = name
	}
	if out == nil || validateFiles(out, req) != nil {
		return files
	}
	return out
}

// validateInput checks a run's stdin and args; prefix names the test
// they belong to, if any.
func validateInput(prefix, stdin string, args []string, req config.Requests) *api.Error {
	if int64(len(stdin)) > req.MaxStdinBytes {
		return tooLarge(prefix+"stdin", "stdin holds %d bytes; the maximum is %d", len(stdin), req.MaxStdinBytes)
	}
	if len(args) > req.MaxArgs {
		return badRequest(api.CodeInvalidRequest, prefix+"args", "%d args is more than the maximum of %d", len(args), req.MaxArgs)
	}
	for i, a := range args {
		field := fmt.Sprintf("%sargs[%d]", prefix, i)
		if int64(len(a)) > req.MaxArgBytes {
			return badRequest(api.CodeInvalidRequest, field, "argument is longer than %d bytes", req.MaxArgBytes)
		}
		if strings.ContainsRune(a, 0) {
			return badRequest(api.CodeInvalidRequest, field, "argument contains NUL")
		}
	}
	return nil
}

// validateTests checks the tests and the comparison mode.
func validateTests(r *api.RunRequest, req config.Requests) *api.Error {
	switch r.Compare {
	case "", api.CompareExact, api.CompareTrim, api.CompareTokens:
	default:
		return badRequest(api.CodeInvalidRequest, "compare", "compare must be %q, %q or %q", api.CompareExact, api.CompareTrim, api.CompareTokens)
	}
	if r.StopOnFirstFailure && len(r.Tests) == 0 {
		return badRequest(api.CodeInvalidRequest, "stop_on_first_failure", "stop_on_first_failure applies to tests; the request has none")
	}
	if len(r.Tests) == 0 {
		return nil
	}
	if len(r.Tests) > req.MaxTests {
		return badRequest(api.CodeInvalidRequest, "tests", "%d tests is more than the maximum of %d", len(r.Tests), req.MaxTests)
	}
	if r.Stdin != "" || len(r.Args) > 0 {
		return badRequest(api.CodeInvalidRequest, "tests", "with tests, stdin and args go in each test, not at the top level")
	}
	for i, t := range r.Tests {
		if aerr := validateInput(fmt.Sprintf("tests[%d].", i), t.Stdin, t.Args, req); aerr != nil {
			return aerr
		}
	}
	return nil
}

// ResolveLimits fills the request's unset limits with the defaults and
// refuses values that are negative, below what a sandbox needs, or above
// the configured maximum. The error names the field, within section.
func ResolveLimits(section string, req api.Limits, def, maximum config.Limits) (api.Limits, *api.Error) {
	return resolveLimits(req, def, maximum, func(field string) string { return section + "." + field })
}

// resolveLimits is ResolveLimits with the request's name for each field.
func resolveLimits(req api.Limits, def, maximum config.Limits, fieldName func(string) string) (api.Limits, *api.Error) {
	out := def
	minimum := api.MinLimits()
	for _, f := range api.LimitFields() {
		field := fieldName(f.Name)
		switch v := f.Value(req); {
		case v == 0:
			continue
		case v < 0 || v != v:
			return out, badRequest(api.CodeInvalidRequest, field, "%s must be a positive number", field)
		case f.Less(req, minimum):
			return out, badRequest(api.CodeInvalidRequest, field, "%s must be at least %s", field, f.Describe(minimum))
		case f.Less(maximum, req):
			return out, badRequest(api.CodeLimitExceeded, field, "%s = %s exceeds the maximum of %s", field, f.Describe(req), f.Describe(maximum))
		}
		f.Copy(&out, req)
	}
	return out, nil
}
