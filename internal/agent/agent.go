package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Serve is the agent: it says it is ready on out and runs the programs
// that come on in, one after the other: it relays each one's stdio and
// signals and reports its exit once the program and everything it
// started are gone, then empties tmpDir and says it is ready again. It
// returns when in ends between programs (nil) or breaks, or when the
// sandbox cannot be made clean for another program.
func Serve(in io.Reader, out io.Writer) error {
	return serve(in, out, "/tmp")
}

// cleaned are the directories a program can write to besides the box
// (which runtimed restores from the host), emptied after each program:
// tmp, and the sandbox's POSIX shared memory and message queues. Those
// the sandbox does not have are skipped.
func cleaned(tmp string) []string {
	dirs := []string{tmp}
	if tmp == "/tmp" {
		dirs = append(dirs, "/dev/shm", "/dev/mqueue")
	}
	return dirs
}

func serve(in io.Reader, out io.Writer, tmpDir string) error {
	w := &frameWriter{w: out}
	hello, _ := json.Marshal(Hello{Protocol: Protocol})
	frames := make(chan inFrame)
	go readInput(in, frames)
	for {
		if err := w.write(KindReady, hello); err != nil {
			return fmt.Errorf("say ready: %w", err)
		}
		x, err := nextExec(frames)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		exit := run(x, frames, w)
		body, _ := json.Marshal(exit)
		if err := w.write(KindExit, body); err != nil {
			return fmt.Errorf("report the exit: %w", err)
		}
		if err := emptyDirs(cleaned(tmpDir), x.UID, x.GID); err != nil {
			return fmt.Errorf("clean up after the program: %w", err)
		}
	}
}

// inFrame is a frame from runtimed, or the error that ended its stream.
type inFrame struct {
	kind    byte
	payload []byte
	err     error
}

// readInput reads runtimed's frames until its stream ends: the last
// frame sent carries the error, then frames is closed.
func readInput(in io.Reader, frames chan<- inFrame) {
	defer close(frames)
	for {
		kind, payload, err := ReadFrame(in, MaxInFrame)
		frames <- inFrame{kind: kind, payload: payload, err: err}
		if err != nil {
			return
		}
	}
}

// nextExec waits for the next program; a quit frame, or the end of the
// input, ends the agent (io.EOF). Stdin and signal frames meant for
// the program before it, which runtimed sent before it saw its exit, are
// dropped.
func nextExec(frames <-chan inFrame) (Exec, error) {
	for f := range frames {
		if f.err != nil {
			return Exec{}, f.err
		}
		switch f.kind {
		case KindExec:
			var x Exec
			if err := json.Unmarshal(f.payload, &x); err != nil {
				return Exec{}, fmt.Errorf("agent: exec frame: %w", err)
			}
			return x, nil
		case KindQuit:
			return Exec{}, io.EOF
		case KindStdin, KindCloseStdin, KindSignal:
		default:
			return Exec{}, fmt.Errorf("agent: unexpected frame %q", f.kind)
		}
	}
	return Exec{}, io.EOF
}

// frameWriter serialises the frames of the stdout and stderr pumps and
// the agent's own.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (f *frameWriter) write(kind byte, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return WriteFrame(f.w, kind, payload)
}

func run(x Exec, frames <-chan inFrame, w *frameWriter) Exit {
	if len(x.Args) == 0 {
		return Exit{Error: "no command"}
	}
	path, err := lookPath(x.Args[0], x.Dir, x.Env)
	if err != nil {
		return Exit{Error: err.Error()}
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return Exit{Error: err.Error()}
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return Exit{Error: err.Error()}
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		return Exit{Error: err.Error()}
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	if uint32(os.Getuid()) != x.UID || uint32(os.Getgid()) != x.GID {
		sys.Credential = &syscall.Credential{Uid: x.UID, Gid: x.GID, Groups: []uint32{}}
	}
	proc, err := startProgram(path, x.Args, &os.ProcAttr{
		Dir:   x.Dir,
		Env:   x.Env,
		Files: []*os.File{stdinR, stdoutW, stderrW},
		Sys:   sys,
	})
	stdinR.Close()
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		stdinW.Close()
		stdoutR.Close()
		stderrR.Close()
		return Exit{Error: fmt.Sprintf("start %s: %v", x.Args[0], err)}
	}

	exited := make(chan struct{})
	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		serveInput(frames, exited, stdinW, proc.Pid)
	}()
	var pumps sync.WaitGroup
	for _, p := range []struct {
		r    *os.File
		kind byte
	}{{stdoutR, KindStdout}, {stderrR, KindStderr}} {
		pumps.Add(1)
		go func() {
			defer pumps.Done()
			pumpOutput(p.r, p.kind, w)
		}()
	}

	state, err := proc.Wait()
	var exit Exit
	if err != nil {
		exit.Error = fmt.Sprintf("wait: %v", err)
	} else {
		ws, _ := state.Sys().(syscall.WaitStatus) // always, on Linux
		switch {
		case ws.Signaled():
			exit.Signal = int(ws.Signal())
			exit.Code = 128 + exit.Signal
		default:
			exit.Code = ws.ExitStatus()
		}
	}
	// The input is no longer the program's: what comes until the next
	// Exec is dropped.
	close(exited)
	<-inputDone
	// What the program left running goes with it, and so does its output:
	// it ends when the last holder of its pipes does, or a grace after the
	// kill. A pipe's write end can outlive every process (sent over a unix
	// socket and left in flight), and the exit is not held for it.
	killRest(proc.Pid)
	deadline := time.Now().Add(outputGrace)
	_ = stdoutR.SetReadDeadline(deadline)
	_ = stderrR.SetReadDeadline(deadline)
	pumps.Wait()
	return exit
}

