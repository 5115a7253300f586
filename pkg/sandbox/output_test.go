package sandbox

import (
	"strings"
	"testing"
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
