// Package fakeshim starts, for tests, a process that looks like a
// containerd shim to whoever reads its command line: runtimed's cleanup
// of shims that outlived their sandboxes is tested against it.
package fakeshim

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// script sleeps until SIGTERM, then ends its sleep and dies of that
// SIGTERM itself, so that nothing of it stays behind.
const script = `trap 'kill $! 2>/dev/null; trap - TERM; kill -TERM $$' TERM; sleep 300 & wait`

// stubborn ignores SIGTERM, as a shim whose start containerd cut off
// does; once killed, its last sleep ends within a second.
const stubborn = `trap '' TERM; while :; do sleep 1; done`

// Start starts a bash named containerd-shim-runc-v2 with the flags of the
// shim of sandbox id in namespace, for the containerd at address. done
// delivers the process's Wait result.
func Start(address, namespace, id string) (cmd *exec.Cmd, done <-chan error, err error) {
	return start(script, address, namespace, id)
}

// StartStubborn is Start for a shim that ignores SIGTERM.
func StartStubborn(address, namespace, id string) (cmd *exec.Cmd, done <-chan error, err error) {
	return start(stubborn, address, namespace, id)
}

func start(script, address, namespace, id string) (cmd *exec.Cmd, done <-chan error, err error) {
	cmd = exec.Command("bash", "-c", `exec -a containerd-shim-runc-v2 bash -c "$1" -namespace "$2" -id "$3" -address "$4"`,
		"bash", script, namespace, id, address)
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	ch := make(chan error, 1)
	go func() { ch <- cmd.Wait() }()
	return cmd, ch, nil
}

// EndsBySIGTERM waits up to d for the process Start's done reports on to
// end, and says why, unless it died of SIGTERM.
func EndsBySIGTERM(done <-chan error, d time.Duration) error {
	return endsBy(syscall.SIGTERM, done, d)
}

// EndsBySIGKILL is EndsBySIGTERM for SIGKILL.
func EndsBySIGKILL(done <-chan error, d time.Duration) error {
	return endsBy(syscall.SIGKILL, done, d)
}

func endsBy(sig syscall.Signal, done <-chan error, d time.Duration) error {
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signal() == sig {
				return nil
			}
		}
		return fmt.Errorf("it ended with %v, not by %v", err, sig) //nolint:errorlint // err may be nil
	case <-time.After(d):
		return fmt.Errorf("it still runs after %s", d)
	}
}
