// runtimed-init is the first process of every runtimed sandbox. runtimed
// mounts it read-only into the sandbox and speaks with it over the
// sandbox's stdin and stdout (see package agent). It is not meant to be
// run by hand.
package main

import (
	"fmt"
	"os"

	"github.com/runtimed/runtimed/pkg/agent"
)

func main() {
	if err := agent.Serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "runtimed-init:", err)
		os.Exit(1)
	}
}
