// Package progress draws the image builds' progress: their lines as they
// come and, on a terminal, a bar under them with the images done of all
// and the time so far.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Bar prints progress lines and, if drawn, a bar under them, redrawn
// after every line and every second.
type Bar struct {
	mu          sync.Mutex
	draw        bool
	term        io.Writer // the progress lines and the bar
	total, done int
	start       time.Time
	stop        chan struct{}
}

// New returns a bar for total images that writes to term, and draws the
// bar if draw is set.
func New(term io.Writer, total int, draw bool) *Bar {
	b := &Bar{term: term, total: total, start: time.Now(), stop: make(chan struct{}), draw: draw}
	if draw {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					b.mu.Lock()
					b.bar()
					b.mu.Unlock()
				case <-b.stop:
					return
				}
			}
		}()
	}
	return b
}

// IsTerminal reports whether w is a terminal, where a bar can be drawn.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Write takes a progress line (or lines).
func (b *Bar) Write(p []byte) (int, error) {
	b.Print(b.term, string(p))
	return len(p), nil
}

// Print writes text to w, above the bar.
func (b *Bar) Print(w io.Writer, text string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.draw {
		fmt.Fprint(b.term, "\r\033[K")
	}
	fmt.Fprint(w, text)
	b.bar()
}

// Done counts an image built (or failed).
func (b *Bar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done++
	b.bar()
}

// Close clears the bar; it is drawn no more.
func (b *Bar) Close() {
	close(b.stop)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.draw {
		fmt.Fprint(b.term, "\r\033[K")
		b.draw = false
	}
}

func (b *Bar) bar() {
	if !b.draw || b.total == 0 {
		return
	}
	const width = 30
	n := width * b.done / b.total
	fmt.Fprintf(b.term, "\r\033[K[%s%s] %d/%d images, %s", strings.Repeat("=", n), strings.Repeat(" ", width-n),
		b.done, b.total, time.Since(b.start).Round(time.Second))
}
