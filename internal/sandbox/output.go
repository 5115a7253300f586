package sandbox

import (
	"bytes"
	"sync"
	"unicode/utf8"
)

// cappedBuffer keeps the first max bytes written to it and swallows the
// rest, so the copy from the sandbox never blocks; the first byte past the
// cap calls onOverflow once.
//
// The cut at the cap falls on a UTF-8 character boundary: output is
// returned as a JSON string, where half a character would become U+FFFD
// and take the string past the cap. Frames split characters anywhere, so
// an unfinished character at the end of what was written is held back
// until the next write completes it (or the cut drops it); keep hands out
// whole characters only, which keeps the interleaved output of two streams
// from splitting one.
type cappedBuffer struct {
	mu         sync.Mutex
	buf        bytes.Buffer
	pending    []byte // an unfinished character at the end, not yet kept
	max        int
	truncated  bool
	onOverflow func()
	// discard: what is kept is counted (n), not held.
	discard bool
	n       int
}

func newCappedBuffer(limit int64, onOverflow func()) *cappedBuffer {
	return &cappedBuffer{max: int(limit), onOverflow: onOverflow}
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.keep(p)
	return len(p), nil
}

// keep writes p and returns the bytes it adds to what is kept: those of p,
// after the unfinished character the last write ended with, if any, and
// without the one p ends with.
func (c *cappedBuffer) keep(p []byte) []byte {
	c.mu.Lock()
	if c.truncated {
		c.mu.Unlock()
		return nil
	}
	data := p
	if len(c.pending) > 0 {
		data = append(c.pending, p...)
		c.pending = nil
	}
	// The pending bytes were within the cap when they came: room is never
	// less than their length.
	room := c.max - c.n
	overflow := len(data) > room
	var kept []byte
	if overflow {
		kept = data[:wholeCharacters(data[:room])]
		c.truncated = true
	} else {
		kept = data[:wholeCharacters(data)]
		c.pending = append([]byte(nil), data[len(kept):]...)
	}
	c.n += len(kept)
	if !c.discard {
		c.buf.Write(kept)
	}
	c.mu.Unlock()
	if overflow && c.onOverflow != nil {
		c.onOverflow()
	}
	return kept
}

// end keeps the unfinished character the stream ended with, as it is (it
// becomes U+FFFD in JSON), and returns it.
func (c *cappedBuffer) end() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	rest := c.pending
	c.pending = nil
	c.n += len(rest)
	if !c.discard {
		c.buf.Write(rest)
	}
	return rest
}

// result returns what was kept, with an unfinished character at its end if
// the stream was not cut, and whether anything was cut.
func (c *cappedBuffer) result() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String() + string(c.pending), c.truncated
}

// wholeCharacters returns the length of b without the unfinished UTF-8
// character at its end: a lead byte followed by fewer continuation bytes
// than it announces. Bytes that can never be part of a character (a stray
// continuation byte, an invalid lead byte) count as whole: each is one
// U+FFFD.
func wholeCharacters(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(b[i]) {
			if b[i] >= 0xC0 && !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}
