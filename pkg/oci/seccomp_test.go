package oci

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// verdict is what a profile does with one call, the way runsc reads it
// (runsc/specutils/seccomp): the first rule whose name and arguments
// match decides, else the default action. Conditions on one argument
// index are OR'ed when a rule has several on one index, AND'ed otherwise.
func verdict(t *testing.T, p *specs.LinuxSeccomp, name string, args ...uint64) specs.LinuxSeccompAction {
	t.Helper()
	var a [6]uint64
	copy(a[:], args)
	for _, r := range p.Syscalls {
		for _, n := range r.Names {
			if n == name && argsMatch(t, r.Args, a) {
				return r.Action
			}
		}
	}
	return p.DefaultAction
}

func argsMatch(t *testing.T, conds []specs.LinuxSeccompArg, a [6]uint64) bool {
	t.Helper()
	perIndex := map[uint]int{}
	for _, c := range conds {
		perIndex[c.Index]++
	}
	or := false
	for _, n := range perIndex {
		or = or || n > 1
	}
	for _, c := range conds {
		ok := condMatch(t, c, a)
		if or && ok {
			return true
		}
		if !or && !ok {
			return false
		}
	}
	return !or || len(conds) == 0
}

func condMatch(t *testing.T, c specs.LinuxSeccompArg, a [6]uint64) bool {
	t.Helper()
	v := a[c.Index]
	switch c.Op {
	case specs.OpEqualTo:
		return v == c.Value
	case specs.OpNotEqual:
		return v != c.Value
	case specs.OpMaskedEqual:
		return v&c.Value == c.ValueTwo
	default:
		t.Fatalf("operator %s not modelled", c.Op)
		return false
	}
}

func TestSeccompDenies(t *testing.T) {
	p := sandboxSpec(t, WithSeccomp()).Linux.Seccomp
	denied := []string{
		"unshare", "setns",
		"mount", "umount2", "pivot_root", "chroot",
		"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
		"kexec_load", "kexec_file_load", "bpf", "perf_event_open",
		"keyctl", "add_key", "request_key",
		"ptrace", "process_vm_readv", "process_vm_writev",
		"reboot", "swapon", "swapoff", "init_module", "finit_module", "delete_module",
		"acct", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime",
		"sethostname", "setdomainname", "syslog", "quotactl", "userfaultfd",
		"open_by_handle_at", "name_to_handle_at", "iopl", "ioperm",
		"shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl",
		"semget", "semop", "semtimedop", "semctl",
		"mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
	}
	for _, name := range denied {
		t.Run(name, func(t *testing.T) {
			// Whatever the arguments.
			for _, args := range [][]uint64{nil, {unix.CLONE_NEWUSER}, {unix.PTRACE_TRACEME}, {unix.PTRACE_ATTACH, 2}, {^uint64(0), ^uint64(0)}} {
				if got := verdict(t, p, name, args...); got != specs.ActErrno {
					t.Errorf("%s%v: %s, want %s", name, args, got, specs.ActErrno)
				}
			}
		})
	}
}

