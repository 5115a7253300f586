//go:build integration

package security

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/runtimed/runtimed/pkg/api"
)

const twoSeconds = 2000

func TestForkBomb(t *testing.T) {
	for name, fs := range map[string][]api.File{
		"python": py("bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"),
		"c":      c("bomb", "#include <unistd.h>\nint main(void) { for (;;) fork(); }\n"),
	} {
		t.Run(name, func(t *testing.T) {
			resp := hostile(t, &api.RunRequest{Language: name, Files: fs, Limits: api.Limits{WallTimeMS: twoSeconds}})
			// Held by the pids limit (and, for Python's large processes,
			// by the memory limit) until the wall time ends it.
			statusIn(t, resp, api.StatusTimeout, api.StatusMemoryLimit)
		})
	}
}

func TestMemoryBomb(t *testing.T) {
	for name, fs := range map[string][]api.File{
		"python": py("mem", "a = []\nwhile True:\n    a.append(bytearray(1 << 20))\n"),
		"c":      c("mem", "#include <stdlib.h>\n#include <string.h>\nint main(void) { for (;;) { char *p = malloc(1 << 20); if (p) memset(p, 1, 1 << 20); } }\n"),
	} {
		t.Run(name, func(t *testing.T) {
			resp := hostile(t, &api.RunRequest{Language: name, Files: fs})
			statusIn(t, resp, api.StatusMemoryLimit)
			if resp.Run.MemoryBytes > 128<<20 {
				t.Fatalf("peak memory %d over the 128 MiB limit", resp.Run.MemoryBytes)
			}
		})
	}
}

func TestCPUBurnOnManyThreads(t *testing.T) {
	// One CFS period per core, the CFS burst (50 ms at 0.5 CPU), and
	// gVisor's own work.
	const slackMS = 350
	for name, fs := range map[string][]api.File{
		"python": py("burn", "import multiprocessing as mp\ndef spin():\n    while True: pass\nfor _ in range(8):\n    mp.Process(target=spin).start()\nspin()\n"),
		"c": c("burn", "#include <pthread.h>\nstatic void *spin(void *a) { for (;;) ; return a; }\n"+
			"int main(void) { pthread_t t; for (int i = 0; i < 8; i++) pthread_create(&t, 0, spin, 0); spin(0); }\n"),
	} {
		t.Run(name, func(t *testing.T) {
			resp := hostile(t, &api.RunRequest{Language: name, Files: fs, Limits: api.Limits{WallTimeMS: twoSeconds, CPU: 0.5, MemoryBytes: 256 << 20}})
			statusIn(t, resp, api.StatusTimeout)
			budget := int64(float64(resp.Run.WallTimeMS)*0.5) + slackMS
			if resp.Run.CPUTimeMS > budget {
				t.Fatalf("cpu time %d ms over wall %d ms × 0.5 CPU + %d ms", resp.Run.CPUTimeMS, resp.Run.WallTimeMS, slackMS)
			}
			if resp.Run.CPUTimeMS < 200 {
				t.Fatalf("cpu time %d ms: the burn did not run", resp.Run.CPUTimeMS)
			}
		})
	}
}

func TestSleepForever(t *testing.T) {
	for name, fs := range map[string][]api.File{
		"python": py("sleep", "import time\ntime.sleep(10**6)\n"),
		"c":      c("sleep", "#include <unistd.h>\nint main(void) { pause(); }\n"),
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			resp := hostile(t, &api.RunRequest{Language: name, Files: fs, Limits: api.Limits{WallTimeMS: twoSeconds}})
			statusIn(t, resp, api.StatusTimeout)
			if resp.Run.WallTimeMS > twoSeconds+1000 || time.Since(start) > 20*time.Second {
				t.Fatalf("wall %d ms", resp.Run.WallTimeMS)
			}
		})
	}
}

func TestOutputFloodOnBothStreams(t *testing.T) {
	for name, fs := range map[string][]api.File{
		"python": py("flood", "import sys, threading\ndef err():\n    while True: sys.stderr.write('e' * 4096)\nthreading.Thread(target=err, daemon=True).start()\nwhile True: sys.stdout.write('o' * 4096)\n"),
		"c":      c("flood", "#include <unistd.h>\n#include <string.h>\nint main(void) { char b[4096]; memset(b, 'x', sizeof b); if (fork() == 0) for (;;) write(2, b, sizeof b); for (;;) write(1, b, sizeof b); }\n"),
	} {
		t.Run(name, func(t *testing.T) {
			resp := hostile(t, &api.RunRequest{Language: name, Files: fs})
			statusIn(t, resp, api.StatusOutputLimit)
			if len(resp.Run.Stdout) > 64<<10 || len(resp.Run.Stderr) > 64<<10 {
				t.Fatalf("kept %d + %d bytes, over the 64 KiB cap", len(resp.Run.Stdout), len(resp.Run.Stderr))
			}
			if !resp.Run.StdoutTruncated && !resp.Run.StderrTruncated {
				t.Fatal("nothing marked truncated")
			}
		})
	}
}

