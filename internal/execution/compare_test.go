package execution

import (
	"testing"

	"github.com/runtimed/runtimed/pkg/api"
)

func TestEqual(t *testing.T) {
	tests := []struct {
		got, want string
		mode      api.Compare
		equal     bool
	}{
		{"1 2\n", "1 2\n", api.CompareExact, true},
		{"1 2\n", "1 2", api.CompareExact, false},
		{"1 2  \n3\n\n\n", "1 2\n3", api.CompareTrim, true},
		{"1 2\r\n3\r\n", "1 2\n3\n", "", true},
		{"1  2\n", "1 2\n", api.CompareTrim, false},
		{" 1 2\n", "1 2\n", api.CompareTrim, false},
		{"1\n\n2\n", "1\n2\n", api.CompareTrim, false},
		{"1  2\n\n3 ", "1 2 3", api.CompareTokens, true},
		{"1 2", "1 2 3", api.CompareTokens, false},
		{"", "", api.CompareTokens, true},
		{"12", "1 2", api.CompareTokens, false},
	}
	for _, tt := range tests {
		if got := equal(tt.got, tt.want, tt.mode); got != tt.equal {
			t.Errorf("Equal(%q, %q, %q) = %v", tt.got, tt.want, tt.mode, got)
		}
	}
}
