package session

import (
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/runtimed/runtimed/internal/execution"
	"github.com/runtimed/runtimed/internal/language"
	"github.com/runtimed/runtimed/internal/sandbox"
	"github.com/runtimed/runtimed/pkg/api"
)

// A repl session's runs are cells of one interpreter that lives between
// them: the interpreter is the session's one program, started at the
// first cell (and again after one that ended it), each cell a JSON line
// on its stdin. After a cell it writes an end marker, a random word the
// host chose for it, with the cell's status and result, to stdout and
// to stderr; the host cuts the cell's output at the markers. A cell
// stopped at its wall time or output limit ends the interpreter, as does
// a memory kill; the next cell starts a new one and says the state was
// lost. The interpreter runs as the sandbox user under the session's
// limits; whatever it started is killed with it.

//go:embed repl/repl.py
var replPython string

//go:embed repl/repl.js
var replJavaScript string

// interpOutputBytes is the interpreter's own output limit: none to
// speak of. Each cell has its own, and the daemon keeps none of the
// interpreter's output (StreamOnly): it is the cell's, as it comes.
const interpOutputBytes = 1 << 40

// HasRepl reports whether lang's sessions may be repl sessions.
func HasRepl(lang *language.Language) bool { return replCommand(lang) != nil }

// replCommand is the command line of lang's interpreter.
func replCommand(lang *language.Language) []string {
	run := lang.RunCommand("x", "", nil, 0)
	if len(run) == 0 {
		return nil
	}
	switch lang.Name {
	case "python":
		return []string{run[0], "-B", "-u", "-c", replPython}
	case "javascript":
		return []string{run[0], "-e", replJavaScript}
	}
	return nil
}

// interp is a repl session's running interpreter.
type interp struct {
	input   chan []byte
	signals chan syscall.Signal
	done    chan struct{} // closed when the interpreter ended
	res     api.StageResult
	err     error

	mu     sync.Mutex
	cell   *cell  // the cell running, nil between cells
	marker []byte // the cell's end marker: a word of its own
}

// cell is one cell's output and end.
type cell struct {
	ev       execution.Events
	limit    int64
	out, err cutter
	stdout   bytes.Buffer
	stderr   bytes.Buffer
	output   bytes.Buffer
	over     bool // its output passed the limit
	status   string
	result   *string
	ends     int           // end markers seen (two: stdout's and stderr's)
	done     chan struct{} // closed at the second
}

// maxStatusLine bounds the status line after an end marker (the
// result's repr is cut to fit in the interpreter).
const maxStatusLine = 256 << 10

// cutter holds what may be the start of the end marker on a stream.
type cutter struct{ pending []byte }

// feed takes data and returns what of it is the cell's, and the status
// line that followed the marker (stdout) or "" (stderr) once the marker
// came whole, with ended set.
func (c *cutter) feed(data, marker []byte, withStatus bool) (cellData []byte, status []byte, ended bool) {
	c.pending = append(c.pending, data...)
	if i := bytes.Index(c.pending, marker); i >= 0 {
		rest := c.pending[i+len(marker):]
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 && len(rest) > maxStatusLine {
			// Not the interpreter's status line: the cell ends here,
			// its status unknown.
			cellData = append([]byte(nil), c.pending[:i]...)
			c.pending = nil
			return cellData, []byte("{}"), true
		}
		if nl < 0 {
			// The marker's line is not all there yet.
			cellData = append([]byte(nil), c.pending[:i]...)
			c.pending = append([]byte(nil), c.pending[i:]...)
			return cellData, nil, false
		}
		cellData = append([]byte(nil), c.pending[:i]...)
		if withStatus {
			status = append([]byte(nil), rest[:nl]...)
		}
		c.pending = append([]byte(nil), rest[nl+1:]...)
		return cellData, status, true
	}
	// Keep the longest tail that could begin the marker.
	keep := 0
	for k := min(len(marker)-1, len(c.pending)); k > 0; k-- {
		if bytes.HasPrefix(marker, c.pending[len(c.pending)-k:]) {
			keep = k
			break
		}
	}
	cellData = append([]byte(nil), c.pending[:len(c.pending)-keep]...)
	c.pending = append([]byte(nil), c.pending[len(c.pending)-keep:]...)
	return cellData, nil, false
}

