package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// session runs Serve over pipes, as runtimed runs it over the sandbox's
// stdio, and collects what it relays.
type session struct {
	toAgent   *io.PipeWriter
	fromAgent *io.PipeReader
	done      chan error
	pause     time.Duration // how long the reader stops after the first stdout frame
	tmp       string        // the directory the agent empties between programs
}

func start(t *testing.T) *session {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{toAgent: inW, fromAgent: outR, done: make(chan error, 1), tmp: t.TempDir()}
	go func() {
		err := serve(inR, outW, s.tmp)
		outW.CloseWithError(io.EOF)
		s.done <- err
	}()
	s.ready(t)
	t.Cleanup(func() {
		s.toAgent.Close()
		select {
		case err := <-s.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return when its input ended")
		}
	})
	return s
}

// ready reads the agent's ready frame.
func (s *session) ready(t *testing.T) {
	t.Helper()
	kind, payload, err := ReadFrame(s.fromAgent, MaxOutFrame)
	if err != nil || kind != KindReady {
		t.Fatalf("ready frame: kind %q payload %q err %v", kind, payload, err)
	}
	var h Hello
	if err := json.Unmarshal(payload, &h); err != nil || h.Protocol != Protocol {
		t.Fatalf("hello %q: %v", payload, err)
	}
}

type outcome struct {
	stdout, stderr bytes.Buffer
	order          []byte // the kinds of the output frames, in order
	exit           Exit
}

func (s *session) exec(t *testing.T, x Exec, stdin string) outcome {
	t.Helper()
	return s.execWith(t, x, func() {
		if stdin != "" {
			_ = WriteFrame(s.toAgent, KindStdin, []byte(stdin))
		}
		_ = WriteFrame(s.toAgent, KindCloseStdin, nil)
	})
}

// execWith runs x; input sends what the program gets after its Exec.
// It returns at the program's exit, once the agent is ready again.
func (s *session) execWith(t *testing.T, x Exec, input func()) outcome {
	t.Helper()
	if x.Dir == "" {
		x.Dir = t.TempDir()
	}
	x.UID, x.GID = uint32(os.Getuid()), uint32(os.Getgid())
	body, _ := json.Marshal(x)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		_ = WriteFrame(s.toAgent, KindExec, body)
		input()
	}()
	var o outcome
	deadline := time.AfterFunc(20*time.Second, func() { s.fromAgent.CloseWithError(errors.New("timed out")) })
	defer deadline.Stop()
	for {
		kind, payload, err := ReadFrame(s.fromAgent, MaxOutFrame)
		if err != nil {
			t.Fatalf("read frame: %v", err)
		}
		switch kind {
		case KindStdout:
			if o.stdout.Len() == 0 {
				time.Sleep(s.pause)
			}
			o.stdout.Write(payload)
			o.order = append(o.order, kind)
		case KindStderr:
			o.stderr.Write(payload)
			o.order = append(o.order, kind)
		case KindExit:
			if err := json.Unmarshal(payload, &o.exit); err != nil {
				t.Fatal(err)
			}
			s.ready(t)
			<-sent
			return o
		default:
			t.Fatalf("unexpected frame %q", kind)
		}
	}
}

func sh(script string) Exec {
	return Exec{Args: []string{"sh", "-c", script}, Env: []string{"PATH=/usr/bin:/bin"}}
}

