package sandbox

import (
	"strings"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
)

func TestVerdict(t *testing.T) {
	const mib = 1 << 20
	limits := api.Limits{WallTimeMS: 2000, CPUTimeMS: 1000, MemoryBytes: 100 * mib, OutputBytes: 4096}
	pythonOOM := func(out string) bool { return strings.Contains(out, "MemoryError") }
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	// exited is a program that ended by itself with code, having used
	// half its CPU time.
	exited := func(code int) outcome {
		return outcome{reported: true, exitCode: code, elapsed: 300 * time.Millisecond, use: usage{CPUTimeNS: ms(500), PeakMemoryBytes: 10 * mib}}
	}
	// killed is a program runtimed stopped for why: the sandbox ended
	// without the agent's report.
	killed := func(why killReason) outcome {
		o := exited(137)
		o.reported, o.signal, o.sandboxStatus, o.why = false, "SIGKILL", 137, why
		return o
	}
	with := func(o outcome, change func(*outcome)) outcome { change(&o); return o }
	memoryLimit := "memory limit of 100 MiB exceeded"

	tests := []struct {
		name        string
		o           outcome
		outOfMemory func(string) bool
		noCPULimit  bool
		status      api.Status
		message     string
		err         string // a part of the error, if one is wanted
	}{
		{name: "ok", o: exited(0), status: api.StatusOK},
		{name: "runtime error with an exit code", o: exited(3), status: api.StatusRuntimeError, message: "exited with status 3"},
		{name: "killed by a signal", o: with(exited(139), func(o *outcome) { o.signal = "SIGSEGV" }),
			status: api.StatusRuntimeError, message: "killed by SIGSEGV"},
		{name: "a signal with a zero exit code is ok, as today", o: with(exited(0), func(o *outcome) { o.signal = "SIGTERM" }),
			status: api.StatusOK},

		{name: "wall timeout", o: killed(killedTimeout), status: api.StatusTimeout, message: "wall time limit of 2 s exceeded"},
		{name: "request deadline", o: with(killed(killedTimeout), func(o *outcome) { o.byDeadline, o.elapsed = true, 1234*time.Millisecond }),
			status: api.StatusTimeout, message: "stopped after 1234 ms: the request's deadline was reached"},
		{name: "CPU time, stopped by the watch", o: killed(killedCPUTime), status: api.StatusTimeout, message: "CPU time limit of 1 s exceeded"},
		{name: "CPU time, over the limit though it ended", o: with(exited(0), func(o *outcome) { o.use.CPUTimeNS = ms(1000) + 1 }),
			status: api.StatusTimeout, message: "CPU time limit of 1 s exceeded"},
		{name: "CPU time at the limit is not over it", o: with(exited(0), func(o *outcome) { o.use.CPUTimeNS = ms(1000) }),
			status: api.StatusOK},
		{name: "no CPU time limit", o: with(exited(0), func(o *outcome) { o.use.CPUTimeNS = ms(60000) }),
			noCPULimit: true, status: api.StatusOK},

		{name: "output limit on stdout", o: with(killed(killedOutput), func(o *outcome) { o.stdoutTruncated = true }),
			status: api.StatusOutputLimit, message: "stdout exceeded the output limit of 4 KiB"},
		{name: "output limit on stderr", o: with(killed(killedOutput), func(o *outcome) { o.stderrTruncated = true }),
			status: api.StatusOutputLimit, message: "stderr exceeded the output limit of 4 KiB"},
		{name: "output cut though the program ended", o: with(exited(0), func(o *outcome) { o.stdoutTruncated, o.stderrTruncated = true, true }),
			status: api.StatusOutputLimit, message: "stdout exceeded the output limit of 4 KiB"},

		{name: "memory: the OOM killer in the cgroup", o: with(exited(0), func(o *outcome) { o.use.OOMKills = 1 }),
			status: api.StatusMemoryLimit, message: memoryLimit},
		{name: "memory: the sandbox died of the OOM killer", o: with(killed(notKilled), func(o *outcome) { o.use.OOMKills = 2 }),
			status: api.StatusMemoryLimit, message: memoryLimit},
		{name: "memory: a failure at the limit", o: with(exited(1), func(o *outcome) { o.use.MemoryLimitHits, o.use.PeakMemoryBytes = 5, 95*mib }),
			status: api.StatusMemoryLimit, message: memoryLimit},
		{name: "memory: limit hits far below the limit are no evidence", o: with(exited(1), func(o *outcome) { o.use.MemoryLimitHits, o.use.PeakMemoryBytes = 5, 94*mib }),
			status: api.StatusRuntimeError, message: "exited with status 1"},
		{name: "memory: limit hits of a program that succeeded", o: with(exited(0), func(o *outcome) { o.use.MemoryLimitHits, o.use.PeakMemoryBytes = 5, 100*mib }),
			status: api.StatusOK},
		{name: "memory: the language's marker on stderr", o: with(exited(1), func(o *outcome) { o.stderr = "Traceback\nMemoryError\n" }),
			outOfMemory: pythonOOM, status: api.StatusMemoryLimit, message: memoryLimit},
		{name: "memory: the language's marker on stdout", o: with(exited(1), func(o *outcome) { o.stdout = "MemoryError" }),
			outOfMemory: pythonOOM, status: api.StatusMemoryLimit, message: memoryLimit},
		{name: "memory: a marker from a program that succeeded", o: with(exited(0), func(o *outcome) { o.stdout = "MemoryError" }),
			outOfMemory: pythonOOM, status: api.StatusOK},
		{name: "memory: a marker of a language without markers", o: with(exited(1), func(o *outcome) { o.stderr = "MemoryError" }),
			status: api.StatusRuntimeError, message: "exited with status 1"},

		{name: "the sandbox died with no evidence", o: with(killed(notKilled), func(o *outcome) { o.sandboxStatus, o.agentSaid = 255, "panic" }),
			err: `sandbox died (exit status 255) without an out-of-memory kill: "panic"`},

		// Precedence: the first that applies wins.
		{name: "deadline before wall, CPU, output and memory",
			o: with(killed(killedTimeout), func(o *outcome) {
				o.byDeadline, o.elapsed = true, 2*time.Second
				o.use.CPUTimeNS, o.stdoutTruncated, o.use.OOMKills = ms(5000), true, 1
			}),
			status: api.StatusTimeout, message: "stopped after 2000 ms: the request's deadline was reached"},
		{name: "wall before CPU, output and memory",
			o:      with(killed(killedTimeout), func(o *outcome) { o.use.CPUTimeNS, o.stdoutTruncated, o.use.OOMKills = ms(5000), true, 1 }),
			status: api.StatusTimeout, message: "wall time limit of 2 s exceeded"},
		{name: "CPU before output and memory",
			o:      with(killed(killedOutput), func(o *outcome) { o.use.CPUTimeNS, o.stdoutTruncated, o.use.OOMKills = ms(5000), true, 1 }),
			status: api.StatusTimeout, message: "CPU time limit of 1 s exceeded"},
		{name: "output before memory",
			o:      with(killed(killedOutput), func(o *outcome) { o.stderrTruncated, o.use.OOMKills = true, 1 }),
			status: api.StatusOutputLimit, message: "stderr exceeded the output limit of 4 KiB"},
		{name: "output before the language's marker",
			o: with(exited(1), func(o *outcome) { o.stderr, o.stderrTruncated = "MemoryError", true }), outOfMemory: pythonOOM,
			status: api.StatusOutputLimit, message: "stderr exceeded the output limit of 4 KiB"},
		{name: "the cgroup's evidence before a signal",
			o:      with(exited(137), func(o *outcome) { o.signal, o.use.OOMKills = "SIGKILL", 1 }),
			status: api.StatusMemoryLimit, message: memoryLimit},
		{name: "a dead sandbox before the language's marker",
			o: with(killed(notKilled), func(o *outcome) { o.stderr, o.sandboxStatus = "MemoryError", 1 }), outOfMemory: pythonOOM,
			err: "sandbox died (exit status 1)"},
		{name: "the language's marker before a signal",
			o: with(exited(134), func(o *outcome) { o.signal, o.stderr = "SIGABRT", "MemoryError" }), outOfMemory: pythonOOM,
			status: api.StatusMemoryLimit, message: memoryLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := limits
			if tt.noCPULimit {
				l.CPUTimeMS = 0
			}
			status, message, err := verdict(tt.o, l, tt.outOfMemory)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("verdict = %q %q, %v; want an error with %q", status, message, err, tt.err)
				}
				return
			}
			if err != nil || status != tt.status || message != tt.message {
				t.Fatalf("verdict = %q %q, %v; want %q %q", status, message, err, tt.status, tt.message)
			}
		})
	}
}

func TestOutcomeResult(t *testing.T) {
	o := outcome{
		reported: true, exitCode: 139, signal: "SIGSEGV",
		elapsed: 1500*time.Millisecond + 999*time.Microsecond,
		use:     usage{CPUTimeNS: 42*int64(time.Millisecond) + 999, PeakMemoryBytes: 1 << 20, MemoryBytes: 7},
		stdout:  "a", stderr: "b", output: "ab", stderrTruncated: true,
	}
	want := api.StageResult{
		ExitCode: 139, Signal: "SIGSEGV", Stdout: "a", Stderr: "b", Output: "ab", StderrTruncated: true,
		WallTimeMS: 1500, CPUTimeMS: 42, MemoryBytes: 1 << 20,
	}
	if got := o.result(); got != want {
		t.Fatalf("result = %+v\nwant %+v", got, want)
	}
}
