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

// Serve is the agent: it says it is ready on out, reads one Exec from in,
// runs it, relays its stdio and reports its exit. It returns when the
// program and everything it started are gone, or when in ends before an
// Exec came (the sandbox was not needed).
func Serve(in io.Reader, out io.Writer) error {
	w := &frameWriter{w: out}
	hello, _ := json.Marshal(Hello{Protocol: Protocol})
	if err := w.write(KindReady, hello); err != nil {
		return fmt.Errorf("say ready: %w", err)
	}
	kind, payload, err := ReadFrame(in, MaxInFrame)
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	if kind != KindExec {
		return fmt.Errorf("agent: expected an exec frame, got %q", kind)
	}
	var x Exec
	if err := json.Unmarshal(payload, &x); err != nil {
		return fmt.Errorf("agent: exec frame: %w", err)
	}
	exit := run(x, in, w)
	body, _ := json.Marshal(exit)
	return w.write(KindExit, body)
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

func run(x Exec, in io.Reader, w *frameWriter) Exit {
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

	go pumpStdin(in, stdinW)
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
	// What the program left running goes with it, and so does its output:
	// it ends when the last holder of its pipes does, or a grace after the
	// kill. A pipe's write end can outlive every process (sent over a unix
	// socket and left in flight), and the exit is not held for it.
	killRest(proc.Pid)
	deadline := time.Now().Add(outputGrace)
	_ = stdoutR.SetReadDeadline(deadline)
	_ = stderrR.SetReadDeadline(deadline)
	pumps.Wait()
	stdinW.Close()
	return exit
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

// pumpStdin copies the stdin frames to the program. A program that does
// not read its stdin, or closed it, makes the writes fail; the frames are
// still read so runtimed is never blocked on the agent.
func pumpStdin(in io.Reader, stdin *os.File) {
	open := true
	closeOnce := func() {
		if open {
			stdin.Close()
			open = false
		}
	}
	defer closeOnce()
	for {
		kind, payload, err := ReadFrame(in, MaxInFrame)
		if err != nil {
			return
		}
		switch kind {
		case KindStdin:
			if open {
				if _, err := stdin.Write(payload); err != nil {
					closeOnce()
				}
			}
		case KindCloseStdin:
			closeOnce()
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