// serveInput hands the program what runtimed sends it while it runs:
// stdin, through a writer of its own, and signals. It never blocks on
// the program: stdin the program does not read waits in a backlog (its
// size is runtimed's to bound: the request's stdin), so runtimed's frames
// are always read and a signal is never held up. It returns when the
// program has exited, and closes its stdin then.
func serveInput(frames <-chan inFrame, exited <-chan struct{}, stdin *os.File, pgid int) {
	pieces := make(chan []byte)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		writeStdin(pieces, stdin)
	}()
	var backlog [][]byte
	ending, ended := false, false // stdin is to end, has ended
	defer func() {
		if !ended {
			close(pieces)
		}
		// A program that exited with its stdin unread leaves the writer
		// blocked on a full pipe: closing the pipe ends the write.
		stdin.Close()
		<-writerDone
	}()
	for {
		var feed chan<- []byte
		var next []byte
		if len(backlog) > 0 {
			feed, next = pieces, backlog[0]
		} else if ending && !ended {
			close(pieces)
			ended = true
		}
		select {
		case <-exited:
			return
		case feed <- next:
			backlog[0] = nil
			backlog = backlog[1:]
		case f, ok := <-frames:
			if !ok || f.err != nil {
				// runtimed is gone: the program's stdin ends, and the
				// program runs on until runtimed's kill.
				ending = true
				frames = nil
				continue
			}
			switch f.kind {
			case KindStdin:
				if !ending {
					backlog = append(backlog, f.payload)
				}
			case KindCloseStdin:
				ending = true
			case KindSignal:
				var sig Signal
				if json.Unmarshal(f.payload, &sig) == nil {
					signal(pgid, sig)
				}
			}
		}
	}
}

// writeStdin writes the pieces to the program's stdin until they end, or
// the program closed its stdin (the rest is dropped), then closes it.
func writeStdin(pieces <-chan []byte, stdin *os.File) {
	open := true
	for p := range pieces {
		if open {
			if _, err := stdin.Write(p); err != nil {
				open = false
			}
		}
	}
	stdin.Close()
}

// signal sends sig to the program's process group, or to every process
// but the agent's own.
func signal(pgid int, sig Signal) {
	if sig.Signal <= 0 || sig.Signal >= 65 {
		return
	}
	s := unix.Signal(sig.Signal)
	if sig.All && os.Getpid() == 1 {
		_ = unix.Kill(-1, s)
		return
	}
	_ = unix.Kill(-pgid, s)
}

// killRest kills and reaps every process left after the program exited.
// As the sandbox's init the agent kills all processes but itself; the
// orphans are its children and are reaped. Run anywhere else (its tests),
// it kills the program's process group only.
func killRest(pgid int) {
	if os.Getpid() == 1 {
		_ = unix.Kill(-1, unix.SIGKILL)
	} else {
		_ = unix.Kill(-pgid, unix.SIGKILL)
	}
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil { // ECHILD: none left
			return
		}
	}
}

// Past the program's exit, its output gets outputGrace to end; then what
// its pipes hold is relayed, at most pipeMaxBytes (the most a pipe holds:
// /proc/sys/fs/pipe-max-size), and no more is waited for.
const (
	outputGrace  = 200 * time.Millisecond
	pipeMaxBytes = 1 << 20
)

func pumpOutput(r *os.File, kind byte, w *frameWriter) {
	defer r.Close()
	buf := make([]byte, chunk)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if werr := w.write(kind, buf[:n]); werr != nil {
				// runtimed is gone: drain so the program is not blocked
				// on a full pipe until it is killed.
				_, _ = io.Copy(io.Discard, r)
				return
			}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			relayBuffered(r, kind, w, buf)
			return
		}
		if err != nil {
			return
		}
	}
}

// relayBuffered relays what the pipe holds without waiting for more. A
// read past its deadline fails before it looks at the pipe, so the read
// here is the system call itself, on the pipe's non-blocking descriptor.
func relayBuffered(r *os.File, kind byte, w *frameWriter, buf []byte) {
	if r.SetReadDeadline(time.Time{}) != nil {
		return
	}
	rc, err := r.SyscallConn()
	if err != nil {
		return
	}
	for left := pipeMaxBytes; left > 0; {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, rerr = unix.Read(int(fd), buf[:min(len(buf), left)])
			return true // never wait
		})
		if err != nil || rerr != nil || n <= 0 {
			return
		}
		if w.write(kind, buf[:n]) != nil {
			return
		}
		left -= n
	}
}

// lookPath finds a command as a shell would, on the PATH of the program's
// environment; a name with a slash is taken as it is (relative to dir).
func lookPath(name, dir string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathEnv := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found", name)
}