func TestFillingBoxAndTmp(t *testing.T) {
	code := `import errno
for d in ('/box', '/tmp'):
    n = 0
    try:
        with open(d + '/fill', 'wb') as f:
            while True:
                f.write(b'x' * (1 << 20)); f.flush(); n += 1
    except OSError as e:
        print(d, errno.errorcode[e.errno], n <= 16)
`
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("fill", code), Limits: api.Limits{MemoryBytes: 256 << 20, WallTimeMS: 10000}})
	statusIn(t, resp, api.StatusOK)
	// ENOSPC when the 16 MiB is full (or EFBIG from RLIMIT_FSIZE, the same size).
	for _, d := range []string{"/box", "/tmp"} {
		if !strings.Contains(resp.Run.Stdout, d+" ENOSPC True") && !strings.Contains(resp.Run.Stdout, d+" EFBIG True") {
			t.Fatalf("%s: stdout %q", d, resp.Run.Stdout)
		}
	}
}

func TestAMillionFiles(t *testing.T) {
	code := `import errno, os
n = 0
try:
    for n in range(1000000):
        open('f%d' % n, 'w').close()
    print('created a million')
except OSError as e:
    print(errno.errorcode[e.errno], n < 20000)
`
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("files", code), Limits: api.Limits{WallTimeMS: 30000}})
	// The box's inode cap stops it, or the wall time does.
	statusIn(t, resp, api.StatusOK, api.StatusTimeout)
	if resp.Status == api.StatusOK {
		stdoutIs(t, resp, "ENOSPC True\n")
	}
}

func TestNetworkIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("listener address %v", ln.Addr())
	}
	code := fmt.Sprintf(`import socket
def tcp(host, port):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, port)); return 'connected'
    except OSError as e:
        return 'failed'
def unix(path):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path); return 'connected'
    except OSError as e:
        return 'failed'
def dns():
    try:
        socket.getaddrinfo('deb.debian.org', 80); return 'resolved'
    except OSError:
        return 'failed'
def raw():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); return 'opened'
    except OSError:
        return 'failed'
print(tcp('127.0.0.1', %d), unix(%q), unix(%q), unix('/run/containerd/containerd.sock'), dns(), raw())
`, addr.Port, env.Containerd, env.Socket)
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("net", code)})
	statusIn(t, resp, api.StatusOK)
	stdoutIs(t, resp, "failed failed failed failed failed failed\n")
	// An accept that raced the response would show within this.
	select {
	case <-accepted:
		t.Fatal("the host listener accepted a connection from the sandbox")
	case <-time.After(200 * time.Millisecond):
	}
}

func TestHostFilesAreInvisible(t *testing.T) {
	marker := "/etc/runtimed-security-marker"
	if err := os.WriteFile(marker, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(marker)
	code := fmt.Sprintf(`import os
def read(p):
    try:
        return open(p).read()[:20]
    except OSError as e:
        return type(e).__name__
def kill_init():
    try:
        os.kill(1, 9)
        return 'killed'
    except OSError as e:
        return type(e).__name__
pids = [p for p in os.listdir('/proc') if p.isdigit()]
print(read(%q), read('/etc/shadow'), os.path.exists(%q), os.path.exists(%q), len(pids) < 5,
      open('/proc/1/cmdline').read().split('\0')[0], read('/proc/1/environ'), kill_init())
`, marker, env.Containerd, env.StateDir)
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("read", code)})
	statusIn(t, resp, api.StatusOK)
	// Process 1 is runtimed-init, the sandbox's agent: the program can
	// neither read it nor signal it.
	stdoutIs(t, resp, "FileNotFoundError PermissionError False False True /.runtimed/init PermissionError PermissionError\n")
}

