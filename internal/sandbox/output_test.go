package sandbox

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCappedBufferKeepsExactlyTheCap(t *testing.T) {
	for _, tc := range []struct {
		name      string
		writes    []int
		wantLen   int
		truncated bool
	}{
		{"under", []int{10, 20}, 30, false},
		{"exactly", []int{60, 4}, 64, false},
		{"one over", []int{64, 1}, 64, true},
		{"one big write", []int{1000}, 64, true},
		{"many after", []int{50, 50, 50, 50}, 64, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			overflows := 0
			b := newCappedBuffer(64, func() { overflows++ })
			for _, n := range tc.writes {
				got, err := b.Write([]byte(strings.Repeat("x", n)))
				if err != nil || got != n {
					t.Fatalf("Write(%d) = %d, %v: the copy from the sandbox must never stall", n, got, err)
				}
			}
			out, truncated := b.result()
			if len(out) != tc.wantLen || truncated != tc.truncated {
				t.Fatalf("kept %d truncated %v, want %d %v", len(out), truncated, tc.wantLen, tc.truncated)
			}
			want := 0
			if tc.truncated {
				want = 1
			}
			if overflows != want {
				t.Fatalf("onOverflow called %d times, want %d", overflows, want)
			}
		})
	}
}

// write is one frame of a stream, as the agent relays it.
type write struct {
	stderr bool
	data   string
}

// relay feeds frames to a stdout and a stderr capped at limit and builds the
// interleaved output as Sandbox.Run does.
func relay(limit int64, frames []write) (stdout, stderr, combined string, outCut, errCut bool) {
	out := newCappedBuffer(limit, nil)
	errs := newCappedBuffer(limit, nil)
	var all []byte
	for _, f := range frames {
		b := out
		if f.stderr {
			b = errs
		}
		all = append(all, b.keep([]byte(f.data))...)
	}
	all = append(all, out.end()...)
	all = append(all, errs.end()...)
	stdout, outCut = out.result()
	stderr, errCut = errs.result()
	return stdout, stderr, string(all), outCut, errCut
}

func out(data ...string) []write {
	var w []write
	for _, d := range data {
		w = append(w, write{data: d})
	}
	return w
}

func TestCappedBufferCutsOnACharacterBoundary(t *testing.T) {
	for _, tc := range []struct {
		name      string
		max       int64
		frames    []write
		want      string
		truncated bool
	}{
		{"inside a 2-byte character", 4, out("aéé"), "aé", true},
		{"after a 2-byte character", 3, out("aéé"), "aé", true},
		{"inside a 3-byte character, 1 byte in", 6, out("ab€€"), "ab€", true},
		{"inside a 3-byte character, 2 bytes in", 7, out("ab€€"), "ab€", true},
		{"inside a 4-byte character, 1 byte in", 5, out("😀😀"), "😀", true},
		{"inside a 4-byte character, 3 bytes in", 7, out("😀😀"), "😀", true},
		{"a 4-byte character exactly at the cap", 8, out("😀😀"), "😀😀", false},
		{"at a frame boundary", 3, out("aé", "é"), "aé", true},
		{"a character split by frames, cut in the next frame", 4, out("a\xc3", "\xa9\xc3\xa9"), "aé", true},
		{"a character split by frames and by the cut", 3, out("ab\xe2", "\x82\xac"), "ab", true},
		{"a character split in three frames, cut in the last", 5, out("ab\xf0", "\x9f", "\x98\x80"), "ab", true},
		{"a character split by frames, not cut", 10, out("a\xe2\x82", "\xac", "b"), "a€b", false},
		{"cap smaller than a 2-byte character", 1, out("é"), "", true},
		{"cap smaller than a 4-byte character", 3, out("😀"), "", true},
		{"invalid bytes at the cut are whole", 3, out("a\xff\xfeb"), "a\xff\xfe", true},
		{"stray continuation bytes at the cut are whole", 3, out("a\xa9\xa9b"), "a\xa9\xa9", true},
		{"an invalid lead byte at the cut is whole", 2, out("a\xc0b"), "a\xc0", true},
		{"invalid bytes before the cut are kept", 5, out("\xff\xc3(éé"), "\xff\xc3(é", true},
		{"an unfinished character at the end of the stream is kept", 10, out("ab\xc3"), "ab\xc3", false},
		{"an unfinished character followed by ASCII is kept", 10, out("a\xc3", "b"), "a\xc3b", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, _, combined, truncated, _ := relay(tc.max, tc.frames)
			if stdout != tc.want || truncated != tc.truncated {
				t.Fatalf("kept %q truncated %v, want %q %v", stdout, truncated, tc.want, tc.truncated)
			}
			if combined != stdout {
				t.Fatalf("combined %q, stdout %q", combined, stdout)
			}
		})
	}
}

func TestCombinedOutputKeepsCharactersWhole(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		max                      int64
		frames                   []write
		stdout, stderr, combined string
	}{
		{"a stderr frame between the halves of a character", 10,
			[]write{{data: "a\xc3"}, {stderr: true, data: "x"}, {data: "\xa9b"}}, "aéb", "x", "axéb"},
		{"the cut drops a half that came before a stderr frame", 2,
			[]write{{data: "a\xc3"}, {stderr: true, data: "x"}, {data: "\xa9b"}}, "a", "x", "ax"},
		{"both streams end unfinished", 10,
			[]write{{data: "a\xc3"}, {stderr: true, data: "x\xe2\x82"}}, "a\xc3", "x\xe2\x82", "ax\xc3\xe2\x82"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, combined, _, _ := relay(tc.max, tc.frames)
			if stdout != tc.stdout || stderr != tc.stderr || combined != tc.combined {
				t.Fatalf("stdout %q stderr %q combined %q, want %q %q %q", stdout, stderr, combined, tc.stdout, tc.stderr, tc.combined)
			}
		})
	}
}

// TestCappedBufferAnyCutAnySplit cuts valid UTF-8 at every cap, split into
// frames of every size: what is kept is a prefix of it, valid, within the
// cap and short of it by less than one character.
func TestCappedBufferAnyCutAnySplit(t *testing.T) {
	text := "aé€😀b" + strings.Repeat("é€😀", 3)
	for limit := 0; limit <= len(text)+1; limit++ {
		for size := 1; size <= 5; size++ {
			var frames []write
			for i := 0; i < len(text); i += size {
				frames = append(frames, write{data: text[i:min(i+size, len(text))]})
			}
			kept, _, _, truncated, _ := relay(int64(limit), frames)
			if !strings.HasPrefix(text, kept) || !utf8.ValidString(kept) || len(kept) > limit ||
				(truncated && len(kept) <= limit-utf8.UTFMax) || truncated != (len(text) > limit) {
				t.Fatalf("cap %d, frames of %d: kept %q (%d bytes) truncated %v", limit, size, kept, len(kept), truncated)
			}
		}
	}
}