func TestSeccompClone(t *testing.T) {
	p := sandboxSpec(t, WithSeccomp()).Linux.Seccomp
	const (
		// glibc's pthread_create, fork and posix_spawn; Go's threads and
		// os/exec (with a pidfd, Go 1.23 and later).
		thread = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
			unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS |
			unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID
		fork    = unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | uint64(unix.SIGCHLD)
		spawn   = unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD)
		goExec  = unix.CLONE_VM | unix.CLONE_VFORK | unix.CLONE_PIDFD | uint64(unix.SIGCHLD)
		goOSThr = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
			unix.CLONE_SYSVSEM | unix.CLONE_THREAD
	)
	tests := []struct {
		name  string
		flags uint64
		want  specs.LinuxSeccompAction
	}{
		{"thread", thread, specs.ActAllow},
		{"fork", fork, specs.ActAllow},
		{"posix_spawn", spawn, specs.ActAllow},
		{"go exec", goExec, specs.ActAllow},
		{"go thread", goOSThr, specs.ActAllow},
		{"no flags", 0, specs.ActAllow},
		{"new user", unix.CLONE_NEWUSER | uint64(unix.SIGCHLD), specs.ActErrno},
		{"new mount", unix.CLONE_NEWNS | uint64(unix.SIGCHLD), specs.ActErrno},
		{"new pid", unix.CLONE_NEWPID, specs.ActErrno},
		{"new net", unix.CLONE_NEWNET, specs.ActErrno},
		{"new ipc", unix.CLONE_NEWIPC, specs.ActErrno},
		{"new uts", unix.CLONE_NEWUTS, specs.ActErrno},
		{"new cgroup", unix.CLONE_NEWCGROUP, specs.ActErrno},
		{"thread in a new user namespace", thread | unix.CLONE_NEWUSER, specs.ActErrno},
		{"every namespace", namespaceCloneFlags | fork, specs.ActErrno},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verdict(t, p, "clone", tt.flags); got != tt.want {
				t.Errorf("clone(%#x): %s, want %s", tt.flags, got, tt.want)
			}
		})
	}
	// clone3's flags are behind a pointer: it is answered ENOSYS (a trace
	// with no tracer), which makes glibc fall back to clone.
	for _, args := range [][]uint64{nil, {0x1000, 88}} {
		if got := verdict(t, p, "clone3", args...); got != specs.ActTrace {
			t.Errorf("clone3%v: %s, want %s", args, got, specs.ActTrace)
		}
	}
}

// TestSeccompAllows checks what runtimed-init (start the program as
// another user, signal and reap it) and ordinary programs need.
func TestSeccompAllows(t *testing.T) {
	p := sandboxSpec(t, WithSeccomp()).Linux.Seccomp
	if p.DefaultAction != specs.ActAllow {
		t.Fatalf("default action %s, want %s", p.DefaultAction, specs.ActAllow)
	}
	allowed := []string{
		// runtimed-init
		"setuid", "setgid", "setgroups", "setpgid", "kill", "wait4", "waitid", "execve",
		"pipe2", "read", "write", "close", "dup3", "prctl", "getrusage",
		"pidfd_open", "pidfd_send_signal", "rt_sigaction", "rt_sigprocmask",
		"sched_getaffinity", "futex", "mmap", "munmap", "exit_group",
		// ordinary programs
		"openat", "fstat", "newfstatat", "statx", "lseek", "mprotect", "brk",
		"fork", "vfork", "execveat", "exit", "set_robust_list", "rseq",
		"arch_prctl", "set_tid_address", "prlimit64", "getrandom",
		"socket", "socketpair", "connect", "epoll_create1", "epoll_wait",
		"eventfd2", "memfd_create", "madvise", "personality", "seccomp",
		"clock_gettime", "clock_nanosleep", "nanosleep", "sched_yield",
		"getppid", "gettid", "tgkill", "sigaltstack", "uname", "ioctl",
	}
	for _, name := range allowed {
		if got := verdict(t, p, name, 0, 0, 0); got != specs.ActAllow {
			t.Errorf("%s: %s, want %s", name, got, specs.ActAllow)
		}
	}
}

func TestSeccompProfileIsFresh(t *testing.T) {
	// One spec's profile is its own: changing it changes no other.
	a, b := SeccompProfile(), SeccompProfile()
	a.Syscalls[0].Names[0] = "changed"
	if b.Syscalls[0].Names[0] == "changed" || deniedSyscalls[0][0] == "changed" {
		t.Fatal("profiles share their rules")
	}
	// Every rule is one runsc knows how to read.
	for _, r := range b.Syscalls {
		switch r.Action {
		case specs.ActAllow, specs.ActErrno, specs.ActTrace:
		default:
			t.Errorf("%v: action %s", r.Names, r.Action)
		}
		if r.ErrnoRet != nil {
			t.Errorf("%v: errnoRet %d, which runsc ignores", r.Names, *r.ErrnoRet)
		}
		for _, c := range r.Args {
			if c.Index > 5 {
				t.Errorf("%v: argument %d", r.Names, c.Index)
			}
		}
	}
	if len(b.Architectures) != 0 {
		t.Errorf("architectures %v: runsc filters the native ABI only", b.Architectures)
	}
}
