// runtimed-init is the first process of every runtimed sandbox. runtimed
// mounts it read-only into the sandbox and speaks with it over the
// sandbox's stdin and stdout (see package agent). It is not meant to be
// run by hand.
//
// Run as "runtimed-init exec-program NPROC PATH ARGV...", by the agent
// itself, it is the program's first process for a moment: it takes the
// program's own RLIMIT_NPROC and execs the program (agent.ExecProgram).
// Run as "runtimed-init empty-dir DIR...", as the sandbox user, it
// empties the sandbox's /tmp, /dev/shm and /dev/mqueue between two
// programs (agent.EmptyDir).
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/runtimed/runtimed/internal/agent"
)

// init keeps the exec-program mode's main goroutine on the process's
// first thread, so that the exec is made by that thread. gVisor counts a
// task against RLIMIT_NPROC of the user that made it: the first thread
// was made by the agent, as root; the Go runtime's other threads are
// made after the program's user took over, as that user. A thread that
// execs takes over the process, and with it the count it was made with:
// from another thread, the program's first process would take one task
// of its own limit (seen about once in 25 runs).
func init() {
	if len(os.Args) > 1 && os.Args[1] == agent.ExecProgramArg {
		runtime.LockOSThread()
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == agent.ExecProgramArg {
		err := agent.ExecProgram(os.Args[2:])
		fmt.Fprintln(os.Stderr, "runtimed-init:", err)
		os.Exit(127)
	}
	if len(os.Args) > 2 && os.Args[1] == agent.EmptyDirArg {
		failed := false
		for _, dir := range os.Args[2:] {
			if err := agent.EmptyDir(dir); err != nil {
				fmt.Fprintln(os.Stderr, "runtimed-init:", err)
				failed = true
			}
		}
		if failed {
			os.Exit(1)
		}
		return
	}
	if err := agent.Serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "runtimed-init:", err)
		os.Exit(1)
	}
}