func TestServe(t *testing.T) {
	t.Run("output and exit code", func(t *testing.T) {
		o := start(t).exec(t, sh("echo out; echo err >&2; exit 3"), "")
		if o.stdout.String() != "out\n" || o.stderr.String() != "err\n" || o.exit.Code != 3 || o.exit.Signal != 0 || o.exit.Error != "" {
			t.Fatalf("got %+v stdout %q stderr %q", o.exit, o.stdout.String(), o.stderr.String())
		}
	})
	t.Run("stdin is relayed and closed", func(t *testing.T) {
		o := start(t).exec(t, sh("cat; echo end"), "a\nb\n")
		if o.stdout.String() != "a\nb\nend\n" || o.exit.Code != 0 {
			t.Fatalf("stdout %q exit %+v", o.stdout.String(), o.exit)
		}
	})
	t.Run("a signal is reported", func(t *testing.T) {
		o := start(t).exec(t, sh("kill -9 $$"), "")
		if o.exit.Signal != 9 || o.exit.Code != 137 {
			t.Fatalf("exit %+v", o.exit)
		}
	})
	t.Run("the command is found on the program's PATH", func(t *testing.T) {
		o := start(t).exec(t, Exec{Args: []string{"true"}, Env: []string{"PATH=/nonexistent:/bin"}}, "")
		if o.exit.Error != "" || o.exit.Code != 0 {
			t.Fatalf("exit %+v", o.exit)
		}
	})
	t.Run("a command that cannot start is an error, not an exit", func(t *testing.T) {
		o := start(t).exec(t, Exec{Args: []string{"no-such-command-here"}, Env: []string{"PATH=/bin"}}, "")
		if len(o.order) != 0 || o.exit.Code != 0 || !strings.Contains(o.exit.Error, "not found") {
			t.Fatalf("%d output frames, exit %+v", len(o.order), o.exit)
		}
	})
	t.Run("what the program left running is killed", func(t *testing.T) {
		began := time.Now()
		o := start(t).exec(t, sh("sleep 60 & sleep 60 & echo left"), "")
		if o.stdout.String() != "left\n" || o.exit.Code != 0 {
			t.Fatalf("stdout %q exit %+v", o.stdout.String(), o.exit)
		}
		if d := time.Since(began); d > 10*time.Second {
			t.Fatalf("took %s: the background processes were waited for", d)
		}
	})
	t.Run("large output arrives whole in bounded frames", func(t *testing.T) {
		o := start(t).exec(t, sh("head -c 1000000 /dev/zero; head -c 300000 /dev/zero >&2"), "")
		if o.stdout.Len() != 1_000_000 || o.stderr.Len() != 300_000 {
			t.Fatalf("stdout %d stderr %d bytes", o.stdout.Len(), o.stderr.Len())
		}
		if len(o.order) < 1_300_000/chunk {
			t.Fatalf("%d frames", len(o.order))
		}
	})
}

// TestOutputHeldAfterExit: a pipe's write end kept open after the program
// exited, out of reach of the kill, does not hold the exit past the grace.
// In a sandbox that is a descriptor in flight on a unix socket; here, a
// process in a session of its own, which the kill of the program's process
// group misses.
func TestOutputHeldAfterExit(t *testing.T) {
	// holder starts cmd in a session of its own, keeping the program's
	// stdout and stderr, and waits until it has written its pid.
	holder := func(cmd string) string {
		return "setsid sh -c 'echo $$ > holder; " + cmd + "' & while [ ! -s holder ]; do sleep 0.01; done; "
	}
	for _, tc := range []struct {
		name   string
		script string
		pause  time.Duration
		check  func(o outcome) bool
	}{
		{"held silent", holder("exec sleep 60") + "echo out; exit 3", 0,
			func(o outcome) bool { return o.stdout.String() == "out\n" && o.exit.Code == 3 }},
		{"what the pipe holds at the end of the grace is relayed", holder("exec sleep 60") + "printf a; sleep 0.1; head -c 65536 /dev/zero; echo err >&2", time.Second,
			func(o outcome) bool {
				return o.stdout.Len() == 1+65536 && o.stderr.String() == "err\n" && o.exit.Code == 0
			}},
		{"held by a process that goes on writing", holder("while :; do echo x; sleep 0.01; done"), 0,
			func(o outcome) bool { return strings.HasPrefix(o.stdout.String(), "x\n") && o.exit.Code == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := exec.LookPath("setsid"); err != nil {
				t.Skip("needs setsid (util-linux)")
			}
			dir := t.TempDir()
			t.Cleanup(func() {
				if data, err := os.ReadFile(filepath.Join(dir, "holder")); err == nil {
					if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && pid > 0 {
						_ = syscall.Kill(-pid, syscall.SIGKILL)
					}
				}
			})
			s := start(t)
			s.pause = tc.pause
			x := sh(tc.script)
			x.Dir = dir
			began := time.Now()
			o := s.exec(t, x, "")
			if took := time.Since(began) - tc.pause; took > 3*time.Second {
				t.Fatalf("the exit came %s after the program's: it waited for its output's holder", took)
			}
			if !tc.check(o) {
				t.Fatalf("stdout %d bytes %.20q stderr %q exit %+v", o.stdout.Len(), o.stdout.String(), o.stderr.String(), o.exit)
			}
		})
	}
}

func TestServeEndsWithoutExec(t *testing.T) {
	start(t) // its cleanup checks that Serve returns nil
}

