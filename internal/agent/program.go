package agent

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// The program's RLIMIT_NPROC is its own. gVisor checks the creator's
// limit at every task the agent makes, its own threads included, so where
// the program's limit is too small for those, the sandbox's spec gives
// runtimed-init a larger one and names the program's in ProgramNprocEnv
// (see pkg/oci WithResources). The agent then starts the program
// through runtimed-init itself, in its ExecProgramArg mode: already the
// sandbox user, it lowers RLIMIT_NPROC, soft and hard, to that limit
// (lowering needs no capability, raising it back would) and execs the
// program in its own place.
const (
	ProgramNprocEnv = "RUNTIMED_PROGRAM_NPROC"
	ExecProgramArg  = "exec-program"
)

// execErrorFD is the descriptor on which runtimed-init, in its exec-program
// mode, reports that it could not exec the program; it is closed on exec,
// so the agent reads end of file when the program started.
const execErrorFD = 3

// startProgram starts the program as os.StartProcess would, through
// runtimed-init's exec-program mode if the agent has a program limit to
// apply. It returns once the program is executing, or with the error
// that kept it from being executed.
func startProgram(path string, argv []string, attr *os.ProcAttr) (*os.Process, error) {
	nproc, ok := os.LookupEnv(ProgramNprocEnv)
	if !ok {
		return os.StartProcess(path, argv, attr)
	}
	if _, err := strconv.ParseUint(nproc, 10, 64); err != nil {
		return nil, fmt.Errorf("%s %q: %w", ProgramNprocEnv, nproc, err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer errR.Close()
	via := *attr
	via.Files = append(append([]*os.File(nil), attr.Files...), errW)
	if len(via.Files) != execErrorFD+1 {
		errW.Close()
		return nil, fmt.Errorf("the program gets %d descriptors, not %d", len(attr.Files), execErrorFD)
	}
	proc, err := os.StartProcess(self, append([]string{self, ExecProgramArg, nproc, path}, argv...), &via)
	errW.Close()
	if err != nil {
		return nil, err
	}
	msg, _ := io.ReadAll(io.LimitReader(errR, 4096))
	if len(msg) == 0 {
		return proc, nil
	}
	_, _ = proc.Wait()
	return nil, errors.New(string(msg))
}

// ExecProgram is runtimed-init's exec-program mode, with args
// [nproc, path, argv...]: it sets RLIMIT_NPROC to nproc, soft and hard,
// and execs path with argv and its own environment. It returns only if
// it could not, having told the agent why on execErrorFD.
func ExecProgram(args []string) error {
	report := os.NewFile(execErrorFD, "exec-error")
	err := execProgram(args)
	if report != nil {
		_, _ = report.WriteString(err.Error())
	}
	return err
}

func execProgram(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("%s: want nproc, path and argv, got %q", ExecProgramArg, args)
	}
	nproc, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil {
		return fmt.Errorf("%s: nproc %q: %w", ExecProgramArg, args[0], err)
	}
	if _, err := unix.FcntlInt(execErrorFD, unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return fmt.Errorf("%s: no error descriptor: %w", ExecProgramArg, err)
	}
	if err := unix.Setrlimit(unix.RLIMIT_NPROC, &unix.Rlimit{Cur: nproc, Max: nproc}); err != nil {
		return fmt.Errorf("set RLIMIT_NPROC to %d: %w", nproc, err)
	}
	if err := unix.Exec(args[1], args[2:], os.Environ()); err != nil {
		return &os.PathError{Op: "fork/exec", Path: args[1], Err: err}
	}
	return nil
}

// EmptyDirArg is runtimed-init's mode that empties directories as the
// sandbox user (see emptyDirs).
const EmptyDirArg = "empty-dir"

// emptyDirs removes everything the program left in dirs. What the
// program made there is the sandbox user's, in directories with the
// sticky bit, and the agent has no capability over others' files: the
// removal runs as that user, through runtimed-init's EmptyDirArg mode.
// Directories already empty cost a read each; one that does not exist is
// skipped.
func emptyDirs(dirs []string, uid, gid uint32) error {
	var dirty []string
	for _, dir := range dirs {
		f, err := os.Open(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		names, err := f.Readdirnames(1)
		f.Close()
		if len(names) > 0 || !errors.Is(err, io.EOF) {
			dirty = append(dirty, dir)
		}
	}
	if len(dirty) == 0 {
		return nil
	}
	if uint32(os.Getuid()) == uid && uint32(os.Getgid()) == gid {
		var errs []error
		for _, dir := range dirty {
			errs = append(errs, EmptyDir(dir))
		}
		return errors.Join(errs...)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, append([]string{EmptyDirArg}, dirty...)...)
	cmd.Dir = "/"
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// EmptyDir removes everything below dir, never following a link, making
// the directories it owns writable and searchable on the way down.
func EmptyDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if err := os.Chmod(p, 0o700); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := EmptyDir(p); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
