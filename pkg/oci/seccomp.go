package oci

import (
	"context"

	"github.com/containerd/containerd/v2/core/containers"
	coci "github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// WithSeccomp gives every process of the sandbox — runtimed-init, the
// program and whatever the program starts — SeccompProfile. runsc applies
// it inside the sandbox, in its own kernel, when it runs with
// --oci-seccomp (packaging/runsc-runtimed); without the flag it ignores
// it.
func WithSeccomp() coci.SpecOpts {
	return func(_ context.Context, _ coci.Client, _ *containers.Container, s *coci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		s.Linux.Seccomp = SeccompProfile()
		return nil
	}
}

// namespaceCloneFlags are the clone flags that make new namespaces.
const namespaceCloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// deniedSyscalls are refused with EPERM whatever their arguments: the
// system calls of Docker's default profile that need a capability nobody
// in a sandbox has, and the ones that reach parts of gVisor's kernel no
// snippet needs. gVisor holds even if they were allowed; refusing them
// keeps that code out of a hostile program's reach. The pinned gVisor
// does not know mount_setattr, process_madvise and quotactl_fd (they are
// ENOSYS, and runsc logs that it skips them): they are here for the
// gVisor that implements them.
var deniedSyscalls = [][]string{
	// Namespaces: a new user namespace gives its creator every capability
	// inside it, and with them mounts and the rest. clone's namespace
	// flags are refused below; clone3's flags are in memory a filter
	// cannot read.
	{"unshare", "setns"},
	// Mounts, with the old API and the new one.
	{"mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount",
		"fspick", "move_mount", "open_tree", "mount_setattr"},
	// Another kernel, kernel programs and counters, the kernel's keyrings.
	{"kexec_load", "kexec_file_load", "bpf", "perf_event_open",
		"keyctl", "add_key", "request_key"},
	// Other processes' memory and state. With ptrace refused, no process
	// can become a tracer: clone3's answer below relies on it.
	{"ptrace", "process_vm_readv", "process_vm_writev", "process_madvise",
		"pidfd_getfd", "kcmp"},
	// The machine's administration: power, swap, modules, accounting,
	// clocks, names, the kernel log, quotas, file handles, I/O ports.
	{"reboot", "swapon", "swapoff", "init_module", "finit_module", "delete_module",
		"acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
		"sethostname", "setdomainname", "syslog", "quotactl", "quotactl_fd",
		"userfaultfd", "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm",
		"lookup_dcookie", "vhangup", "fanotify_init"},
	// System V IPC and POSIX message queues. Their objects belong to the
	// sandbox's IPC namespace, not to a program: they would outlive a
	// test into the next, and nothing in the sandbox can list them all
	// for removal (gVisor's SHM_INFO and MSG_INFO do not say the highest
	// index, and it mounts no /dev/mqueue). POSIX shared memory and
	// semaphores, files in /dev/shm that runtimes use, stay: the agent
	// empties /dev/shm between programs.
	{"shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl",
		"semget", "semop", "semtimedop", "semctl",
		"mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr"},
}

// SeccompProfile is the sandbox's seccomp profile: everything is allowed
// but deniedSyscalls, clone with a namespace flag, and clone3.
//
// It is not containerd's DefaultProfile (Docker's allowlist), which runsc
// cannot run as it is: runsc ignores errnoRet and answers every refused
// call EPERM, so that profile's clone3 rule breaks every thread and
// posix_spawn of glibc 2.34 and later (glibc falls back to clone on
// ENOSYS only); it allows ptrace; and runsc takes about ten times longer
// (some 30 ms of the sandbox's CPU) to compile it at every sandbox start.
// An allowlist buys little here: a call gVisor does not implement is
// ENOSYS anyway.
//
// Under gVisor a profile costs nothing measurable per system call (the
// Sentry caches each call's verdict) but about 2 ms of the sandbox's CPU
// per new process or thread, whatever the profile: the Sentry builds the
// new task's cache again, over every syscall number, at each clone.
//
// Rules match first to last (runsc's order); none here overlap. The
// architectures are left out: runsc filters the native ABI only, and
// gVisor runs no other.
func SeccompProfile() *specs.LinuxSeccomp {
	p := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	for _, names := range deniedSyscalls {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{
			Names: append([]string(nil), names...), Action: specs.ActErrno,
		})
	}
	// One rule per flag: two conditions on one argument would be OR'ed by
	// runsc (and runc), but the rules say it plainly.
	for flag := uint64(1); flag != 0; flag <<= 1 {
		if namespaceCloneFlags&flag == 0 {
			continue
		}
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{
			Names:  []string{"clone"},
			Action: specs.ActErrno,
			Args:   []specs.LinuxSeccompArg{{Index: 0, Value: flag, ValueTwo: flag, Op: specs.OpMaskedEqual}},
		})
	}
	// clone3 must fail with ENOSYS, for glibc to fall back to clone, whose
	// flags the rules above see. runsc cannot return ENOSYS as an errno,
	// but SCMP_ACT_TRACE without a tracer answers ENOSYS (in gVisor as in
	// Linux), and ptrace is refused to all, so there is never a tracer.
	p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActTrace})
	return p
}
