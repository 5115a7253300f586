// Package agent owns runtimed-init, the first process of every sandbox,
// and the protocol runtimed speaks with it over the sandbox's stdin and
// stdout. The agent starts in a fresh sandbox, says it is ready, and waits;
// runtimed then sends it one program to run. The agent starts the program
// as the sandbox user, relays its stdin, stdout and stderr, and when the
// program exits, kills whatever it left behind, reaps it all and reports
// the exit. One sandbox runs one program: the agent exits after it.
//
// The agent is what makes a sandbox usable before its request is known:
// a sandbox can be created, booted and left idle in a warm pool, and the
// program is started in it in a few milliseconds instead of the time a
// new sandbox takes.
//
// What the agent reports is not trusted to enforce anything: wall time,
// output size, memory and CPU are measured and limited by runtimed from
// the host side. A program cannot reach the agent: it runs as another
// user, without capabilities, and the agent reads nothing the program
// writes except its output, which it relays as opaque bytes.
package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame kinds, runtimed to agent.
const (
	KindExec       byte = 'x' // JSON Exec: the program to run
	KindStdin      byte = 'i' // bytes for the program's stdin
	KindCloseStdin byte = 'c' // the program's stdin is at its end
	KindSignal     byte = 's' // JSON Signal: a signal for the program
	KindQuit       byte = 'q' // between programs: no other comes, exit
)

// Frame kinds, agent to runtimed.
const (
	KindReady  byte = 'R' // JSON Hello: the agent waits for an Exec
	KindStdout byte = 'O' // bytes the program wrote to stdout
	KindStderr byte = 'E' // bytes the program wrote to stderr
	KindExit   byte = 'Z' // JSON Exit: the program and all it started are gone
)

// Protocol is the version of this protocol; Hello carries it. Version 2:
// a sequence of programs, each after a ready frame; signals.
const Protocol = 2

// Frame sizes. A frame from the agent is never larger than MaxOutFrame:
// runtimed reads what the sandbox sends under that bound, so a broken or
// subverted agent cannot make it allocate more. A frame to the agent holds
// at most MaxInFrame (the Exec frame carries the program's arguments and
// environment).
const (
	MaxOutFrame = 64 << 10
	MaxInFrame  = 8 << 20
	chunk       = 32 << 10
)

// headerSize is a frame's header: its kind and the length of its payload
// (big endian).
const headerSize = 5

// Hello is the ready frame's payload.
type Hello struct {
	Protocol int `json:"protocol"`
}

// Exec is the program to run.
type Exec struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
	UID  uint32   `json:"uid"`
	GID  uint32   `json:"gid"`
}

// Signal is a signal for the running program: for its process group,
// or with All for every process of the sandbox but the agent (how
// runtimed stops a program at a limit). A signal frame between programs
// is for none and is dropped.
type Signal struct {
	Signal int  `json:"signal"`
	All    bool `json:"all,omitempty"`
}

// Exit is how the program ended. If it could not be started, Error says
// why and nothing else is set.
type Exit struct {
	Code   int    `json:"code"`             // exit status, or 128+signal
	Signal int    `json:"signal,omitempty"` // the signal that killed it
	Error  string `json:"error,omitempty"`
}

// errFrameTooLarge is returned for a frame over the reader's bound.
var errFrameTooLarge = errors.New("agent: frame too large")

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, kind byte, payload []byte) error {
	buf := make([]byte, headerSize+len(payload))
	buf[0] = kind
	binary.BigEndian.PutUint32(buf[1:headerSize], uint32(len(payload)))
	copy(buf[headerSize:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one frame whose payload is at most limit bytes. It
// returns io.EOF only at a clean end between frames.
func ReadFrame(r io.Reader, limit int) (kind byte, payload []byte, err error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("agent: truncated frame header: %w", err)
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if uint64(n) > uint64(limit) {
		return 0, nil, fmt.Errorf("%w: %d bytes, at most %d", errFrameTooLarge, n, limit)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, fmt.Errorf("agent: truncated frame: %w", err)
	}
	return h[0], payload, nil
}
