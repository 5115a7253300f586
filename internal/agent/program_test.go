package agent

import (
	"os"
	"strings"
	"testing"
)

// The test binary stands in for runtimed-init: run with ExecProgramArg
// (by startProgram, through os.Executable), it is the exec-program mode.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == ExecProgramArg {
		err := ExecProgram(os.Args[2:])
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(127)
	}
	os.Exit(m.Run())
}

// With a program limit, the program gets it as RLIMIT_NPROC, soft and
// hard, and the agent keeps its own; its stdio, environment and
// directory are as without.
func TestProgramNproc(t *testing.T) {
	t.Setenv(ProgramNprocEnv, "3")
	x := sh(`awk '/^Max processes/ { print $3, $4 }' /proc/self/limits; echo "$A" >&2; pwd; cat`)
	x.Env = append(x.Env, "A=env")
	x.Dir = t.TempDir()
	o := start(t).exec(t, x, "in\n")
	if want := "3 3\n" + x.Dir + "\nin\n"; o.stdout.String() != want || o.stderr.String() != "env\n" || o.exit.Code != 0 || o.exit.Error != "" {
		t.Fatalf("stdout %q (want %q), stderr %q, exit %+v", o.stdout.String(), want, o.stderr.String(), o.exit)
	}
}

// A program that cannot be executed is the agent's error, as it is
// without a program limit, not an exit of the program's.
func TestProgramNprocExecFails(t *testing.T) {
	t.Setenv(ProgramNprocEnv, "3")
	x := Exec{Args: []string{"/nonexistent/interpreter"}, Env: []string{"PATH=/usr/bin:/bin"}}
	o := start(t).exec(t, x, "")
	if !strings.Contains(o.exit.Error, "/nonexistent/interpreter: no such file or directory") {
		t.Fatalf("exit %+v, stderr %q", o.exit, o.stderr.String())
	}
	t.Setenv(ProgramNprocEnv, "many")
	o = start(t).exec(t, sh("true"), "")
	if !strings.Contains(o.exit.Error, ProgramNprocEnv) {
		t.Fatalf("a bad limit: exit %+v", o.exit)
	}
}
