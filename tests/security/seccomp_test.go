//go:build integration

package security

import (
	"slices"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/pkg/api"
)

// seccompProbe makes each call the sandbox's seccomp profile refuses and
// prints what it got, one "name=ERRNO" line each ("ok" if it worked);
// then what ordinary programs do: a thread, fork, posix_spawn (glibc
// tries clone3 first and falls back to clone on ENOSYS).
const seccompProbe = `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/ptrace.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void report(const char *name, long r) {
	printf("%s=%s\n", name, r == -1 ? strerrorname_np(errno) : "ok");
}

/* A call that may make a process: the child, if there is one, leaves. */
static void child(const char *name, long r) {
	int e = errno;
	if (r == 0) _exit(0);
	if (r > 0) waitpid(r, 0, 0);
	errno = e;
	report(name, r);
}

struct clone_args_v0 { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; };

static void *thread(void *arg) { return arg; }

int main(void) {
	report("unshare(CLONE_NEWUSER)", unshare(CLONE_NEWUSER));
	report("unshare(CLONE_NEWNS)", unshare(CLONE_NEWNS));
	child("clone(CLONE_NEWUSER)", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
	child("clone(CLONE_NEWNS)", syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0));
	child("clone(CLONE_NEWPID)", syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0));
	child("clone(CLONE_NEWNET)", syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
	struct clone_args_v0 ca = { .flags = CLONE_NEWUSER, .exit_signal = SIGCHLD };
	child("clone3(CLONE_NEWUSER)", syscall(SYS_clone3, &ca, sizeof ca));
	int ns = open("/proc/self/ns/net", O_RDONLY);
	report("setns", setns(ns < 0 ? 0 : ns, 0));

	report("mount", mount("tmpfs", "/tmp", "tmpfs", 0, ""));
	report("umount2", umount2("/tmp", MNT_DETACH));
	report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
	report("chroot", chroot("/tmp"));
	report("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
	report("fsmount", syscall(SYS_fsmount, -1, 0, 0));
	report("fspick", syscall(SYS_fspick, AT_FDCWD, "/tmp", 0));
	report("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/tmp", 0));
	report("move_mount", syscall(SYS_move_mount, -1, "", AT_FDCWD, "/tmp", 0));
	report("mount_setattr", syscall(SYS_mount_setattr, AT_FDCWD, "/tmp", 0, 0, 0));

	report("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
	report("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
	char attr[128] = {0};
	report("bpf", syscall(SYS_bpf, 0, attr, sizeof attr));
	uint32_t pattr[32] = {1 /* PERF_TYPE_SOFTWARE */, sizeof pattr};
	report("perf_event_open", syscall(SYS_perf_event_open, pattr, 0, -1, -1, 0));
	report("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0));
	report("add_key", syscall(SYS_add_key, "user", "k", "v", 1, -2 /* process */));
	report("request_key", syscall(SYS_request_key, "user", "k", 0, 0));

	report("ptrace(PTRACE_TRACEME)", ptrace(PTRACE_TRACEME, 0, 0, 0));
	pid_t kid = fork();
	if (kid == 0) { pause(); _exit(0); }
	report("ptrace(PTRACE_ATTACH)", ptrace(PTRACE_ATTACH, kid, 0, 0));
	report("ptrace(PTRACE_SEIZE)", ptrace(PTRACE_SEIZE, kid, 0, 0));
	char buf[8];
	struct iovec local = { buf, sizeof buf }, remote = { (void *)&attr, sizeof buf };
	report("process_vm_readv", process_vm_readv(kid, &local, 1, &remote, 1, 0));
	report("process_vm_writev", process_vm_writev(kid, &local, 1, &remote, 1, 0));
	kill(kid, SIGKILL);
	waitpid(kid, 0, 0);

	report("shmget", shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600));
	report("msgget", msgget(IPC_PRIVATE, IPC_CREAT | 0600));
	report("semget", semget(IPC_PRIVATE, 1, IPC_CREAT | 0600));
	report("mq_open", syscall(SYS_mq_open, "q", O_CREAT | O_RDWR, 0600, 0));

	report("reboot", syscall(SYS_reboot, 0xfee1dead, 672274793, 0 /* CAD_OFF */, 0));
	report("swapon", syscall(SYS_swapon, "/tmp/swap", 0));
	report("swapoff", syscall(SYS_swapoff, "/tmp/swap"));
	report("init_module", syscall(SYS_init_module, 0, 0, ""));
	report("finit_module", syscall(SYS_finit_module, -1, "", 0));
	report("delete_module", syscall(SYS_delete_module, "x", 0));
	report("acct", syscall(SYS_acct, 0));
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	report("clock_settime", syscall(SYS_clock_settime, CLOCK_REALTIME, &now));
	report("settimeofday", syscall(SYS_settimeofday, 0, 0));
	struct timex tx = {0};
	report("adjtimex", syscall(SYS_adjtimex, &tx));
	report("sethostname", sethostname("sandbox", 7));
	report("setdomainname", setdomainname("sandbox", 7));
	report("syslog", syscall(SYS_syslog, 10 /* SIZE_BUFFER */, 0, 0));
	report("quotactl", syscall(SYS_quotactl, 0x800001 /* Q_SYNC, USRQUOTA */, 0, 0, 0));
	report("userfaultfd", syscall(SYS_userfaultfd, 0));
	char fh[136] = {0};
	int mnt;
	((unsigned *)fh)[0] = 128;
	report("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/tmp", fh, &mnt, 0));
	report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, fh, 0));
	report("iopl", syscall(SYS_iopl, 0));
	report("ioperm", syscall(SYS_ioperm, 0, 0, 0));

	pthread_t t;
	int te = pthread_create(&t, 0, thread, 0);
	if (te == 0) pthread_join(t, 0);
	printf("pthread_create=%s\n", te ? strerrorname_np(te) : "ok");
	int status = -1;
	pid_t f = fork();
	if (f == 0) _exit(7);
	if (f > 0) waitpid(f, &status, 0);
	printf("fork=%s\n", f > 0 && WEXITSTATUS(status) == 7 ? "ok" : "failed");
	pid_t sp;
	char *argv[] = {"/bin/true", 0};
	int se = posix_spawn(&sp, "/bin/true", 0, 0, argv, environ);
	status = -1;
	if (se == 0) waitpid(sp, &status, 0);
	printf("posix_spawn=%s\n", se ? strerrorname_np(se) : status == 0 ? "ok" : "failed");
	return 0;
}
`