func TestWritingOutsideBox(t *testing.T) {
	code := `import os
out = []
for p in ('/etc/passwd', '/usr/bin/python3', '/newfile', '/box/../etc/x', '/proc/sys/kernel/hostname'):
    try:
        open(p, 'a').write('x'); out.append('wrote')
    except OSError as e:
        out.append('refused')
try:
    os.mkdir('/newdir'); out.append('mkdir')
except OSError:
    out.append('refused')
open('/box/ok', 'w').write('x'); open('/tmp/ok', 'w').write('x')
print(' '.join(out))
`
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("write", code)})
	statusIn(t, resp, api.StatusOK)
	stdoutIs(t, resp, "refused refused refused refused refused refused\n")
}

func TestSetuidAndChmodTricks(t *testing.T) {
	code := `#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <sys/stat.h>
int main(void) {
	FILE *f = fopen("/box/x", "w"); fputs("#!/bin/sh\nid -u\n", f); fclose(f);
	int ch = chmod("/box/x", 04755);
	struct stat st; stat("/box/x", &st);
	int own = chown("/box/x", 0, 0); int owne = errno;
	int su = setuid(0); int sue = errno;
	int seu = seteuid(0);
	printf("chmod=%d chown=%d/%d setuid=%d/%d seteuid=%d uid=%d euid=%d\n",
		ch, own, owne, su, sue, seu, getuid(), geteuid());
	return 0;
}
`
	resp := hostile(t, &api.RunRequest{Language: "c", Files: c("setuid", code)})
	statusIn(t, resp, api.StatusOK)
	// Changing the mode of one's own file is allowed and harmless (no
	// setuid on /box, no new privileges); everything towards root fails
	// with EPERM (1).
	stdoutIs(t, resp, "chmod=0 chown=-1/1 setuid=-1/1 seteuid=-1 uid=65534 euid=65534\n")
}

func TestPtrace(t *testing.T) {
	// The daemon's own pid, as the host sees it: in the sandbox it does
	// not exist.
	code := fmt.Sprintf(`#include <stdio.h>
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
int main(void) {
	long host = ptrace(PTRACE_ATTACH, %d, 0, 0); int hoste = errno;
	pid_t child = fork();
	if (child == 0) { pause(); return 0; }
	long sib = ptrace(PTRACE_ATTACH, child, 0, 0);
	kill(child, SIGKILL);
	printf("host=%%ld/%%d sandbox=%%s\n", host, hoste, sib == 0 || errno == EPERM ? "contained" : "odd");
	return 0;
}
`, os.Getpid())
	resp := hostile(t, &api.RunRequest{Language: "c", Files: c("ptrace", code)})
	statusIn(t, resp, api.StatusOK)
	// EPERM: the seccomp profile refuses ptrace before gVisor looks for
	// the pid (TestSeccomp); without it gVisor answers ESRCH, the host
	// pid not existing in the sandbox.
	stdoutIs(t, resp, "host=-1/1 sandbox=contained\n")
}

func TestMount(t *testing.T) {
	code := `#include <stdio.h>
#include <errno.h>
#include <sys/mount.h>
int main(void) {
	int a = mount("tmpfs", "/tmp", "tmpfs", 0, ""); int ae = errno;
	int b = mount("/box", "/usr", 0, MS_BIND, 0); int be = errno;
	int c = umount2("/box", MNT_DETACH); int ce = errno;
	printf("%d/%d %d/%d %d/%d\n", a, ae, b, be, c, ce);
	return 0;
}
`
	resp := hostile(t, &api.RunRequest{Language: "c", Files: c("mount", code)})
	statusIn(t, resp, api.StatusOK)
	stdoutIs(t, resp, "-1/1 -1/1 -1/1\n")
}

func TestKillEverything(t *testing.T) {
	sentinel := exec.Command("sleep", "300")
	if err := sentinel.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sentinel.Process.Kill() }() // it may have ended
	code := `#include <stdio.h>
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>
int main(void) {
	if (fork() == 0) { kill(-1, SIGKILL); _exit(0); }
	wait(0);
	kill(-1, SIGKILL);
	printf("init survives\n");
	return 0;
}
`
	resp := hostile(t, &api.RunRequest{Language: "c", Files: c("killall", code)})
	// The program is its sandbox's init: kill -1 reaches every other
	// process of the sandbox and nothing outside it.
	statusIn(t, resp, api.StatusOK, api.StatusRuntimeError)
	if err := sentinel.Process.Signal(syscallZero); err != nil {
		t.Fatalf("a host process died: %v", err)
	}
}

