//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/runtimed/runtimed/pkg/api"
)

// wsConn is a WebSocket connection to the test daemon, for its tests.
type wsConn struct {
	t    *testing.T
	conn *websocket.Conn
}

// dialWS connects to path on the test daemon's socket.
func dialWS(t *testing.T, path string) *wsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://runtimed"+path, &websocket.DialOptions{HTTPClient: unixHTTP()})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &wsConn{t: t, conn: conn}
}

func (c *wsConn) send(msg string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next message, or "" with the close code and reason.
func (c *wsConn) next() (string, websocket.StatusCode, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, data, err := c.conn.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("read: %v", err)
		}
		return "", ce.Code, ce.Reason
	}
	return string(data), -1, ""
}

// expect reads the messages want, in order.
func (c *wsConn) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		if msg, code, reason := c.next(); msg != w {
			c.t.Fatalf("message %s (close %d %q), want %s", msg, code, reason, w)
		}
	}
}

// closed reads up to the close and checks its code; it returns the
// messages before it.
func (c *wsConn) closed(code websocket.StatusCode, reason string) []string {
	c.t.Helper()
	var msgs []string
	for {
		msg, got, why := c.next()
		if msg == "" {
			if got != code || reason != "" && why != reason {
				c.t.Fatalf("close %d %q, want %d %q; messages %q", got, why, code, reason, msgs)
			}
			return msgs
		}
		msgs = append(msgs, msg)
	}
}

// A Python program that answers two lines of its stdin, one at a time.
const twoLines = "import sys\nfor _ in range(2):\n    line = sys.stdin.readline()\n    print('got', line.strip(), flush=True)\n"

func pistonInitFor(t *testing.T, language, content string, extra map[string]any) string {
	t.Helper()
	m := map[string]any{"type": "init", "language": language, "version": "*", "files": []any{map[string]any{"content": content}}}
	for k, v := range extra {
		m[k] = v
	}
	return pistonJSON(t, m)
}

