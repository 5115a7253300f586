package api

import (
	"strconv"
	"strings"
)

// Limits bounds one stage of an execution. A zero field means "the
// configured default"; a field above the configured maximum is refused,
// and so is one below MinLimits. The configuration's defaults and
// maximums are Limits too (config.Limits), under the same keys in TOML.
type Limits struct {
	MemoryBytes int64   `json:"memory_bytes,omitempty" toml:"memory_bytes"`
	CPU         float64 `json:"cpu,omitempty" toml:"cpu"`
	WallTimeMS  int64   `json:"wall_time_ms,omitempty" toml:"wall_time_ms"`
	// CPUTimeMS bounds the CPU time the sandbox spends on the program
	// (all its processes and gVisor's work for them).
	CPUTimeMS   int64 `json:"cpu_time_ms,omitempty" toml:"cpu_time_ms"`
	Pids        int64 `json:"pids,omitempty" toml:"pids"`
	OutputBytes int64 `json:"output_bytes,omitempty" toml:"output_bytes"`
}

// MinLimits are the smallest limits a stage may have: at them a sandbox
// starts, runtimed-init serves it, and a hello in Python or C runs to a
// verdict (tests/integration TestMinimumLimits). Below them runsc, the
// agent or the language's runtime fails before the program is judged,
// which would be a 500 rather than a verdict, or a sandbox takes too long
// to start to be of use; so a request asking for less is a 400, and a
// configuration holding less does not load.
//
//   - memory_bytes: runsc cannot create a sandbox in 16 MiB; in 18 MiB
//     Python is killed for memory before it prints. A hello peaks at
//     about 22 MiB (the sandbox's own 16 or so included).
//   - cpu: the sandbox's start-up runs under the quota too: at 0.01 CPU
//     a hello takes 20 to 30 s (Python times out), at 0.02 about 14 s,
//     at 0.05 about 4 s.
//   - wall_time_ms, cpu_time_ms: less than a hello needs is a timeout
//     verdict, which is what was asked for.
//   - pids: the program's own tasks, its first process included;
//     runtimed-init's do not count against them.
//   - output_bytes: a byte is enough to be cut at.
func MinLimits() Limits {
	return Limits{
		MemoryBytes: 32 << 20,
		CPU:         0.05,
		WallTimeMS:  100,
		CPUTimeMS:   10,
		Pids:        1,
		OutputBytes: 1,
	}
}

// LimitField is one field of Limits, for the code that walks them all:
// filling defaults, checking minimums and maximums.
type LimitField struct {
	// Name is the field's key in JSON and TOML.
	Name string
	// Exactly one of these points at the field.
	integer  func(*Limits) *int64
	fraction func(*Limits) *float64
}

// LimitFields are the fields of Limits in their declaration order.
func LimitFields() []LimitField {
	return []LimitField{
		{Name: "memory_bytes", integer: func(l *Limits) *int64 { return &l.MemoryBytes }},
		{Name: "cpu", fraction: func(l *Limits) *float64 { return &l.CPU }},
		{Name: "wall_time_ms", integer: func(l *Limits) *int64 { return &l.WallTimeMS }},
		{Name: "cpu_time_ms", integer: func(l *Limits) *int64 { return &l.CPUTimeMS }},
		{Name: "pids", integer: func(l *Limits) *int64 { return &l.Pids }},
		{Name: "output_bytes", integer: func(l *Limits) *int64 { return &l.OutputBytes }},
	}
}

// Value is the field's value in l, as a float64 to compare with others:
// exact for every value a limit can usefully have (below 2^53).
func (f LimitField) Value(l Limits) float64 {
	if f.integer != nil {
		return float64(*f.integer(&l))
	}
	return *f.fraction(&l)
}

// Less reports whether the field is smaller in a than in b, exactly.
func (f LimitField) Less(a, b Limits) bool {
	if f.integer != nil {
		return *f.integer(&a) < *f.integer(&b)
	}
	return *f.fraction(&a) < *f.fraction(&b)
}

// Copy sets the field of dst to its value in src.
func (f LimitField) Copy(dst *Limits, src Limits) {
	if f.integer != nil {
		*f.integer(dst) = *f.integer(&src)
		return
	}
	*f.fraction(dst) = *f.fraction(&src)
}

// Format writes the field's value in l as a number.
func (f LimitField) Format(l Limits) string {
	if f.fraction != nil {
		return strconv.FormatFloat(*f.fraction(&l), 'g', -1, 64)
	}
	return strconv.FormatInt(*f.integer(&l), 10)
}

// Describe is Format with a byte count given as people read it as
// well ("134217728 (128 MiB)"), for the messages that state a bound.
func (f LimitField) Describe(l Limits) string {
	s := f.Format(l)
	if v := int64(f.Value(l)); strings.HasSuffix(f.Name, "_bytes") && v >= 1<<10 {
		if h := FormatBytes(v); !strings.HasSuffix(h, " bytes") {
			s += " (" + h + ")"
		}
	}
	return s
}

// FormatBytes says n bytes as people read them: a whole number of GiB,
// MiB or KiB in that unit ("128 MiB"), else in bytes.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + " " + u.name
		}
	}
	if n == 1 {
		return "1 byte"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// FormatMS says a time in milliseconds as people read it: whole seconds
// in s ("5 s"), else in ms.
func FormatMS(ms int64) string {
	if ms >= 1000 && ms%1000 == 0 {
		return strconv.FormatInt(ms/1000, 10) + " s"
	}
	return strconv.FormatInt(ms, 10) + " ms"
}

// Over returns l with its zero fields taken from def.
func (l Limits) Over(def Limits) Limits {
	for _, f := range LimitFields() {
		if f.Value(l) != 0 {
			f.Copy(&def, l)
		}
	}
	return def
}