// TestProgramsInSequence: one agent runs programs one after the other;
// nothing of one is left for the next.
func TestProgramsInSequence(t *testing.T) {
	s := start(t)
	box := t.TempDir()
	x := func(script string) Exec {
		e := sh(script)
		e.Dir = box
		e.Env = append(e.Env, "TMPDIR="+s.tmp)
		return e
	}
	o := s.exec(t, x(`mkdir -p "$TMPDIR/d/e" && echo 1 > "$TMPDIR/d/e/f" && chmod 0500 "$TMPDIR/d" && echo left > "$TMPDIR/left" && `+
		`(sleep 2; echo ghost > ghost) & echo first`), "")
	if o.stdout.String() != "first\n" || o.exit.Code != 0 {
		t.Fatalf("first: stdout %q exit %+v", o.stdout.String(), o.exit)
	}
	left, err := os.ReadDir(s.tmp)
	if err != nil || len(left) != 0 {
		t.Fatalf("the tmp directory holds %v (%v) after the first program", left, err)
	}
	o = s.exec(t, x("cat; echo second; sleep 2.5; ls"), "in\n")
	if o.stdout.String() != "in\nsecond\n" || o.exit.Code != 0 {
		t.Fatalf("second: stdout %q exit %+v: the first program's background process lived on", o.stdout.String(), o.exit)
	}
}

// TestSignals: a signal frame reaches the running program's process
// group; one sent between programs is dropped.
func TestSignals(t *testing.T) {
	s := start(t)
	sig, _ := json.Marshal(Signal{Signal: int(syscall.SIGTERM)})
	// Stale input for no program: dropped before the next Exec.
	_ = WriteFrame(s.toAgent, KindSignal, sig)
	_ = WriteFrame(s.toAgent, KindStdin, []byte("stale\n"))
	_ = WriteFrame(s.toAgent, KindCloseStdin, nil)
	o := s.execWith(t, sh("echo up; exec sleep 30"), func() {
		time.Sleep(300 * time.Millisecond)
		_ = WriteFrame(s.toAgent, KindSignal, sig)
	})
	if o.stdout.String() != "up\n" || o.exit.Signal != int(syscall.SIGTERM) {
		t.Fatalf("stdout %q exit %+v", o.stdout.String(), o.exit)
	}
	o = s.exec(t, sh("cat"), "fresh\n")
	if o.stdout.String() != "fresh\n" {
		t.Fatalf("stdout %q: stale stdin reached the next program", o.stdout.String())
	}
}

// TestUnreadStdin: a program that exits without reading a stdin larger
// than its pipe does not hold up its exit or the next program.
func TestUnreadStdin(t *testing.T) {
	s := start(t)
	big := strings.Repeat("x", 4<<20)
	o := s.exec(t, sh("echo done"), big)
	if o.stdout.String() != "done\n" {
		t.Fatalf("stdout %q", o.stdout.String())
	}
	if o = s.exec(t, sh("wc -c"), "abc"); strings.TrimSpace(o.stdout.String()) != "3" {
		t.Fatalf("stdout %q", o.stdout.String())
	}
}

func TestReadFrame(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, KindStdout, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	if kind, p, err := ReadFrame(bytes.NewReader(raw), 5); err != nil || kind != KindStdout || string(p) != "hello" {
		t.Fatalf("kind %q payload %q err %v", kind, p, err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(raw), 4); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("over the bound: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(raw[:7]), 5); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("truncated payload: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(raw[:3]), 5); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("truncated header: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader(nil), 5); !errors.Is(err, io.EOF) {
		t.Fatalf("clean end: %v", err)
	}
}

// TestSignalPastUnreadStdin: a program that reads none of a large stdin
// sent in many frames still gets its signal, and its exit is reported
// while a child it left holds its stdin.
func TestSignalPastUnreadStdin(t *testing.T) {
	s := start(t)
	sig, _ := json.Marshal(Signal{Signal: int(syscall.SIGTERM)})
	piece := []byte(strings.Repeat("x", 1024))
	began := time.Now()
	o := s.execWith(t, sh("exec 3<&0; sleep 30 <&3 & echo up; exec sleep 30"), func() {
		for range 20000 {
			if WriteFrame(s.toAgent, KindStdin, piece) != nil {
				return
			}
		}
		_ = WriteFrame(s.toAgent, KindSignal, sig)
	})
	if o.stdout.String() != "up\n" || o.exit.Signal != int(syscall.SIGTERM) {
		t.Fatalf("stdout %q exit %+v", o.stdout.String(), o.exit)
	}
	if d := time.Since(began); d > 15*time.Second {
		t.Fatalf("the signal took %s", d)
	}
}

// TestQuit: a quit frame between programs ends the agent cleanly.
func TestQuit(t *testing.T) {
	s := start(t)
	s.exec(t, sh("true"), "")
	if err := WriteFrame(s.toAgent, KindQuit, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatal(err)
		}
		s.done <- nil // for the cleanup's check
	case <-time.After(5 * time.Second):
		t.Fatal("the agent did not exit on a quit frame")
	}
}
