package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Without a terminal the progress lines pass unchanged; on one, each line
// clears the bar, and the bar under it says how many images are done.
func TestBuildStatus(t *testing.T) {
	var plain bytes.Buffer
	s := &buildStatus{err: &plain, total: 4, start: time.Now(), stop: make(chan struct{})}
	if _, err := s.Write([]byte("python: install (2s)\n")); err != nil {
		t.Fatal(err)
	}
	s.imageDone()
	s.close()
	if plain.String() != "python: install (2s)\n" {
		t.Fatalf("without a terminal: %q", plain.String())
	}

	var tty, out bytes.Buffer
	s = &buildStatus{err: &tty, total: 4, start: time.Now(), stop: make(chan struct{}), tty: true}
	s.imageDone()
	s.imageDone()
	s.print(&out, "c: built\n")
	if out.String() != "c: built\n" {
		t.Fatalf("the line: %q", out.String())
	}
	got := tty.String()
	if !strings.Contains(got, "[===============               ] 2/4 images") || !strings.HasSuffix(got[:strings.LastIndex(got, "[")], "\r\033[K") {
		t.Fatalf("the bar: %q", got)
	}
	s.close()
	if !strings.HasSuffix(tty.String(), "\r\033[K") {
		t.Fatalf("the bar is not cleared at the end: %q", tty.String())
	}
}
