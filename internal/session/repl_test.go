package session

import (
	"strings"
	"testing"
)

// TestCutter: a cell's output is cut at the end marker wherever the
// stream's pieces split it, and nothing of the marker reaches the cell.
func TestCutter(t *testing.T) {
	marker := []byte("\x1eRUNTIMED-CELL-END-abc")
	stream := "hello\x1e not the marker\n" + string(marker) + `{"status":"ok","result":"42"}` + "\nnext"
	for size := 1; size <= len(stream); size++ {
		var c cutter
		var got strings.Builder
		var status string
		ended := false
		for i := 0; i < len(stream) && !ended; i += size {
			piece := stream[i:min(i+size, len(stream))]
			data, st, done := c.feed([]byte(piece), marker, true)
			got.Write(data)
			if done {
				ended, status = true, string(st)
			}
		}
		if !ended || got.String() != "hello\x1e not the marker\n" || status != `{"status":"ok","result":"42"}` {
			t.Fatalf("pieces of %d: ended %v, cell %q, status %q", size, ended, got.String(), status)
		}
		if string(c.pending) != "next"[:len(c.pending)] {
			t.Fatalf("pieces of %d: left %q", size, c.pending)
		}
	}
	// Without a marker everything but a possible start of one is given.
	var c cutter
	data, _, done := c.feed([]byte("abc\x1eRUNT"), marker, false)
	if done || string(data) != "abc" || string(c.pending) != "\x1eRUNT" {
		t.Fatalf("%q %v %q", data, done, c.pending)
	}
	data, _, done = c.feed([]byte("IME"), marker, false)
	if done || string(data) != "" {
		t.Fatalf("%q %v", data, done)
	}
	data, _, done = c.feed([]byte("X"), marker, false)
	if done || string(data) != "\x1eRUNTIMEX" {
		t.Fatalf("a false start: %q %v", data, done)
	}
}