// output is the interpreter's Output: it hands what it writes to the
// cell running, cut at the end markers. What comes between cells (a
// thread still printing) is dropped.
func (it *interp) output(stream string, data []byte) {
	it.mu.Lock()
	defer it.mu.Unlock()
	c := it.cell
	if c == nil {
		return
	}
	cut, withStatus := &c.out, true
	if stream == "stderr" {
		cut, withStatus = &c.err, false
	}
	mine, status, ended := cut.feed(data, it.marker, withStatus)
	if len(mine) > 0 {
		c.add(stream, mine, it)
	}
	if !ended {
		return
	}
	if withStatus {
		var st struct {
			Status string  `json:"status"`
			Result *string `json:"result"`
		}
		if json.Unmarshal(status, &st) == nil {
			c.status, c.result = st.Status, st.Result
		}
	}
	if c.ends++; c.ends == 2 {
		close(c.done)
	}
}

// add keeps a piece of the cell's output within its limit; past it, the
// interpreter is stopped.
func (c *cell) add(stream string, data []byte, it *interp) {
	buf := &c.stdout
	if stream == "stderr" {
		buf = &c.stderr
	}
	if room := c.limit - int64(buf.Len()); int64(len(data)) > room {
		data = data[:max(room, 0)]
		if !c.over {
			c.over = true
			it.kill()
		}
	}
	if len(data) == 0 {
		return
	}
	buf.Write(data)
	c.output.Write(data)
	if c.ev != nil {
		c.ev.Output("run", -1, stream, data)
	}
}

func (it *interp) kill() {
	select {
	case it.signals <- syscall.SIGKILL:
	default:
	}
}

func (it *interp) ended() bool {
	select {
	case <-it.done:
		return true
	default:
		return false
	}
}

// startInterp starts the session's interpreter in its sandbox.
func (s *Session) startInterp(ctx context.Context, log *logrus.Entry) (*interp, error) {
	sb, err := s.Sandbox(ctx, log)
	if err != nil {
		return nil, err
	}
	it := &interp{
		input: make(chan []byte, 1), signals: make(chan syscall.Signal, 1),
		done: make(chan struct{}),
	}
	life := max(time.Until(s.Created.Add(s.Lifetime)), time.Second) + 5*time.Second
	limits := s.Limits
	limits.WallTimeMS, limits.CPUTimeMS, limits.OutputBytes = life.Milliseconds(), life.Milliseconds(), interpOutputBytes
	prog := sandbox.Program{
		Args:        replCommand(s.Language),
		Env:         s.Language.Env,
		Limits:      limits,
		OutOfMemory: s.Language.OutOfMemory,
		Input:       it.input,
		Signals:     it.signals,
		Output:      it.output,
		// The cells take their output as it comes; the daemon keeps
		// none of the interpreter's.
		StreamOnly: true,
	}
	go func() {
		defer close(it.done)
		// The session's context: the interpreter outlives the request
		// that started it, never the session.
		it.res, it.err = sb.Run(s.ctx, prog)
	}()
	return it, nil
}

