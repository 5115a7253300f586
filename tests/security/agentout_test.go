//go:build integration

package security

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/runtimed/runtimed/pkg/api"
)

// TestOutputCutOnACharacter: output past the cap is cut on a character
// boundary, so the JSON string holds no half character turned U+FFFD and
// stays within the cap.
func TestOutputCutOnACharacter(t *testing.T) {
	for _, tc := range []struct{ name, first, char string }{
		{"2-byte", "a", "é"},
		{"3-byte", "ab", "€"},
		{"4-byte", "abc", "😀"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const limit = 64 << 10
			want := tc.first + strings.Repeat(tc.char, 2*limit/len(tc.char))
			code := "import sys\nsys.stdout.buffer.write(('" + tc.first + "' + '" + tc.char + "' * " + strconv.Itoa(2*limit/len(tc.char)) + ").encode())\n"
			resp := hostile(t, &api.RunRequest{Language: "python", Files: py("chars", code)})
			statusIn(t, resp, api.StatusOutputLimit)
			out := resp.Run.Stdout
			if !resp.Run.StdoutTruncated || !utf8.ValidString(out) || len(out) > limit || len(out) <= limit-len(tc.char) ||
				!strings.HasPrefix(want, out) || strings.HasSuffix(out, "\uFFFD") {
				t.Fatalf("stdout of %d bytes, truncated %v, valid %v, ends with %q", len(out), resp.Run.StdoutTruncated, utf8.ValidString(out), out[max(0, len(out)-8):])
			}
		})
	}
}