func TestDevices(t *testing.T) {
	code := `import os
def probe(p):
    try:
        with open(p, 'rb') as f: f.read(1)
        return 'read'
    except OSError as e:
        return 'refused'
print(sorted(os.listdir('/dev'))[:0], ' '.join(probe(p) for p in ('/dev/mem', '/dev/kmem', '/dev/kmsg', '/dev/sda', '/dev/vda', '/dev/port')), probe('/dev/null'), probe('/dev/urandom'))
`
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("dev", code)})
	statusIn(t, resp, api.StatusOK)
	stdoutIs(t, resp, "[] refused refused refused refused refused refused read read\n")
}

func TestHugeArgvAndEnvInside(t *testing.T) {
	code := `import os, sys
if len(sys.argv) > 1:
    print('exec', len(sys.argv[1]), len(os.environ.get('BIG', '')))
    sys.exit(0)
big = 'x' * (1 << 20)
try:
    os.execve(sys.executable, [sys.executable, sys.argv[0], big], {'BIG': big})
except OSError as e:
    print('refused' if e.errno in (7, 36) else e.errno)  # E2BIG, or ENAMETOOLONG from gVisor
`
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("argv", code)})
	statusIn(t, resp, api.StatusOK)
	// A single argument over MAX_ARG_STRLEN (128 KiB) is refused by exec.
	stdoutIs(t, resp, "refused\n")
}

func TestStdinNotRead(t *testing.T) {
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("noread", "print('ignored stdin')"), Stdin: strings.Repeat("s", 1<<20)})
	statusIn(t, resp, api.StatusOK)
	stdoutIs(t, resp, "ignored stdin\n")
}

func TestClosingStdoutEarly(t *testing.T) {
	code := "import os, sys\nos.close(1)\ntry:\n    os.write(1, b'x')\nexcept OSError as e:\n    print('EBADF' if e.errno == 9 else e.errno, file=sys.stderr)\n"
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("close", code)})
	// Python fails to flush its closed stdout at exit; either way nothing hangs.
	statusIn(t, resp, api.StatusOK, api.StatusRuntimeError)
	if !strings.HasPrefix(resp.Run.Stderr, "EBADF\n") || resp.Run.Stdout != "" {
		t.Fatalf("stdout %q stderr %q", resp.Run.Stdout, resp.Run.Stderr)
	}
}

func TestNonUTF8Output(t *testing.T) {
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("bytes", "import sys\nsys.stdout.buffer.write(b'ok \\xff\\xfe \\xc3\\x28 end\\n')\n")})
	statusIn(t, resp, api.StatusOK)
	// Returned as valid UTF-8: each invalid byte becomes U+FFFD.
	if !utf8.ValidString(resp.Run.Stdout) || resp.Run.Stdout != "ok \uFFFD\uFFFD \uFFFD( end\n" {
		t.Fatalf("stdout %q", resp.Run.Stdout)
	}
}

func TestZombiesAndOrphans(t *testing.T) {
	code := `import os, time
for _ in range(10):
    if os.fork() == 0:
        if os.fork() == 0:
            time.sleep(1000)   # an orphan
        os._exit(0)            # its parent: a zombie until reaped
print('parent leaves')
`
	start := time.Now()
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("orphans", code), Limits: api.Limits{WallTimeMS: 10000}})
	statusIn(t, resp, api.StatusOK)
	stdoutIs(t, resp, "parent leaves\n")
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("the run waited %s for its orphans", took)
	}
}

func TestNothingLeftForTheNextRun(t *testing.T) {
	hostile(t, &api.RunRequest{Language: "python", Files: py("leave", "open('/box/left', 'w').write('x')\nopen('/tmp/left', 'w').write('x')\n")})
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("look", "import os\nprint(os.path.exists('/box/left'), os.path.exists('/tmp/left'))\n")})
	stdoutIs(t, resp, "False False\n")
}

// TestNothingOfTheBuildHost: the image says nothing of the machine it was
// built on: no host name, no name server.
func TestNothingOfTheBuildHost(t *testing.T) {
	build, _ := os.Hostname()
	code := `import os, socket
print(open('/etc/hostname').read().strip(), socket.gethostname())
print('nameserver' in open('/etc/resolv.conf').read())
print(open('/etc/hosts').read().split())
`
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("host", code)})
	statusIn(t, resp, api.StatusOK)
	stdoutIs(t, resp, "sandbox sandbox\nFalse\n['127.0.0.1', 'localhost', 'sandbox', '::1', 'localhost', 'ip6-localhost', 'ip6-loopback']\n")
	if build != "" && build != "sandbox" && strings.Contains(resp.Run.Stdout, build) {
		t.Fatalf("the sandbox sees the build host's name %q", build)
	}
}
