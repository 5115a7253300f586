package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// buildStatus prints the builds' progress lines and, on a terminal, a
// progress bar under them: images done of all, and the time so far,
// redrawn after every line and every second.
type buildStatus struct {
	mu          sync.Mutex
	tty         bool
	err         io.Writer // the progress lines and the bar
	total, done int
	start       time.Time
	stop        chan struct{}
}

// newBuildStatus draws the bar if bar is set and stderr is a terminal.
func newBuildStatus(total int, bar bool) *buildStatus {
	s := &buildStatus{err: os.Stderr, total: total, start: time.Now(), stop: make(chan struct{}),
		tty: bar && term.IsTerminal(int(os.Stderr.Fd()))}
	if s.tty {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					s.mu.Lock()
					s.bar()
					s.mu.Unlock()
				case <-s.stop:
					return
				}
			}
		}()
	}
	return s
}

// Write takes a progress line (or lines).
func (s *buildStatus) Write(p []byte) (int, error) {
	s.print(s.err, string(p))
	return len(p), nil
}

// print writes text to w, above the bar.
func (s *buildStatus) print(w io.Writer, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tty {
		fmt.Fprint(s.err, "\r\033[K")
	}
	fmt.Fprint(w, text)
	s.bar()
}

// imageDone counts an image built (or failed).
func (s *buildStatus) imageDone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done++
	s.bar()
}

// close ends the bar.
func (s *buildStatus) close() {
	close(s.stop)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tty {
		fmt.Fprint(s.err, "\r\033[K")
		s.tty = false
	}
}

func (s *buildStatus) bar() {
	if !s.tty || s.total == 0 {
		return
	}
	const width = 30
	n := width * s.done / s.total
	fmt.Fprintf(s.err, "\r\033[K[%s%s] %d/%d images, %s", strings.Repeat("=", n), strings.Repeat(" ", width-n),
		s.done, s.total, time.Since(s.start).Round(time.Second))
}