// TestPistonConnect is Piston's interactive protocol against the real
// daemon: the messages in their order, stdin, a signal, the compile stage
// and every close code; nothing is left behind.
func TestPistonConnect(t *testing.T) {
	t.Run("stdin and stdout", func(t *testing.T) {
		c := dialWS(t, "/api/v2/connect")
		c.send(pistonInitFor(t, "python", twoLines, nil))
		c.expect(`{"type":"runtime","language":"python","version":"3.13.5"}`, `{"type":"stage","stage":"run"}`)
		c.send(`{"type":"data","stream":"stdin","data":"first\n"}`)
		c.expect(`{"type":"data","stream":"stdout","data":"got first\n"}`)
		c.send(`{"type":"data","stream":"stdin","data":"second\n"}`)
		c.expect(`{"type":"data","stream":"stdout","data":"got second\n"}`,
			`{"type":"exit","stage":"run","code":0,"signal":null}`)
		c.closed(api.CloseJobCompleted, "Job Completed")
	})
	t.Run("SIGKILL", func(t *testing.T) {
		c := dialWS(t, "/api/v2/piston/connect")
		c.send(pistonInitFor(t, "python", "import time\nprint('sleeping', flush=True)\ntime.sleep(30)", nil))
		c.expect(`{"type":"runtime","language":"python","version":"3.13.5"}`, `{"type":"stage","stage":"run"}`,
			`{"type":"data","stream":"stdout","data":"sleeping\n"}`)
		start := time.Now()
		c.send(`{"type":"signal","signal":"SIGKILL"}`)
		c.expect(`{"type":"exit","stage":"run","code":null,"signal":"SIGKILL"}`)
		c.closed(api.CloseJobCompleted, "Job Completed")
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("the signal took %v", d)
		}
	})
	t.Run("compile stage", func(t *testing.T) {
		c := dialWS(t, "/api/v2/connect")
		src := "#include <stdio.h>\nint main(void){char b[64];if(fgets(b,sizeof b,stdin))printf(\"c:%s\",b);return 3;}\n"
		c.send(pistonInitFor(t, "c", src, nil))
		c.expect(`{"type":"runtime","language":"c","version":"14.2.0"}`, `{"type":"stage","stage":"compile"}`,
			`{"type":"exit","stage":"compile","code":0,"signal":null}`, `{"type":"stage","stage":"run"}`)
		c.send(`{"type":"data","stream":"stdin","data":"x\n"}`)
		c.expect(`{"type":"data","stream":"stdout","data":"c:x\n"}`, `{"type":"exit","stage":"run","code":3,"signal":null}`)
		c.closed(api.CloseJobCompleted, "Job Completed")
	})
	t.Run("a limit", func(t *testing.T) {
		c := dialWS(t, "/api/v2/connect")
		c.send(pistonInitFor(t, "python", "import sys\nsys.stdin.read()", map[string]any{"run_timeout": 1000}))
		c.expect(`{"type":"runtime","language":"python","version":"3.13.5"}`, `{"type":"stage","stage":"run"}`,
			`{"type":"exit","stage":"run","code":null,"signal":"SIGKILL"}`)
		c.closed(api.CloseJobCompleted, "Job Completed")
	})
	sleeper := pistonInitFor(t, "python", "import time\nprint('up', flush=True)\ntime.sleep(30)", nil)
	codes := []struct {
		name    string
		msgs    []string
		started bool // wait for the program's output before the last message
		code    websocket.StatusCode
		reason  string
	}{
		{"already initialised", []string{sleeper, sleeper}, true, 4000, "Already Initialized"},
		{"init timeout", nil, false, 4001, "Initialization Timeout"},
		{"notified error", []string{pistonInitFor(t, "cobol", "", nil)}, false, 4002, "Notified Error"},
		{"not initialised", []string{`{"type":"data","stream":"stdin","data":"x"}`}, false, 4003, "Not yet initialized"},
		{"only stdin", []string{sleeper, `{"type":"data","stream":"stderr","data":"x"}`}, true, 4004, "Can only write to stdin"},
		{"invalid signal", []string{sleeper, `{"type":"signal","signal":"SIGNOPE"}`}, true, 4005, "Invalid signal"},
	}
	for _, tc := range codes {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWS(t, "/api/v2/connect")
			start := time.Now()
			for i, m := range tc.msgs {
				if i == len(tc.msgs)-1 && tc.started {
					c.expect(`{"type":"runtime","language":"python","version":"3.13.5"}`, `{"type":"stage","stage":"run"}`,
						`{"type":"data","stream":"stdout","data":"up\n"}`)
				}
				c.send(m)
			}
			msgs := c.closed(tc.code, tc.reason)
			if d := time.Since(start); tc.code == 4001 && (d < 900*time.Millisecond || d > 5*time.Second) {
				t.Fatalf("closed after %v", d)
			}
			if tc.code == 4002 && (len(msgs) != 1 || msgs[0] != `{"type":"error","message":"cobol-* runtime is unknown"}`) {
				t.Fatalf("messages %q", msgs)
			}
		})
	}
	// The programs the closes cut off are stopped, their sandboxes gone.
	waitNoLeftovers(t, 30*time.Second)
}

func decodeEvent(t *testing.T, msg string) api.Event {
	t.Helper()
	var ev api.Event
	if err := json.Unmarshal([]byte(msg), &ev); err != nil {
		t.Fatalf("event %q: %v", msg, err)
	}
	return ev
}