func TestSeccomp(t *testing.T) {
	resp := hostile(t, &api.RunRequest{Language: "c", Files: c("seccomp", seccompProbe)})
	statusIn(t, resp, api.StatusOK)
	got := map[string]string{}
	var order []string
	for _, line := range strings.Split(strings.TrimSpace(resp.Run.Stdout), "\n") {
		name, result, _ := strings.Cut(line, "=")
		got[name] = result
		order = append(order, name)
	}
	// The profile answers EPERM; clone3 ENOSYS, for glibc to fall back to
	// clone. mount_setattr is ENOSYS: the pinned gVisor does not have it
	// (the profile refuses it for one that does).
	want := map[string][]string{
		"clone3(CLONE_NEWUSER)": {"ENOSYS"},
		"mount_setattr":         {"EPERM", "ENOSYS"},
		"pthread_create":        {"ok"},
		"fork":                  {"ok"},
		"posix_spawn":           {"ok"},
	}
	for _, name := range order {
		if _, ok := want[name]; !ok {
			want[name] = []string{"EPERM"}
		}
	}
	if len(order) != 56 {
		t.Errorf("%d results, want 56:\n%s", len(order), resp.Run.Stdout)
	}
	for _, name := range order {
		if !slices.Contains(want[name], got[name]) {
			t.Errorf("%s: %s, want %s", name, got[name], strings.Join(want[name], " or "))
		}
	}
	if got["unshare(CLONE_NEWUSER)"] == "ok" {
		t.Error("no seccomp profile applied: does the runsc wrapper (runtime.binary) pass --oci-seccomp?")
	}
}

// TestSeccompPython: `unshare -Ur` (util-linux is in every image) and
// unshare(2) are refused; threads, subprocesses and fork work.
func TestSeccompPython(t *testing.T) {
	code := `import ctypes, errno, os, shutil, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
r = libc.unshare(0x10000000)  # CLONE_NEWUSER
print("unshare", r, errno.errorcode.get(ctypes.get_errno()))
if shutil.which("unshare"):
    p = subprocess.run(["unshare", "-Ur", "sh", "-c", "mount -t tmpfs tmpfs /tmp && echo mounted"],
                       capture_output=True, text=True)
    print("unshare -Ur", p.returncode, "Operation not permitted" in p.stderr, p.stdout.strip())
else:
    print("unshare -Ur", "absent")
seen = []
ts = [threading.Thread(target=seen.append, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("threads", sorted(seen))
print("subprocess", subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout.strip())
pid = os.fork()
if pid == 0:
    os._exit(3)
print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
`
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("seccomp", code)})
	statusIn(t, resp, api.StatusOK)
	out := resp.Run.Stdout
	if strings.Contains(out, "unshare -Ur absent") {
		t.Logf("no unshare(1) in the image: unshare(2) alone")
		out = strings.Replace(out, "unshare -Ur absent\n", "unshare -Ur 1 True \n", 1)
	}
	want := "unshare -1 EPERM\nunshare -Ur 1 True \nthreads [0, 1, 2, 3]\nsubprocess hi\nfork 3\n"
	if out != want {
		t.Fatalf("stdout %q, want %q (stderr %q)", resp.Run.Stdout, want, trim(resp.Run.Stderr))
	}
}
