//go:build integration

package security

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/runtimed/runtimed/pkg/api"
)

// TestStdoutHeldInFlight: a program sends its own stdout and stderr over a
// unix socket, together with the receiving socket itself, and exits. The
// message is never received: the socket holds itself, and with it the
// pipes' write ends, after every process of the sandbox is gone. The run
// still ends at the program's exit, with its verdict and its output, not
// at the wall time limit.
func TestStdoutHeldInFlight(t *testing.T) {
	for name, fs := range map[string][]api.File{
		"python": py("inflight", `import os, socket, sys
print('before', flush=True)
print('err', file=sys.stderr, flush=True)
a, b = socket.socketpair()
socket.send_fds(a, [b'x'], [b.fileno(), 1, 2])
os._exit(0)
`),
		"c": c("inflight", `#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
	int sv[2];
	write(1, "before\n", 7);
	write(2, "err\n", 4);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
	int fds[3] = {sv[1], 1, 2};
	char ctl[CMSG_SPACE(sizeof fds)];
	memset(ctl, 0, sizeof ctl);
	char x = 'x';
	struct iovec iov = {&x, 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof fds);
	memcpy(CMSG_DATA(h), fds, sizeof fds);
	if (sendmsg(sv[0], &m, 0) != 1) return 2;
	_exit(0);
}
`),
	} {
		t.Run(name, func(t *testing.T) {
			base := readHost(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			began := time.Now()
			resp, err := env.Client.Run(ctx, &api.RunRequest{Language: name, Files: fs, Limits: api.Limits{WallTimeMS: 10000}})
			took := time.Since(began)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if resp.Compile != nil {
				if resp.Compile.Status != api.StatusOK {
					t.Fatalf("compile: %s", resp.Compile.Stderr)
				}
				took -= time.Duration(resp.Compile.WallTimeMS) * time.Millisecond
			}
			statusIn(t, resp, api.StatusOK)
			stdoutIs(t, resp, "before\n")
			if resp.Run.Stderr != "err\n" {
				t.Fatalf("stderr %q", resp.Run.Stderr)
			}
			if resp.Run.WallTimeMS >= 2000 || took >= 2*time.Second {
				t.Fatalf("wall time %d ms, request %s (compile aside): the run waited for the held pipes", resp.Run.WallTimeMS, took)
			}
			t.Logf("wall time %d ms, request %s (compile aside)", resp.Run.WallTimeMS, took)
			hostIsFine(t, base)
		})
	}
}

// TestOutputCutOnACharacter: output past the cap is cut on a character
// boundary, so the JSON string holds no half character turned U+FFFD and
// stays within the cap.
func TestOutputCutOnACharacter(t *testing.T) {
	for _, tc := range []struct{ name, first, char string }{
		{"2-byte", "a", "é"},
		{"3-byte", "ab", "€"},
		{"4-byte", "abc", "😀"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const limit = 64 << 10
			want := tc.first + strings.Repeat(tc.char, 2*limit/len(tc.char))
			code := "import sys\nsys.stdout.buffer.write(('" + tc.first + "' + '" + tc.char + "' * " + strconv.Itoa(2*limit/len(tc.char)) + ").encode())\n"
			resp := hostile(t, &api.RunRequest{Language: "python", Files: py("chars", code)})
			statusIn(t, resp, api.StatusOutputLimit)
			out := resp.Run.Stdout
			if !resp.Run.StdoutTruncated || !utf8.ValidString(out) || len(out) > limit || len(out) <= limit-len(tc.char) ||
				!strings.HasPrefix(want, out) || strings.HasSuffix(out, "\uFFFD") {
				t.Fatalf("stdout of %d bytes, truncated %v, valid %v, ends with %q", len(out), resp.Run.StdoutTruncated, utf8.ValidString(out), out[max(0, len(out)-8):])
			}
		})
	}
}
