// runtimed-init is the first process of every runtimed sandbox. runtimed
// mounts it read-only into the sandbox and speaks with it over the
// sandbox's stdin and stdout (see package agent). It is not meant to be
// run by hand.
//
// Run as "runtimed-init exec-program NPROC PATH ARGV...", by the agent
// itself, it is the program's first process for a moment: it takes the
// program's own RLIMIT_NPROC and execs the program (agent.ExecProgram).
package main

import (
	"fmt"
	"os"

	"github.com/runtimed/runtimed/internal/agent"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == agent.ExecProgramArg {
		err := agent.ExecProgram(os.Args[2:])
		fmt.Fprintln(os.Stderr, "runtimed-init:", err)
		os.Exit(127)
	}
	if err := agent.Serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "runtimed-init:", err)
		os.Exit(1)
	}
}
