//go:build integration

package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// unitsFor copies the units into dir with ExecStart pointing at the
// built runtimed, as a package would install them.
func unitsFor(t *testing.T, dir string, edit func(string) string) []string {
	t.Helper()
	var out []string
	for _, u := range []string{"runtimed.service", "runtimed.socket"} {
		data, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "/usr/bin/runtimed", filepath.Join(env.Bin, "runtimed"))
		if edit != nil {
			text = edit(text)
		}
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestUnitsVerify(t *testing.T) {
	units := unitsFor(t, t.TempDir(), nil)
	out, err := exec.Command("systemd-analyze", append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The check can fail: a broken copy does.
	broken := unitsFor(t, t.TempDir(), func(s string) string { return strings.Replace(s, "Type=notify", "Type=notifyy", 1) })
	if out, err := exec.Command("systemd-analyze", append([]string{"verify"}, broken...)...).CombinedOutput(); err == nil && len(out) == 0 {
		t.Fatal("systemd-analyze accepted Type=notifyy")
	}
}

// TestNotify reads runtimed's sd_notify messages from a unixgram socket,
// as systemd would: READY=1 once it serves, STATUS=, STOPPING=1 on SIGTERM.
func TestNotify(t *testing.T) {
	sockPath := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	in, err := harness.NewInstance("notify", "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := harness.Start(in, []string{"NOTIFY_SOCKET=" + sockPath})
	if err != nil {
		t.Fatal(err)
	}
	read := func(want string) string {
		t.Helper()
		buf := make([]byte, 4096)
		deadline := time.Now().Add(30 * time.Second)
		for {
			_ = conn.SetReadDeadline(deadline)
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if msg := string(buf[:n]); strings.Contains(msg, want) {
				return msg
			}
		}
	}
	ready := read("READY=1")
	if !strings.Contains(ready, "STATUS=") {
		t.Errorf("READY=1 came without a STATUS=: %q", ready)
	}
	// It answered before READY=1 (Start waited for /healthz), and it answers now.
	if _, err := api.NewClient(in.Socket, "").Health(t.Context()); err != nil {
		t.Fatal(err)
	}
	status := read("STATUS=serving: ")
	if !strings.Contains(status, "running") || !strings.Contains(status, "queued") {
		t.Errorf("status %q", status)
	}
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	read("STOPPING=1")
	select {
	case err := <-d.Exited():
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("runtimed did not exit after SIGTERM")
	}
	if _, err := os.Stat(in.Socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// TestSocketActivation starts runtimed as systemd would with its .socket
// unit: systemd-socket-activate holds the socket and passes it on the
// first connection.
func TestSocketActivation(t *testing.T) {
	in, err := harness.NewInstance("activated", "")
	if err != nil {
		t.Fatal(err)
	}
	passed := filepath.Join(filepath.Dir(in.Socket), "passed.sock")
	d, err := harness.Spawn(in, nil, "systemd-socket-activate", "-l", passed,
		filepath.Join(env.Bin, "runtimed"), "--config", in.Config, "--log-format", "json")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(passed); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("systemd-socket-activate did not listen")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := api.NewClient(passed, "")
	var h *api.Health
	for deadline = time.Now().Add(30 * time.Second); ; {
		if h, err = c.Health(t.Context()); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer on the passed socket: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h.Status != "ok" {
		t.Fatalf("%+v", h)
	}
	resp, err := c.Run(t.Context(), &api.RunRequest{Language: "python", Files: files("a.py", "print('activated')")})
	if err != nil || resp.Run.Stdout != "activated\n" {
		t.Fatalf("%v %+v", err, resp)
	}
	// runtimed took the passed socket and did not open its own.
	if _, err := os.Stat(in.Socket); !os.IsNotExist(err) {
		t.Fatalf("runtimed opened %s beside the passed socket", in.Socket)
	}
}
