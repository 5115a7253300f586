package sandbox

import (
	"fmt"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
)

// outcome is what happened to a program, before any judgement: how it
// ended, whether runtimed stopped it and why, what it used and wrote.
type outcome struct {
	// reported: the agent reported the program's end; exitCode and
	// signal are the program's. If not, the sandbox ended without the
	// report (killed by runtimed, or its kernel died): exitCode and
	// signal are made from the sandbox's exit status.
	reported bool
	exitCode int
	signal   string // a signal's name, "" if none
	// sandboxStatus and agentSaid are the sandbox's exit status and its
	// agent's stderr when it ended without the report.
	sandboxStatus uint32
	agentSaid     string

	why        killReason
	byDeadline bool // the wall time limit was the request's deadline
	elapsed    time.Duration
	use        usage

	stdout, stderr, output           string
	stdoutTruncated, stderrTruncated bool
}

// result is the stage's result without its verdict.
func (o outcome) result() api.StageResult {
	return api.StageResult{
		ExitCode:        o.exitCode,
		Signal:          o.signal,
		Stdout:          o.stdout,
		Stderr:          o.stderr,
		Output:          o.output,
		StdoutTruncated: o.stdoutTruncated,
		StderrTruncated: o.stderrTruncated,
		WallTimeMS:      o.elapsed.Milliseconds(),
		CPUTimeMS:       o.use.CPUTimeNS / int64(time.Millisecond),
		MemoryBytes:     o.use.PeakMemoryBytes,
	}
}

// verdict decides the status of a program that ran under limits, and
// its message. outOfMemory, if not nil, recognises the language's own
// out-of-memory messages in the program's output. An error means the
// platform failed: the sandbox died with no sign of why.
//
// When several apply, the first of these wins:
//
//  1. timeout: the request's deadline stopped the program;
//  2. timeout: its wall time limit stopped it;
//  3. timeout: it was stopped at, or used more than, its CPU time limit
//     (one that ended before the watch saw it is timed out all the same);
//  4. output_limit: it was stopped at the output limit, or a stream was cut;
//  5. memory_limit: the cgroup's evidence, a kill by the kernel's OOM
//     killer, or a failed exit after allocations failed at the limit with
//     the peak within 5% of it;
//  6. an error: the sandbox ended without its agent's report and none of
//     the above explains it;
//  7. memory_limit: a failed exit with the language's out-of-memory
//     message on stderr or stdout;
//  8. runtime_error: a non-zero exit code ("killed by SIG…" if a signal
//     killed it);
//  9. ok.
//
// A limit runtimed enforced comes before what the program did after it,
// so a program killed at its time limit is a timeout even if the kill
// shows as a failed allocation.
func verdict(o outcome, limits api.Limits, outOfMemory func(string) bool) (api.Status, string, error) {
	cpuLimit := time.Duration(limits.CPUTimeMS) * time.Millisecond
	failed := o.exitCode != 0
	memoryEvidence := o.use.OOMKills > 0 ||
		(failed && o.use.MemoryLimitHits > 0 && o.use.PeakMemoryBytes >= limits.MemoryBytes*95/100)
	switch {
	case o.why == killedTimeout && o.byDeadline:
		return api.StatusTimeout, fmt.Sprintf("stopped after %d ms: the request's deadline was reached", o.elapsed.Milliseconds()), nil
	case o.why == killedTimeout:
		return api.StatusTimeout, fmt.Sprintf("wall time limit of %s exceeded", api.FormatMS(limits.WallTimeMS)), nil
	case o.why == killedCPUTime || (cpuLimit > 0 && time.Duration(o.use.CPUTimeNS) > cpuLimit):
		return api.StatusTimeout, fmt.Sprintf("CPU time limit of %s exceeded", api.FormatMS(limits.CPUTimeMS)), nil
	case o.why == killedOutput || o.stdoutTruncated || o.stderrTruncated:
		stream := "stdout"
		if !o.stdoutTruncated {
			stream = "stderr"
		}
		return api.StatusOutputLimit, fmt.Sprintf("%s exceeded the output limit of %s", stream, api.FormatBytes(limits.OutputBytes)), nil
	case memoryEvidence:
		// The kernel's OOM killer acted in the sandbox's cgroup; or the
		// cgroup reached its limit and the program (or gVisor's own
		// allocation on its behalf) failed of it.
		return api.StatusMemoryLimit, memoryLimitMessage(limits.MemoryBytes), nil
	case !o.reported:
		return "", "", fmt.Errorf("sandbox died (exit status %d) without an out-of-memory kill: %q", o.sandboxStatus, o.agentSaid)
	case failed && outOfMemory != nil && (outOfMemory(o.stderr) || outOfMemory(o.stdout)):
		// The runtime failed an allocation of its own accord (a heap
		// limit of its own, below the cgroup's) and said so.
		return api.StatusMemoryLimit, memoryLimitMessage(limits.MemoryBytes), nil
	case failed && o.signal != "":
		return api.StatusRuntimeError, "killed by " + o.signal, nil
	case failed:
		return api.StatusRuntimeError, fmt.Sprintf("exited with status %d", o.exitCode), nil
	default:
		return api.StatusOK, "", nil
	}
}

// memoryLimitMessage is the message of a memory_limit verdict.
func memoryLimitMessage(limit int64) string {
	return fmt.Sprintf("memory limit of %s exceeded", api.FormatBytes(limit))
}