// TestConnect is /v1/connect against the real daemon.
func TestConnect(t *testing.T) {
	run := func(t *testing.T, req api.RunRequest) string {
		t.Helper()
		b, err := json.Marshal(api.ConnectMessage{Type: api.ConnectRun, Request: &req})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Run("stdin and stdout", func(t *testing.T) {
		c := dialWS(t, "/v1/connect")
		c.send(run(t, api.RunRequest{Language: "python", Files: files("main.py", twoLines), Stdin: "first\n"}))
		c.expect(`{"event":"stage","stage":"run"}`, `{"event":"stdout","stage":"run","data":"got first\n"}`)
		c.send(`{"type":"stdin","data":"second\n"}`)
		c.send(`{"type":"stdin_close"}`)
		c.expect(`{"event":"stdout","stage":"run","data":"got second\n"}`)
		msgs := c.closed(websocket.StatusNormalClosure, "")
		if len(msgs) != 2 {
			t.Fatalf("messages %q", msgs)
		}
		res, done := decodeEvent(t, msgs[0]), decodeEvent(t, msgs[1])
		if res.Event != api.EventResult || res.Result.Status != api.StatusOK || res.Result.Stdout != "got first\ngot second\n" {
			t.Fatalf("result %s", msgs[0])
		}
		if done.Event != api.EventDone || done.Response.Status != api.StatusOK || done.Response.Run.Stdout != "got first\ngot second\n" {
			t.Fatalf("done %s", msgs[1])
		}
	})
	t.Run("stdin's end", func(t *testing.T) {
		c := dialWS(t, "/v1/connect")
		c.send(run(t, api.RunRequest{Language: "python", Files: files("main.py", "import sys\nprint(len(sys.stdin.read()))")}))
		c.send(`{"type":"stdin","data":"abc"}`)
		c.send(`{"type":"stdin_close"}`)
		c.expect(`{"event":"stage","stage":"run"}`, `{"event":"stdout","stage":"run","data":"3\n"}`)
		c.closed(websocket.StatusNormalClosure, "")
	})
	t.Run("SIGKILL", func(t *testing.T) {
		c := dialWS(t, "/v1/connect")
		c.send(run(t, api.RunRequest{Language: "python", Files: files("main.py", "import time\nprint('up', flush=True)\ntime.sleep(30)")}))
		c.expect(`{"event":"stage","stage":"run"}`, `{"event":"stdout","stage":"run","data":"up\n"}`)
		c.send(`{"type":"signal","signal":"SIGKILL"}`)
		msgs := c.closed(websocket.StatusNormalClosure, "")
		res := decodeEvent(t, msgs[0])
		if res.Event != api.EventResult || res.Result.Signal != "SIGKILL" || res.Result.Status != api.StatusRuntimeError {
			t.Fatalf("result %s", msgs[0])
		}
	})
	t.Run("compile stage", func(t *testing.T) {
		c := dialWS(t, "/v1/connect")
		c.send(run(t, api.RunRequest{Language: "c", Files: files("main.c", "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n")}))
		c.expect(`{"event":"stage","stage":"compile"}`)
		msgs := c.closed(websocket.StatusNormalClosure, "")
		kinds := []string{}
		for _, m := range msgs {
			ev := decodeEvent(t, m)
			kinds = append(kinds, string(ev.Event)+":"+ev.Stage)
		}
		if strings.Join(kinds, " ") != "result:compile stage:run stdout:run result:run done:" {
			t.Fatalf("events %v", kinds)
		}
	})
	t.Run("refused", func(t *testing.T) {
		c := dialWS(t, "/v1/connect")
		c.send(run(t, api.RunRequest{Language: "python", Files: files("/etc/passwd", "")}))
		msgs := c.closed(api.CloseError, string(api.CodeInvalidFile))
		if ev := decodeEvent(t, msgs[0]); len(msgs) != 1 || ev.Event != api.EventError || ev.Error.Field != "files[0].name" {
			t.Fatalf("messages %q", msgs)
		}
	})
	t.Run("close codes", func(t *testing.T) {
		c := dialWS(t, "/v1/connect")
		c.closed(api.CloseInitTimeout, "")
		c = dialWS(t, "/v1/connect")
		c.send(`{"type":"signal","signal":"SIGKILL"}`)
		c.closed(api.CloseNotInitialized, "")
		c = dialWS(t, "/v1/connect")
		c.send(run(t, api.RunRequest{Language: "python", Files: files("main.py", "import time\ntime.sleep(30)")}))
		c.send(`{"type":"signal","signal":"SIGWHAT"}`)
		c.closed(api.CloseInvalidSignal, "")
	})
	t.Run("client gone mid-run", func(t *testing.T) {
		c := dialWS(t, "/v1/connect")
		c.send(run(t, api.RunRequest{Language: "python", Files: files("main.py", "import time\nprint('up', flush=True)\ntime.sleep(30)")}))
		c.expect(`{"event":"stage","stage":"run"}`, `{"event":"stdout","stage":"run","data":"up\n"}`)
		_ = c.conn.CloseNow()
	})
	waitNoLeftovers(t, 30*time.Second)
}

// TestCLIRunInteractive: runtimectl run -i sends each line as it is
// written, and the program's answer comes back before the next one.
func TestCLIRunInteractive(t *testing.T) {
	dir := writeFiles(t, "main.py", twoLines+"print('bye', file=sys.stderr)\nsys.exit(7)\n")
	cmd := exec.Command(filepath.Join(env.Bin, "runtimectl"), "--socket", env.Socket, "run", "-i", filepath.Join(dir, "main.py"))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(outPipe)
	for _, line := range []string{"first", "second"} {
		if _, err := io.WriteString(in, line+"\n"); err != nil {
			t.Fatal(err)
		}
		got, err := out.ReadString('\n')
		if err != nil || got != "got "+line+"\n" {
			t.Fatalf("answer %q, %v; stderr %q", got, err, errb.String())
		}
	}
	_ = in.Close()
	rest, _ := io.ReadAll(out)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 || len(rest) != 0 || errb.String() != "bye\n" {
		t.Fatalf("exit %v, rest %q, stderr %q", err, rest, errb.String())
	}
}
