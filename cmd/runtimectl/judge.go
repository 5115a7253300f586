package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/runtimed/runtimed/pkg/api"
)

// readTests reads dir's N.in / N.out pairs (the layout competitive
// programming tools use), in N's order; a test without N.out has no
// expected output. It returns the tests and their names.
func readTests(dir string) ([]api.Test, []string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".in"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("%s holds no tests: N.in (stdin) and N.out (the expected stdout) files", dir)
	}
	sort.Slice(names, func(i, j int) bool {
		a, aerr := strconv.Atoi(names[i])
		b, berr := strconv.Atoi(names[j])
		if aerr == nil && berr == nil {
			return a < b
		}
		return names[i] < names[j]
	})
	tests := make([]api.Test, len(names))
	for i, n := range names {
		in, err := os.ReadFile(filepath.Join(dir, n+".in"))
		if err != nil {
			return nil, nil, err
		}
		tests[i].Stdin = string(in)
		out, err := os.ReadFile(filepath.Join(dir, n+".out"))
		switch {
		case err == nil:
			s := string(out)
			tests[i].ExpectedOutput = &s
		case !os.IsNotExist(err):
			return nil, nil, err
		}
	}
	return tests, names, nil
}

// judge runs req against opts.Tests and prints a verdict per test and a
// summary: exit 0 if every test is ok, 1 if one is not.
func judge(ctx context.Context, cl *api.Client, req *api.RunRequest, opts runOptions, stdout, stderr io.Writer) (int, error) {
	tests, names, err := readTests(opts.Tests)
	if err != nil {
		return exitUsage, err
	}
	req.Tests = tests
	resp, err := cl.Run(ctx, req)
	if err != nil {
		return exitForError(err), err
	}
	if opts.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return judgeExit(resp), enc.Encode(resp)
	}
	if resp.Status == api.StatusCompileError {
		if c := resp.Compile; c != nil {
			if _, err := io.WriteString(stderr, c.Stdout+c.Stderr); err != nil {
				return exitFailure, err
			}
		}
		fmt.Fprintln(stderr, "runtimectl: compile error")
		return exitFailure, nil
	}
	ok := 0
	for i, t := range resp.Tests {
		line := fmt.Sprintf("test %s: %s (%d ms)", names[i], t.Status, t.WallTimeMS)
		if t.Status != api.StatusOK && t.Message != "" {
			line += ": " + t.Message
		}
		if t.Status == api.StatusOK {
			ok++
		}
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "%d of %d tests ok\n", ok, len(names))
	if resp.Message != "" {
		fmt.Fprintln(stderr, "runtimectl:", resp.Message)
	}
	return judgeExit(resp), nil
}

func judgeExit(resp *api.RunResponse) int {
	if resp.Status == api.StatusOK {
		return 0
	}
	return exitFailure
}
