package execution

import (
	"strings"

	"github.com/runtimed/runtimed/pkg/api"
)

// equal compares a program's output with the expected output the way
// mode says; an empty mode is CompareTrim.
func equal(got, want string, mode api.Compare) bool {
	switch mode {
	case api.CompareExact:
		return got == want
	case api.CompareTokens:
		g, w := strings.Fields(got), strings.Fields(want)
		if len(g) != len(w) {
			return false
		}
		for i := range g {
			if g[i] != w[i] {
				return false
			}
		}
		return true
	default:
		return trim(got) == trim(want)
	}
}

// trim drops the trailing whitespace of each line and the empty lines at
// the end; \r\n counts as \n.
func trim(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r\v\f")
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return strings.Join(lines, "\n")
}
