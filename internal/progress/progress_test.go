package progress

import (
	"bytes"
	"strings"
	"testing"
)

// Without a terminal the progress lines pass unchanged; on one, each line
// clears the bar, and the bar under it says how many images are done.
func TestBar(t *testing.T) {
	var plain bytes.Buffer
	b := New(&plain, 4, false)
	if _, err := b.Write([]byte("python: install (2s)\n")); err != nil {
		t.Fatal(err)
	}
	b.Done()
	b.Close()
	if plain.String() != "python: install (2s)\n" {
		t.Fatalf("without a terminal: %q", plain.String())
	}
	if IsTerminal(&plain) {
		t.Fatal("a buffer is a terminal")
	}

	var tty, out bytes.Buffer
	b = New(&tty, 4, true)
	b.Done()
	b.Done()
	b.Print(&out, "c: built\n")
	if out.String() != "c: built\n" {
		t.Fatalf("the line: %q", out.String())
	}
	got := tty.String()
	if !strings.Contains(got, "[===============               ] 2/4 images") || !strings.HasSuffix(got[:strings.LastIndex(got, "[")], "\r\033[K") {
		t.Fatalf("the bar: %q", got)
	}
	b.Close()
	if !strings.HasSuffix(tty.String(), "\r\033[K") {
		t.Fatalf("the bar is not cleared at the end: %q", tty.String())
	}
}
