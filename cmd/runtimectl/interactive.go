package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/runtimed/runtimed/pkg/api"
)

// runInteractive runs req over /v1/connect (run -i): stdin goes to the
// program a line at a time as it is typed, and its end closes the
// program's stdin; the program's output is printed as it comes. The exit
// code is the one runFiles gives for the same response.
func runInteractive(ctx context.Context, dial func(context.Context, *api.RunRequest) (*api.Connection, error), req *api.RunRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sess, err := dial(ctx, req)
	if err != nil {
		return exitForError(err), err
	}
	defer sess.Close()
	go sendLines(ctx, sess, stdin)
	// The compiler's messages are printed only if the compile fails, as
	// run without -i does.
	var compile strings.Builder
	for {
		ev, err := sess.Next(ctx)
		if err != nil {
			return exitFailure, err
		}
		switch ev.Event {
		case api.EventStdout, api.EventStderr:
			w := stdout
			switch {
			case ev.Stage == "compile":
				compile.WriteString(ev.Data)
				continue
			case ev.Event == api.EventStderr:
				w = stderr
			}
			if _, err := io.WriteString(w, ev.Data); err != nil {
				return exitFailure, err
			}
		case api.EventError:
			return exitForError(ev.Error), ev.Error
		case api.EventDone:
			resp := ev.Response
			if resp.Status == api.StatusCompileError {
				if _, err := io.WriteString(stderr, compile.String()); err != nil {
					return exitFailure, err
				}
			}
			if reason := reasonFor(resp); reason != "" {
				fmt.Fprintln(stderr, "runtimectl:", reason)
			}
			return exitCodeFor(resp), nil
		case api.EventStage, api.EventResult:
		}
	}
}

// sendLines sends r to the program a line at a time, and closes its
// stdin at r's end.
func sendLines(ctx context.Context, sess *api.Connection, r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if sess.Stdin(ctx, line) != nil {
				return
			}
		}
		if err != nil {
			_ = sess.CloseStdin(ctx)
			return
		}
	}
}

// exitForError is the exit code for a refused or failed execution: a
// request runtimed refused is a usage error, its own failure is not.
func exitForError(err error) int {
	var aerr *api.Error
	if !errors.As(err, &aerr) {
		return exitFailure
	}
	if aerr.HTTPStatus != 0 {
		if aerr.HTTPStatus/100 == 4 {
			return exitUsage
		}
		return exitFailure
	}
	// An error event carries no HTTP status: the platform's codes are
	// the failures.
	if slices.Contains([]api.ErrorCode{api.CodeBusy, api.CodeImageMissing, api.CodeUnavailable, api.CodeImageFailed, api.CodeInternal}, aerr.Code) {
		return exitFailure
	}
	return exitUsage
}
