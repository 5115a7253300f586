package sandbox

import (
	"bytes"
	"sync"
)

// cappedBuffer keeps the first max bytes written to it and swallows the
// rest, so the copy from the sandbox never blocks; the first byte past the
// cap calls onOverflow once.
type cappedBuffer struct {
	mu         sync.Mutex
	buf        bytes.Buffer
	max        int
	truncated  bool
	onOverflow func()
}

func newCappedBuffer(max int64, onOverflow func()) *cappedBuffer {
	return &cappedBuffer{max: int(max), onOverflow: onOverflow}
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.keep(p)
	return len(p), nil
}

// keep writes p and returns how many of its bytes were kept.
func (c *cappedBuffer) keep(p []byte) int {
	c.mu.Lock()
	room := c.max - c.buf.Len()
	overflow := len(p) > room
	kept := len(p)
	if overflow {
		kept = room
	}
	c.buf.Write(p[:kept])
	first := overflow && !c.truncated
	if overflow {
		c.truncated = true
	}
	c.mu.Unlock()
	if first && c.onOverflow != nil {
		c.onOverflow()
	}
	return kept
}

// result returns what was kept and whether anything was cut.
func (c *cappedBuffer) result() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String(), c.truncated
}