// Cell runs code as a cell of the session's interpreter (starting one if
// there is none) within limits' wall time and output, telling ev. It
// returns the cell's result, the repr of its last expression, and a
// message if a new interpreter had to be started after one that was
// lost. The caller holds the session's turn.
func (s *Session) Cell(ctx context.Context, log *logrus.Entry, code, stdin string, limits api.Limits, ev execution.Events) (api.StageResult, *string, string, error) {
	lost := ""
	if s.interp != nil && s.interp.ended() {
		lost = s.lostWhy
		if lost == "" {
			// It ended between cells (a thread that exited it, say).
			lost = "a new interpreter: the previous one ended between cells (" + string(s.interp.res.Status) + "); names defined before are gone"
		}
		s.interp, s.lostWhy = nil, ""
	}
	if s.interp == nil {
		it, err := s.startInterp(ctx, log)
		if err != nil {
			return api.StageResult{}, nil, "", err
		}
		s.interp = it
	}
	it := s.interp
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return api.StageResult{}, nil, "", err
	}
	word := "RUNTIMED-CELL-END-" + hex.EncodeToString(b)
	c := &cell{ev: ev, limit: limits.OutputBytes, done: make(chan struct{})}
	it.mu.Lock()
	it.cell, it.marker = c, []byte("\x1e"+word)
	it.mu.Unlock()
	defer func() {
		it.mu.Lock()
		it.cell = nil
		it.mu.Unlock()
	}()
	line, err := json.Marshal(map[string]string{"code": code, "stdin": stdin, "end": word})
	if err != nil {
		return api.StageResult{}, nil, "", err
	}
	if ev != nil {
		ev.StageStarted("run", -1)
	}
	start := time.Now()
	wall := time.NewTimer(time.Duration(limits.WallTimeMS) * time.Millisecond)
	defer wall.Stop()
	timedOut := false
	stopped := func() {
		it.kill()
		select {
		case <-it.done:
		case <-time.After(10 * time.Second):
		}
	}
	select {
	case it.input <- append(line, '\n'):
	case <-it.done:
	case <-ctx.Done():
		stopped()
		s.lostWhy = "a new interpreter: the previous cell's request ended before the cell did, which stopped the interpreter; names defined before are gone"
		return api.StageResult{}, nil, "", ctx.Err()
	}
	select {
	case <-c.done:
	case <-it.done:
	case <-wall.C:
		timedOut = true
		stopped()
	case <-ctx.Done():
		stopped()
		s.lostWhy = "a new interpreter: the previous cell's request ended before the cell did, which stopped the interpreter; names defined before are gone"
		return api.StageResult{}, nil, "", ctx.Err()
	}
	elapsed := time.Since(start)

	it.mu.Lock()
	res := api.StageResult{
		Stdout: c.stdout.String(), Stderr: c.stderr.String(), Output: c.output.String(),
		WallTimeMS: elapsed.Milliseconds(), StdoutTruncated: c.over && c.stdout.Len() >= int(c.limit), StderrTruncated: c.over && c.stderr.Len() >= int(c.limit),
	}
	status, result, finished, over := c.status, c.result, c.ends == 2, c.over
	it.mu.Unlock()

	switch {
	case finished && !over:
		res.Status = api.StatusOK
		if status != "ok" {
			res.Status, res.ExitCode, res.Message = api.StatusRuntimeError, 1, "the cell raised an error (its traceback is on stderr); the interpreter goes on"
			if s.Language.OutOfMemory(res.Stderr) {
				res.Status, res.Message = api.StatusMemoryLimit, "the cell ran out of memory (the session's limit); the interpreter goes on"
			}
		}
		return res, result, lost, nil
	case timedOut:
		res.Status, res.ExitCode = api.StatusTimeout, -1
		res.Message = fmt.Sprintf("the cell ran longer than its wall time of %d ms: the interpreter was stopped", limits.WallTimeMS)
		s.lostWhy = "a new interpreter: the previous one was stopped at a cell's wall time; names defined before are gone"
	case over:
		stopped()
		res.Status, res.ExitCode = api.StatusOutputLimit, -1
		res.Message = fmt.Sprintf("the cell wrote more than %d bytes on a stream: the interpreter was stopped", limits.OutputBytes)
		s.lostWhy = "a new interpreter: the previous one was stopped at a cell's output limit; names defined before are gone"
	default:
		// The interpreter ended during the cell: a memory kill, an exit.
		if it.err != nil && !errors.Is(it.err, context.Canceled) {
			return res, nil, lost, it.err
		}
		res.Status, res.ExitCode, res.Signal, res.MemoryBytes = it.res.Status, it.res.ExitCode, it.res.Signal, it.res.MemoryBytes
		if res.Status == api.StatusOK {
			res.Status = api.StatusRuntimeError
		}
		res.Message = "the interpreter ended during the cell"
		if it.res.Message != "" {
			res.Message += ": " + it.res.Message
		}
		s.lostWhy = "a new interpreter: the previous one ended during a cell (" + string(res.Status) + "); names defined before are gone"
	}
	return res, nil, lost, nil
}
