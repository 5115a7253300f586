package execution

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/pkg/api"
)

// executeSession runs a plan in its session's sandbox: the plan's files
// are written into the box over what is there (the rest of the box
// stays), a compiled language compiles in the same sandbox, and the
// program runs. Everything the programs started is gone after each (the
// agent kills it and empties /tmp), the box's files are not.
func (e *Executor) executeSession(ctx context.Context, log *logrus.Entry, p Plan) (*api.RunResponse, error) {
	lang := p.Language
	resp := &api.RunResponse{Language: lang.Name, Version: lang.Version}
	if p.Cell != nil {
		res, result, lost, err := p.Session.Cell(ctx, log, *p.Cell, p.Stdin, p.Limits, p.Events)
		if err != nil {
			return nil, err
		}
		if p.Events != nil {
			p.Events.StageEnded("run", -1, res)
		}
		resp.Run, resp.Status, resp.Result, resp.Message = &res, res.Status, result, lost
		return resp, nil
	}
	entry := p.Files[0].Name
	var deadline time.Time
	if p.Timeout > 0 {
		deadline = time.Now().Add(p.Timeout)
	}
	sb, err := p.Session.Sandbox(ctx, log)
	if err != nil {
		return nil, err
	}
	box := sb.Box()
	for _, f := range p.Files {
		if _, err := box.Put(f.Name, strings.NewReader(f.Content), 0o644); err != nil {
			if errors.Is(err, sandbox.ErrBoxFull) {
				return nil, &api.Error{Code: api.CodeBodyTooLarge, HTTPStatus: 413, Field: "files",
					Message: fmt.Sprintf("the files do not fit in the session's box of %d bytes", box.Size())}
			}
			return nil, fmt.Errorf("write %s: %w", f.Name, err)
		}
	}

	// runOne runs prog in the session's sandbox; one that is spent (its
	// last program took the whole sandbox) is replaced, once.
	runOne := func(name string, prog sandbox.Program, judge func(*api.StageResult)) (api.StageResult, error) {
		for attempt := 0; ; attempt++ {
			var err error
			if sb, err = p.Session.Sandbox(ctx, log); err != nil {
				return api.StageResult{}, err
			}
			res, err := e.stage(ctx, log, name, -1, sb, prog, p.Events, judge)
			if errors.Is(err, sandbox.ErrSpent) && attempt == 0 {
				continue
			}
			return res, err
		}
	}

	mainClass := ""
	if lang.Compiled() {
		if err := box.Mkdir(BuildDir); err != nil {
			return nil, err
		}
		var findErr error
		judge := findMainClass(lang, entry, func() *sandbox.Box { return sb.Box() }, &mainClass, &findErr)
		res, err := runOne("compile", p.compileProgram(deadline), judge)
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
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			run := api.StageResult{Status: api.StatusSkipped, Message: fmt.Sprintf("not run: the request's deadline of %d ms was reached before the run could start", p.Timeout.Milliseconds())}
			resp.Run, resp.Status = &run, api.StatusSkipped
			return resp, nil
		}
	}

	res, err := runOne("run", sandbox.Program{
		Args:        lang.RunCommand(entry, mainClass, p.Args, p.Limits.MemoryBytes),
		Env:         lang.Env,
		Stdin:       []byte(p.Stdin),
		Limits:      p.Limits,
		Deadline:    deadline,
		OutOfMemory: lang.OutOfMemory,
		Input:       p.Input,
		Signals:     p.Signals,
	}, nil)
	if err != nil {
		return nil, err
	}
	resp.Run, resp.Status = &res, res.Status
	return resp, nil
}
