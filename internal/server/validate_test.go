package server

import (
	"math"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/pkg/api"
)

func TestValidateFileName(t *testing.T) {
	good := []string{"main.py", "lib/util.py", "a/b/c/d.js", "naïve.py", "日本.py", ".hidden", "x..y", "a-b.c", "lib/-x.c", "a@b.c", "d/@x.c"}
	bad := []string{"", "/etc/passwd", "../x", "a/../../x", "a/./b", "./a", "a//b", "a/", "a\x00b", "a\nb", `a\b`,
		strings.Repeat("n", 256), "a/b/c/d/e/f/g/h/i", string([]byte{0xff, 0xfe}), ".runtimed", ".runtimed/main",
		"-specs=d/x.c", "-", "--help.c", "@args", "@x.java", "-o/x.c"}
	for _, n := range good {
		if err := validateFileName(n); err != nil {
			t.Errorf("%q refused: %v", n, err)
		}
	}
	for _, n := range bad {
		if err := validateFileName(n); err == nil {
			t.Errorf("%q accepted", n)
		}
	}
	// The refusal names the file and what is wrong with it.
	for name, want := range map[string]string{
		"-specs=d/x.c": `file name "-specs=d/x.c" starts with '-'`,
		"@args":        `file name "@args" starts with '@'`,
	} {
		if err := validateFileName(name); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: %v, want %s…", name, err, want)
		}
	}
}

func TestResolveLimits(t *testing.T) {
	def, maximum := config.Default().Defaults, config.Default().Maximums
	tests := []struct {
		name  string
		req   api.Limits
		want  api.Limits
		field string
	}{
		{"defaults", api.Limits{}, api.Limits{MemoryBytes: 128 << 20, CPU: 0.5, WallTimeMS: 5000, CPUTimeMS: 5000, Pids: 64, OutputBytes: 64 << 10}, ""},
		{"at the maximum", maximum,
			maximum, ""},
		{"memory over", api.Limits{MemoryBytes: maximum.MemoryBytes + 1}, api.Limits{}, "limits.memory_bytes"},
		{"cpu over", api.Limits{CPU: maximum.CPU + 0.001}, api.Limits{}, "limits.cpu"},
		{"wall over", api.Limits{WallTimeMS: maximum.WallTimeMS + 1}, api.Limits{}, "limits.wall_time_ms"},
		{"cpu time over", api.Limits{CPUTimeMS: maximum.CPUTimeMS + 1}, api.Limits{}, "limits.cpu_time_ms"},
		{"cpu time too small", api.Limits{CPUTimeMS: 5}, api.Limits{}, "limits.cpu_time_ms"},
		{"pids over", api.Limits{Pids: maximum.Pids + 1}, api.Limits{}, "limits.pids"},
		{"output over", api.Limits{OutputBytes: maximum.OutputBytes + 1}, api.Limits{}, "limits.output_bytes"},
		{"negative memory", api.Limits{MemoryBytes: -1}, api.Limits{}, "limits.memory_bytes"},
		{"negative cpu", api.Limits{CPU: -0.5}, api.Limits{}, "limits.cpu"},
		{"memory too small", api.Limits{MemoryBytes: 1024}, api.Limits{}, "limits.memory_bytes"},
		{"at the minimum", api.MinLimits(), api.MinLimits(), ""},
		{"memory below the minimum", api.Limits{MemoryBytes: api.MinLimits().MemoryBytes - 1}, api.Limits{}, "limits.memory_bytes"},
		{"cpu below the minimum", api.Limits{CPU: api.MinLimits().CPU / 2}, api.Limits{}, "limits.cpu"},
		{"wall time below the minimum", api.Limits{WallTimeMS: api.MinLimits().WallTimeMS - 1}, api.Limits{}, "limits.wall_time_ms"},
		{"NaN cpu", api.Limits{CPU: math.NaN()}, api.Limits{}, "limits.cpu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveLimits("limits", tt.req, def, maximum)
			if tt.field != "" {
				if err == nil || err.Field != tt.field {
					t.Fatalf("error %v, want one naming %s", err, tt.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The messages give the values as numbers, the minimum of a byte count
// in MiB as well.
func TestResolveLimitsMessages(t *testing.T) {
	def, maximum := config.Default().Defaults, config.Default().Maximums
	for _, c := range []struct {
		req  api.Limits
		want string
	}{
		{api.Limits{MemoryBytes: 100 << 30}, "limits.memory_bytes = 107374182400 (100 GiB) exceeds the maximum of 536870912 (512 MiB)"},
		{api.Limits{MemoryBytes: 1 << 20}, "limits.memory_bytes must be at least 33554432 (32 MiB)"},
		{api.Limits{CPU: 0.01}, "limits.cpu must be at least 0.05"},
		{api.Limits{CPU: 2.5}, "limits.cpu = 2.5 exceeds the maximum of 2"},
		{api.Limits{Pids: -1}, "limits.pids must be a positive number"},
	} {
		_, err := ResolveLimits("limits", c.req, def, maximum)
		if err == nil || err.Message != c.want {
			t.Errorf("%+v: %v, want %q", c.req, err, c.want)
		}
	}
}
