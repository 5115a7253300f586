//go:build integration

package security

import (
	"strconv"
	"strings"
	"testing"

	"github.com/runtimed/runtimed/pkg/api"
)

// sequence is one program for every test of a request: each test's stdin
// names what it does. "leave" leaves what it can behind: a daemonised
// process that writes into the box, /tmp and its inherited stdout later,
// files in /box and /tmp (some made hard to remove), the entry file
// changed, a stdin it never reads. "look" waits for the ghost's moment,
// then reports what it finds: files, processes of the sandbox user, its
// stdin, and whether the agent's descriptors are readable. "eat" and
// "idle" are for the memory peak.
const sequence = `import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
what = sys.stdin.readline().strip()
if what == "leave":
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            time.sleep(1.5)
            for p in ("/box/ghost", "/tmp/ghost"):
                try:
                    open(p, "w").write("ghost")
                except OSError:
                    pass
            print("GHOST", flush=True)
            os._exit(0)
        os._exit(0)
    open("/box/left", "w").write("left")
    open("/tmp/left", "w").write("left")
    os.makedirs("/tmp/d/e")
    open("/tmp/d/e/f", "w").write("f")
    os.chmod("/tmp/d", 0)
    os.makedirs("/box/sub")
    os.chmod("/box/sub", 0)
    open("/box/main.py", "a").write("\nprint('tampered')\n")
    os.chmod("/box", 0o500)
    open("/dev/shm/left", "w").write("left")
    mq = libc.mq_open(b"/left", os.O_CREAT | os.O_RDWR, 0o600, None)
    shm = libc.shmget(0, 4096, 0o1000 | 0o600)
    print("left", "mq", mq >= 0, "shm", shm >= 0, flush=True)
elif what == "look":
    time.sleep(2.5)
    rest = sys.stdin.read()
    procs = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) not in (1, os.getpid()):
            try:
                procs.append(p + ":" + open("/proc/%s/cmdline" % p).read().replace("\0", " "))
            except OSError:
                pass
    try:
        agent = str(os.listdir("/proc/1/fd"))
    except OSError as e:
        agent = "denied"
    print("box", sorted(os.listdir("/box")))
    print("main", os.path.getsize("/box/main.py"))
    print("tmp", sorted(os.listdir("/tmp")))
    print("shm", sorted(os.listdir("/dev/shm")))
    print("mq", "present" if libc.mq_open(b"/left", os.O_RDWR, 0, None) >= 0 else "gone")
    print("procs", procs)
    print("stdin", repr(rest))
    print("agent", agent)
elif what == "eat":
    b = bytearray(160 << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    print("ate")
elif what == "idle":
    print("idle")
`

// TestTestsDoNotSeeEachOther: a request's tests run one after the other in
// one sandbox; nothing of one survives into the next. The tests here are
// leave, look, eat, idle, look, as one request.
func TestTestsDoNotSeeEachOther(t *testing.T) {
	big := strings.Repeat("unread stdin\n", 20000) // over a pipe's 64 KiB
	resp := hostile(t, &api.RunRequest{Language: "python", Files: py("main", sequence),
		Limits: api.Limits{MemoryBytes: 384 << 20, WallTimeMS: 10000},
		Tests: []api.Test{
			{Stdin: "leave\n" + big},
			{Stdin: "look\nmine\n"},
			{Stdin: "eat\n"},
			{Stdin: "idle\n"},
			{Stdin: "look\n"},
		}})
	if len(resp.Tests) != 5 {
		t.Fatalf("%d test results", len(resp.Tests))
	}
	for i, r := range resp.Tests {
		if r.Status != api.StatusOK {
			t.Fatalf("test %d: %s %s; stdout %q stderr %q", i, r.Status, r.Message, trim(r.Stdout), trim(r.Stderr))
		}
	}
	// System V IPC and POSIX message queues, whose objects nothing in the
	// sandbox could list for removal, are refused.
	if got := resp.Tests[0].Stdout; got != "left mq False shm False\n" {
		t.Fatalf("test 0 stdout %q", got)
	}
	for _, i := range []int{1, 4} {
		out := resp.Tests[i].Stdout
		stdin := "''"
		if i == 1 {
			stdin = "'mine\\n'"
		}
		for _, want := range []string{
			"box ['main.py']\n",                          // nothing left in the box, its entry file restored
			"main " + strconv.Itoa(len(sequence)) + "\n", // the entry file as the request sent it
			"tmp []\n",              // /tmp emptied
			"shm []\n",              // /dev/shm emptied
			"mq gone\n",             // no message queue
			"procs []\n",            // no process of test 0 lives on
			"stdin " + stdin + "\n", // its own stdin only
			"agent denied\n",        // the agent's descriptors are not the program's
		} {
			if !strings.Contains(out, want) {
				t.Errorf("test %d: stdout %q lacks %q", i, out, want)
			}
		}
		if strings.Contains(out, "GHOST") {
			t.Errorf("test %d: test 0's background process wrote into its output: %q", i, out)
		}
	}
	// The memory peak is each test's own: the idle test after the one that
	// used 160 MiB reports what it used itself.
	eat, idle := resp.Tests[2].MemoryBytes, resp.Tests[3].MemoryBytes
	t.Logf("memory peaks: eat %d MiB, idle %d MiB", eat>>20, idle>>20)
	if eat < 160<<20 || idle > eat-100<<20 {
		t.Fatalf("memory peaks: eat %s, then idle %s: the idle test's is not its own",
			strconv.FormatInt(eat>>20, 10)+" MiB", strconv.FormatInt(idle>>20, 10)+" MiB")
	}
}
