//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// sessionReq sends one request to the suite's runtimed on its unix
// socket and returns the status and the answer.
func sessionReq(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return harness.Do(t, unixHTTP(), method, "http://runtimed"+path, ct, "", body)
}

// newSession creates a session and returns its description; it is
// deleted when the test ends.
func newSession(t *testing.T, body string) api.Session {
	t.Helper()
	status, data := sessionReq(t, http.MethodPost, "/v1/sessions", body)
	if status != http.StatusCreated {
		t.Fatalf("create session %s: %d %s", body, status, data)
	}
	var s api.Session
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.ID, "ses-") || s.ExpiresAt.IsZero() {
		t.Fatalf("session: %+v", s)
	}
	t.Cleanup(func() { _ = env.Client.DeleteSession(context.Background(), s.ID) })
	return s
}

// sessionRun runs req in session id and returns the answer.
func sessionRun(t *testing.T, id string, req api.SessionRunRequest) *api.RunResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := env.Client.SessionRun(ctx, id, &req)
	if err != nil {
		t.Fatalf("run in session: %v", err)
	}
	return resp
}

func expectAPIError(t *testing.T, status int, data []byte, wantStatus int, wantCode api.ErrorCode) api.Error {
	t.Helper()
	var e api.Error
	if err := decodeErrorBody(data, &e); err != nil || status != wantStatus || e.Code != wantCode {
		t.Fatalf("got %d %s, want %d %s", status, data, wantStatus, wantCode)
	}
	return e
}

// TestSessionKeepsFiles: a file written by one run is read by the next;
// a file uploaded is read by a run, a file a run writes is downloaded
// intact (10 MiB of random bytes both ways); the box lists and deletes.
func TestSessionKeepsFiles(t *testing.T) {
	s := newSession(t, `{"language":"python"}`)
	if s.Language != "python" || s.BoxBytes != 64<<20 {
		t.Fatalf("session defaults: %+v", s)
	}
	r1 := sessionRun(t, s.ID, api.SessionRunRequest{Code: "open('notes.txt', 'w').write('kept across runs')\nimport os\nos.makedirs('sub/dir', exist_ok=True)\nopen('sub/dir/x', 'w').write('x')"})
	expectStatus(t, r1, api.StatusOK)
	r2 := sessionRun(t, s.ID, api.SessionRunRequest{Code: "print(open('notes.txt').read())"})
	expectStatus(t, r2, api.StatusOK)
	if got := strings.TrimSpace(r2.Run.Stdout); got != "kept across runs" {
		t.Fatalf("second run read %q", got)
	}

	// Upload 10 MiB of random bytes; a run hashes them.
	blob := make([]byte, 10<<20)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	ctx := context.Background()
	if err := env.Client.PutSessionFile(ctx, s.ID, "in/blob.bin", bytes.NewReader(blob)); err != nil {
		t.Fatalf("put: %v", err)
	}
	r3 := sessionRun(t, s.ID, api.SessionRunRequest{Code: "import hashlib\nprint(hashlib.sha256(open('in/blob.bin','rb').read()).hexdigest())\nopen('out.bin','wb').write(bytes(range(256)) * 40960)"})
	expectStatus(t, r3, api.StatusOK)
	if got := strings.TrimSpace(r3.Run.Stdout); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("the run read another file: sha256 %s, want %x", got, sum)
	}
	body, err := env.Client.SessionFile(ctx, s.ID, "out.bin")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	var got bytes.Buffer
	if _, err := got.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	body.Close()
	if want := bytes.Repeat(func() []byte {
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}(), 40960); !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("downloaded %d bytes, not the %d the run wrote", got.Len(), len(want))
	}
	// And the upload comes back as it went.
	body, err = env.Client.SessionFile(ctx, s.ID, "in/blob.bin")
	if err != nil {
		t.Fatal(err)
	}
	got.Reset()
	if _, err := got.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	body.Close()
	if !bytes.Equal(got.Bytes(), blob) {
		t.Fatal("the uploaded file came back changed")
	}

	list, err := env.Client.ListSessionFiles(ctx, s.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]api.BoxEntry{}
	for _, e := range list.Entries {
		names[e.Name] = e
	}
	if names["notes.txt"].Size != 16 || !names["sub"].Dir || !names["in"].Dir || names["out.bin"].Mode != "-rw-r--r--" {
		t.Fatalf("listing: %+v", list)
	}
	if err := env.Client.DeleteSessionFile(ctx, s.ID, "sub"); err != nil {
		t.Fatal(err)
	}
	status, data := sessionReq(t, http.MethodGet, "/v1/sessions/"+s.ID+"/files/sub/dir/x", "")
	expectAPIError(t, status, data, http.StatusNotFound, api.CodeNotFound)
	r4 := sessionRun(t, s.ID, api.SessionRunRequest{Code: "import os\nprint(sorted(os.listdir('.')))"})
	if got := strings.TrimSpace(r4.Run.Stdout); got != "['in', 'main.py', 'notes.txt', 'out.bin']" {
		t.Fatalf("the box after the delete: %s", got)
	}

	info, err := env.Client.Session(ctx, s.ID)
	if err != nil || info.Runs != 4 {
		t.Fatalf("session after 4 runs: %+v %v", info, err)
	}
}

// TestSessionProcessesDoNotOutliveARun: what a run started is gone at
// the next one; its files stay.
func TestSessionProcessesDoNotOutliveARun(t *testing.T) {
	s := newSession(t, `{"language":"bash"}`)
	r1 := sessionRun(t, s.ID, api.SessionRunRequest{Code: "(sleep 3; echo late > late.txt) &\nnohup sh -c 'sleep 3; echo late2 > late2.txt' >/dev/null 2>&1 &\necho started > started.txt"})
	expectStatus(t, r1, api.StatusOK)
	time.Sleep(4 * time.Second)
	r2 := sessionRun(t, s.ID, api.SessionRunRequest{Code: "ls"})
	expectStatus(t, r2, api.StatusOK)
	out := r2.Run.Stdout
	if !strings.Contains(out, "started.txt") || strings.Contains(out, "late") {
		t.Fatalf("after the run, its background processes wrote on or its files went: %q", out)
	}
}

// TestSessionCompiled: a C session compiles and runs in its own sandbox;
// the build and the data stay for the next run.
func TestSessionCompiled(t *testing.T) {
	s := newSession(t, `{"language":"c"}`)
	r1 := sessionRun(t, s.ID, api.SessionRunRequest{Files: files("main.c", `#include <stdio.h>
int main(void) { FILE *f = fopen("count.txt", "w"); fprintf(f, "41\n"); fclose(f); puts("wrote"); return 0; }`)})
	expectStatus(t, r1, api.StatusOK)
	if r1.Compile == nil || r1.Compile.Status != api.StatusOK || strings.TrimSpace(r1.Run.Stdout) != "wrote" {
		t.Fatalf("first run: %+v", r1)
	}
	r2 := sessionRun(t, s.ID, api.SessionRunRequest{Code: `#include <stdio.h>
int main(void) { int n; FILE *f = fopen("count.txt", "r"); if (!f || fscanf(f, "%d", &n) != 1) return 3; printf("%d\n", n + 1); return 0; }`})
	expectStatus(t, r2, api.StatusOK)
	if strings.TrimSpace(r2.Run.Stdout) != "42" {
		t.Fatalf("second run: %+v", r2.Run)
	}
	r3 := sessionRun(t, s.ID, api.SessionRunRequest{Code: "int main(void) { return undeclared; }"})
	if r3.Status != api.StatusCompileError || r3.Run != nil {
		t.Fatalf("a compile error: %+v", r3)
	}
}

// TestSessionLimits: the session's memory limit holds for each run; a
// run killed for memory leaves the session usable with its files (in a
// fresh sandbox if the kill took the old one); the box holds box_bytes.
func TestSessionLimits(t *testing.T) {
	s := newSession(t, `{"language":"python","limits":{"memory_bytes":134217728},"box_bytes":1048576}`)
	if s.Limits.MemoryBytes != 128<<20 {
		t.Fatalf("limits: %+v", s.Limits)
	}
	expectStatus(t, sessionRun(t, s.ID, api.SessionRunRequest{Code: "open('keep.txt','w').write('still here')"}), api.StatusOK)
	hog := sessionRun(t, s.ID, api.SessionRunRequest{Code: "x = []\nwhile True:\n    x.append(bytearray(8 << 20))"})
	expectStatus(t, hog, api.StatusMemoryLimit)
	after := sessionRun(t, s.ID, api.SessionRunRequest{Code: "print(open('keep.txt').read())"})
	expectStatus(t, after, api.StatusOK)
	if strings.TrimSpace(after.Run.Stdout) != "still here" {
		t.Fatalf("after the memory kill: %+v", after.Run)
	}

	// A run asks for the session's memory: refused, nothing ran.
	status, data := sessionReq(t, http.MethodPost, "/v1/sessions/"+s.ID+"/run", `{"code":"print(1)","limits":{"memory_bytes":268435456}}`)
	expectAPIError(t, status, data, http.StatusBadRequest, api.CodeInvalidRequest)

	// The box: 1 MiB.
	big := strings.Repeat("x", 2<<20)
	status, data = harness.Do(t, unixHTTP(), http.MethodPut, "http://runtimed/v1/sessions/"+s.ID+"/files/big.txt", "application/octet-stream", "", big)
	expectAPIError(t, status, data, http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge)
	full := sessionRun(t, s.ID, api.SessionRunRequest{Code: "open('big.txt','w').write('x' * (2 << 20))"})
	if full.Status != api.StatusRuntimeError || !strings.Contains(full.Run.Stderr, "No space left") {
		t.Fatalf("writing past the box: %+v", full.Run)
	}
	// By image: the language version that runs it.
	byImage := newSession(t, `{"image":"runtimed.local/javascript:18"}`)
	if byImage.Language != "javascript" || !strings.HasPrefix(byImage.Version, "18.") {
		t.Fatalf("by image: %+v", byImage)
	}
	// This suite's "broken" language shares Python 3.11's image.
	status, data = sessionReq(t, http.MethodPost, "/v1/sessions", `{"image":"runtimed.local/python:3.11"}`)
	expectAPIError(t, status, data, http.StatusBadRequest, api.CodeInvalidRequest)
	status, data = sessionReq(t, http.MethodPost, "/v1/sessions", `{"image":"runtimed.local/nosuch:1"}`)
	expectAPIError(t, status, data, http.StatusBadRequest, api.CodeUnknownLanguage)
	// Over the maximum box size: refused.
	status, data = sessionReq(t, http.MethodPost, "/v1/sessions", `{"language":"python","box_bytes":1073741824}`)
	expectAPIError(t, status, data, http.StatusBadRequest, api.CodeLimitExceeded)
}

// TestSessionFilePaths: the file endpoints take names as requests do,
// and a link a run made never reaches a host file.
func TestSessionFilePaths(t *testing.T) {
	s := newSession(t, `{"language":"python"}`)
	base := "/v1/sessions/" + s.ID + "/files/"
	for _, bad := range []string{"..%2Fx", "a/../../x", "%00x", "a%00b", "%2Fetc%2Fpasswd", "a%5C..%5Cb"} {
		status, data := sessionReq(t, http.MethodPut, base+bad, "data")
		if status != http.StatusBadRequest && status != http.StatusNotFound && status/100 != 3 {
			t.Errorf("PUT %s: %d %s", bad, status, data)
		}
	}
	// Links made inside the session, to host paths.
	secret := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(secret, []byte("HOST-SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostDir := t.TempDir()
	r := sessionRun(t, s.ID, api.SessionRunRequest{Code: fmt.Sprintf(`import os
os.symlink(%q, 'abs')
os.symlink('../../../../../../../..' + %q, 'rel')
os.symlink('/', 'root')
os.symlink(%q, 'hostdir')
os.symlink('abs', 'chain')
print('linked')`, secret, secret, hostDir)})
	expectStatus(t, r, api.StatusOK)
	for _, name := range []string{"abs", "rel", "chain", "root/etc/passwd", "hostdir"} {
		status, data := sessionReq(t, http.MethodGet, base+name, "")
		if bytes.Contains(data, []byte("HOST-SECRET")) || bytes.Contains(data, []byte("root:x:0:0")) {
			t.Fatalf("GET %s gave a host file: %s", name, data)
		}
		if status != http.StatusNotFound {
			t.Errorf("GET %s: %d %s, want 404", name, status, data)
		}
	}
	// Writing through them touches nothing on the host.
	for _, name := range []string{"root/tmp/planted", "hostdir/planted"} {
		status, data := harness.Do(t, unixHTTP(), http.MethodPut, "http://runtimed"+base+name, "application/octet-stream", "", "planted")
		if status != http.StatusNotFound {
			t.Errorf("PUT %s: %d %s, want 404", name, status, data)
		}
	}
	if _, err := os.Stat(filepath.Join(hostDir, "planted")); err == nil {
		t.Fatal("a PUT through a link wrote on the host")
	}
	if _, err := os.Stat("/tmp/planted"); err == nil {
		t.Fatal("a PUT through a link wrote /tmp/planted on the host")
	}
	// A PUT over a link replaces the link; the target is untouched.
	status, data := harness.Do(t, unixHTTP(), http.MethodPut, "http://runtimed"+base+"abs", "application/octet-stream", "", "replaced")
	if status != http.StatusCreated {
		t.Fatalf("PUT over a link: %d %s", status, data)
	}
	if b, _ := os.ReadFile(secret); string(b) != "HOST-SECRET" {
		t.Fatalf("the link's host target changed: %q", b)
	}
	// The session is still usable, its links seen from inside.
	r = sessionRun(t, s.ID, api.SessionRunRequest{Code: "import os\nprint(open('abs').read(), os.path.islink('abs'), os.readlink('root'))"})
	if strings.TrimSpace(r.Run.Stdout) != "replaced False /" {
		t.Fatalf("after: %+v", r.Run)
	}
}

// TestSessionOwnership: another client gets 404 for a session's id, on
// TCP with the token and on the unix socket as another user.
func TestSessionOwnership(t *testing.T) {
	s := newSession(t, `{"language":"bash"}`)
	tcp := &http.Client{}
	for _, path := range []string{"/v1/sessions/" + s.ID, "/v1/sessions/" + s.ID + "/files/"} {
		status, data := harness.Do(t, tcp, http.MethodGet, "http://"+env.TCP+path, "", harness.TestToken, "")
		expectAPIError(t, status, data, http.StatusNotFound, api.CodeSessionNotFound)
	}
	status, data := harness.Do(t, tcp, http.MethodPost, "http://"+env.TCP+"/v1/sessions/"+s.ID+"/run", "application/json", harness.TestToken, `{"code":"echo hi"}`)
	expectAPIError(t, status, data, http.StatusNotFound, api.CodeSessionNotFound)
	status, data = harness.Do(t, tcp, http.MethodGet, "http://"+env.TCP+"/v1/sessions", "", harness.TestToken, "")
	if status != http.StatusOK || strings.Contains(string(data), s.ID) {
		t.Fatalf("the token's list: %d %s", status, data)
	}
	status, data = harness.Do(t, tcp, http.MethodDelete, "http://"+env.TCP+"/v1/sessions/"+s.ID, "", harness.TestToken, "")
	expectAPIError(t, status, data, http.StatusNotFound, api.CodeSessionNotFound)

	// Another user on the unix socket (allowed to reach it here by
	// CAP_DAC_OVERRIDE, as a member of the socket's group would be).
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is needed: %v", err)
	}
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=+dac_override,+dac_read_search", "--ambient-caps=+dac_override,+dac_read_search",
		"curl", "-sS", "--unix-socket", env.Socket, "http://runtimed/v1/sessions/"+s.ID).CombinedOutput()
	if err != nil || !strings.Contains(string(out), string(api.CodeSessionNotFound)) {
		t.Fatalf("another uid: %v %s", err, out)
	}
	// The owner still has it.
	if _, err := env.Client.Session(context.Background(), s.ID); err != nil {
		t.Fatalf("the owner: %v", err)
	}
}

// TestSessionStream: a run in a session streams as /v1/run does.
func TestSessionStream(t *testing.T) {
	s := newSession(t, `{"language":"python"}`)
	req, err := http.NewRequest(http.MethodPost, "http://runtimed/v1/sessions/"+s.ID+"/run",
		strings.NewReader(`{"code":"import time\nprint('one', flush=True)\ntime.sleep(2)\nprint('two')"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", api.ContentTypeNDJSON)
	start := time.Now()
	resp, err := unixHTTP().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var firstOut time.Duration
	var last api.Event
	for sc.Scan() {
		var ev api.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		if ev.Event == api.EventStdout && firstOut == 0 {
			firstOut = time.Since(start)
		}
		last = ev
	}
	total := time.Since(start)
	if last.Event != api.EventDone || last.Response == nil || strings.TrimSpace(last.Response.Run.Stdout) != "one\ntwo" {
		t.Fatalf("last event: %+v", last)
	}
	if firstOut == 0 || total-firstOut < time.Second {
		t.Fatalf("first output at %s of %s: not streamed", firstOut, total)
	}
}

// TestSessionExpiry: an idle session ends at its idle timeout, leaving
// nothing in containerd; its id then answers session_expired; a deleted
// one too.
func TestSessionExpiry(t *testing.T) {
	s := newSession(t, `{"language":"bash","idle_timeout_s":2}`)
	expectStatus(t, sessionRun(t, s.ID, api.SessionRunRequest{Code: "echo hi"}), api.StatusOK)
	time.Sleep(4 * time.Second)
	status, data := sessionReq(t, http.MethodGet, "/v1/sessions/"+s.ID, "")
	e := expectAPIError(t, status, data, http.StatusNotFound, api.CodeSessionExpired)
	if !strings.Contains(e.Message, "idle") {
		t.Fatalf("message: %s", e.Message)
	}
	waitNoLeftovers(t, 10*time.Second)
	status, data = sessionReq(t, http.MethodGet, "/metrics", "")
	if status != http.StatusOK || !strings.Contains(string(data), `runtimed_sessions_ended_total{language="bash",reason="idle"}`) ||
		!strings.Contains(string(data), `runtimed_sessions_created_total{language="bash"}`) {
		t.Fatalf("metrics: %d, no idle session ended", status)
	}

	d := newSession(t, `{"language":"bash"}`)
	status, data = sessionReq(t, http.MethodDelete, "/v1/sessions/"+d.ID, "")
	if status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, data)
	}
	status, data = sessionReq(t, http.MethodPost, "/v1/sessions/"+d.ID+"/run", `{"code":"echo hi"}`)
	expectAPIError(t, status, data, http.StatusNotFound, api.CodeSessionExpired)
	waitNoLeftovers(t, 10*time.Second)

	// A run cut by the lifetime is stopped and says so.
	l := newSession(t, `{"language":"bash","max_lifetime_s":2}`)
	status, data = sessionReq(t, http.MethodPost, "/v1/sessions/"+l.ID+"/run", `{"code":"sleep 8"}`)
	e = expectAPIError(t, status, data, http.StatusNotFound, api.CodeSessionExpired)
	if !strings.Contains(e.Message, "lifetime") {
		t.Fatalf("message: %s", e.Message)
	}
	waitNoLeftovers(t, 10*time.Second)
}

// TestSessionBounds: past max_open, max_per_client or the memory budget,
// creation is 503 with Retry-After; a daemon killed with sessions open
// leaves sandboxes the next start removes.
func TestSessionBounds(t *testing.T) {
	sum := sha256.Sum256([]byte(harness.TestToken))
	addr := harness.FreeAddr(t)
	in, err := harness.NewInstance("sessions", fmt.Sprintf(`
listen_tcp = %q
[pool]
enabled = false
[sessions]
max_open = 4
max_per_client = 3
memory_bytes = 629145600
[[tokens]]
name = "other"
sha256 = %q
`, addr, hex.EncodeToString(sum[:])))
	if err != nil {
		t.Fatal(err)
	}
	// Killed below, then started again (Stop after Kill would wait for
	// nothing).
	d, err := harness.Start(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			d.Stop()
		}
	})
	create := func(c *http.Client, url, token, body string) (int, api.Error) {
		t.Helper()
		status, data := harness.Do(t, c, http.MethodPost, url+"/v1/sessions", "application/json", token, body)
		var e api.Error
		if status != http.StatusCreated {
			if err := decodeErrorBody(data, &e); err != nil {
				t.Fatalf("%d %s", status, data)
			}
		}
		return status, e
	}
	unix := harness.UnixHTTPTo(in.Socket)
	// 129 MiB each against the budget: 128 MiB of memory, a 1 MiB box.
	const mib128 = `{"language":"bash","limits":{"memory_bytes":134217728},"box_bytes":1048576}`
	for i := 0; i < 2; i++ {
		if status, e := create(unix, "http://runtimed", "", mib128); status != http.StatusCreated {
			t.Fatalf("session %d: %d %+v", i, status, e)
		}
	}
	// The memory budget: 2 x 129 MiB open, 401 MiB more would pass 600.
	if status, e := create(unix, "http://runtimed", "", `{"language":"bash","limits":{"memory_bytes":419430400},"box_bytes":1048576}`); status != http.StatusServiceUnavailable || e.Code != api.CodeBusy || !strings.Contains(e.Message, "budget") {
		t.Fatalf("over the memory budget: %d %+v", status, e)
	}
	if status, e := create(unix, "http://runtimed", "", mib128); status != http.StatusCreated {
		t.Fatalf("third: %d %+v", status, e)
	}
	// Per client: 3.
	if status, e := create(unix, "http://runtimed", "", mib128); status != http.StatusServiceUnavailable || !strings.Contains(e.Message, "one client") {
		t.Fatalf("per client: %d %+v", status, e)
	}
	// Another client (the token) has its own three, but only one is left
	// of the four open at most.
	tcp := &http.Client{}
	if status, e := create(tcp, "http://"+addr, harness.TestToken, mib128); status != http.StatusCreated {
		t.Fatalf("the token's first: %d %+v", status, e)
	}
	if status, e := create(tcp, "http://"+addr, harness.TestToken, mib128); status != http.StatusServiceUnavailable || !strings.Contains(e.Message, "max_open") {
		t.Fatalf("past max_open: %d %+v", status, e)
	}
	sessions, err := api.NewClient(in.Socket, "").Sessions(context.Background())
	if err != nil || len(sessions.Sessions) != 3 {
		t.Fatalf("list: %+v %v", sessions, err)
	}

	// Killed with four sessions open: their sandboxes stay, the next
	// start removes them.
	d.Kill()
	killed = true
	left := leftovers()
	if len(left) == 0 {
		t.Fatal("the kill left nothing behind: the test proves nothing")
	}
	d2, err := harness.Start(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			d2.Stop()
		}
	})
	waitNoLeftovers(t, 10*time.Second)
	sessions, err = api.NewClient(in.Socket, "").Sessions(context.Background())
	if err != nil || len(sessions.Sessions) != 0 {
		t.Fatalf("after the restart: %+v %v", sessions, err)
	}
	// SIGTERM ends the open sessions itself: nothing is left.
	if status, e := create(unix, "http://runtimed", "", mib128); status != http.StatusCreated {
		t.Fatalf("after the restart: %d %+v", status, e)
	}
	if len(leftovers()) == 0 {
		t.Fatal("the session has no sandbox: the test proves nothing")
	}
	d2.Stop()
	stopped = true
	if left := leftovers(); len(left) > 0 {
		t.Fatalf("SIGTERM left: %v", left)
	}
}

// TestCLISession: runtimectl session create, run (files and code, the
// program's exit code), cp both ways (a directory too), ls and rm.
func TestCLISession(t *testing.T) {
	out, errOut, code := runtimectl(t, "", "session", "create", "--box", "8M", "--idle", "5m", "python")
	id := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(id, "ses-") {
		t.Fatalf("create: %d %q %q", code, out, errOut)
	}
	t.Cleanup(func() { _ = env.Client.DeleteSession(context.Background(), id) })

	local := writeFiles(t, "data/a.txt", "alpha\n", "data/sub/b.txt", "beta\n", "prog.py", "import sys\nprint(open('data/a.txt').read().strip(), open('data/sub/b.txt').read().strip())\nopen('result.txt','w').write('from the session')\nsys.exit(3)\n")
	if _, errOut, code := runtimectl(t, "", "session", "cp", filepath.Join(local, "data"), id+":/box/"); code != 0 {
		t.Fatalf("cp in: %d %s", code, errOut)
	}
	out, errOut, code = runtimectl(t, "", "session", "run", id, filepath.Join(local, "prog.py"))
	if code != 3 || strings.TrimSpace(out) != "alpha beta" {
		t.Fatalf("run: %d %q %q", code, out, errOut)
	}
	out, _, code = runtimectl(t, "", "session", "run", "--code", "print(open('result.txt').read())", id)
	if code != 0 || strings.TrimSpace(out) != "from the session" {
		t.Fatalf("run --code: %d %q", code, out)
	}
	back := t.TempDir()
	if _, errOut, code := runtimectl(t, "", "session", "cp", id+":result.txt", back); code != 0 {
		t.Fatalf("cp out: %d %s", code, errOut)
	}
	if _, errOut, code := runtimectl(t, "", "session", "cp", id+":data", filepath.Join(back, "copy")); code != 0 {
		t.Fatalf("cp out a directory: %d %s", code, errOut)
	}
	for name, want := range map[string]string{"result.txt": "from the session", "copy/a.txt": "alpha\n", "copy/sub/b.txt": "beta\n"} {
		if got, err := os.ReadFile(filepath.Join(back, name)); err != nil || string(got) != want {
			t.Errorf("%s: %q %v", name, got, err)
		}
	}
	out, _, code = runtimectl(t, "", "session", "ls")
	if code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "python") {
		t.Fatalf("ls: %d %s", code, out)
	}
	if out, errOut, code := runtimectl(t, "", "session", "rm", id); code != 0 || strings.TrimSpace(out) != id {
		t.Fatalf("rm: %d %q %q", code, out, errOut)
	}
	_, errOut, code = runtimectl(t, "", "session", "run", "--code", "print(1)", id)
	if code != 2 || !strings.Contains(errOut, "session_expired") {
		t.Fatalf("run after rm: %d %q", code, errOut)
	}
}

// TestSessionConnect: a run in a session over its WebSocket endpoint
// gets stdin as it is sent and finds the session's files; runtimectl
// session run -i does the same from a terminal's stdin.
func TestSessionConnect(t *testing.T) {
	s := newSession(t, `{"language":"python"}`)
	expectStatus(t, sessionRun(t, s.ID, api.SessionRunRequest{Code: "open('greeting','w').write('hello')"}), api.StatusOK)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prog := "g = open('greeting').read()\nfor _ in range(2):\n    print(g, input(), flush=True)\n"
	conn, err := env.Client.ConnectSession(ctx, s.ID, &api.RunRequest{Files: []api.File{{Content: prog}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out strings.Builder
	sent := 0
	for {
		ev, err := conn.Next(ctx)
		if err != nil {
			t.Fatalf("next: %v (output %q)", err, out.String())
		}
		if ev.Event == api.EventStage && ev.Stage == "run" || ev.Event == api.EventStdout && sent < 2 {
			out.WriteString(ev.Data)
			if err := conn.Stdin(ctx, fmt.Sprintf("line%d\n", sent+1)); err != nil {
				t.Fatal(err)
			}
			sent++
			continue
		}
		if ev.Event == api.EventStdout {
			out.WriteString(ev.Data)
		}
		if ev.Event == api.EventError {
			t.Fatalf("error event: %+v", ev.Error)
		}
		if ev.Event == api.EventDone {
			if ev.Response.Status != api.StatusOK || ev.Response.Run.Stdout != "hello line1\nhello line2\n" {
				t.Fatalf("done: %+v %+v", ev.Response, ev.Response.Run)
			}
			break
		}
	}
	// Another language than the session's is refused.
	bad, err := env.Client.ConnectSession(ctx, s.ID, &api.RunRequest{Language: "bash", Files: files("x.sh", "echo")})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := bad.Next(ctx)
	if err != nil || ev.Event != api.EventError || ev.Error.Code != api.CodeInvalidRequest {
		t.Fatalf("another language: %+v %v", ev, err)
	}
	bad.Close()

	out2, errOut, code := runtimectl(t, "a\nb\n", "session", "run", "-i", "--code", prog, s.ID)
	if code != 0 || out2 != "hello a\nhello b\n" {
		t.Fatalf("session run -i: %d %q %q", code, out2, errOut)
	}
}

// cell runs code in a repl session and returns the answer.
func cell(t *testing.T, id, code string, limits api.Limits) *api.RunResponse {
	t.Helper()
	return sessionRun(t, id, api.SessionRunRequest{Code: code, Limits: limits})
}

func resultOf(r *api.RunResponse) string {
	if r.Result == nil {
		return "<none>"
	}
	return *r.Result
}

// TestSessionRepl: in a repl session names live from cell to cell, the
// last expression's repr is the result, an exception keeps the state, a
// timeout loses it (the next cell says so), and the session's memory
// limit holds across cells.
func TestSessionRepl(t *testing.T) {
	s := newSession(t, `{"language":"python","mode":"repl","limits":{"memory_bytes":134217728}}`)
	if s.Mode != "repl" {
		t.Fatalf("mode: %+v", s)
	}
	if r := cell(t, s.ID, "x = 41", api.Limits{}); r.Status != api.StatusOK || r.Result != nil {
		t.Fatalf("x = 41: %+v %s", r, resultOf(r))
	}
	r := cell(t, s.ID, "print('side', 'effect')\nx + 1", api.Limits{})
	if r.Status != api.StatusOK || resultOf(r) != "42" || r.Run.Stdout != "side effect\n" {
		t.Fatalf("x + 1: %s %q %+v", resultOf(r), r.Run.Stdout, r.Run)
	}
	r = cell(t, s.ID, "def f():\n    return 1/0\nf()", api.Limits{})
	if r.Status != api.StatusRuntimeError || !strings.Contains(r.Run.Stderr, "ZeroDivisionError") || strings.Contains(r.Run.Stderr, "repl") {
		t.Fatalf("exception: %+v", r.Run)
	}
	if r := cell(t, s.ID, "x, f.__name__", api.Limits{}); resultOf(r) != "(41, 'f')" || r.Message != "" {
		t.Fatalf("state after the exception: %s %+v", resultOf(r), r)
	}
	// The box is the session's: a cell writes, GET reads.
	cell(t, s.ID, "open('from-cell.txt', 'w').write('cell output')", api.Limits{})
	body, err := env.Client.SessionFile(context.Background(), s.ID, "from-cell.txt")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	_, _ = got.ReadFrom(body)
	body.Close()
	if got.String() != "cell output" {
		t.Fatalf("file: %q", got.String())
	}
	// Memory: a list grown over cells, within the session's 128 MiB.
	cell(t, s.ID, "keep = []", api.Limits{})
	hit := false
	for i := 0; i < 8 && !hit; i++ {
		r := cell(t, s.ID, "keep.append(bytearray(32 << 20)); len(keep)", api.Limits{})
		switch r.Status {
		case api.StatusOK:
			if i >= 4 {
				t.Fatalf("cell %d holds %s x 32 MiB in a 128 MiB session", i, resultOf(r))
			}
		case api.StatusMemoryLimit:
			hit = true
		default:
			t.Fatalf("cell %d: %+v", i, r.Run)
		}
	}
	if !hit {
		t.Fatal("the session's memory limit did not stop the cells")
	}
	// A timeout ends the interpreter; the next cell says the state is lost.
	cell(t, s.ID, "y = 1", api.Limits{})
	r = cell(t, s.ID, "import time\ntime.sleep(10)", api.Limits{WallTimeMS: 1000})
	if r.Status != api.StatusTimeout || r.Run.WallTimeMS > 5000 {
		t.Fatalf("timeout: %+v", r.Run)
	}
	r = cell(t, s.ID, "'y' in globals()", api.Limits{})
	if r.Status != api.StatusOK || resultOf(r) != "False" || !strings.Contains(r.Message, "names defined before are gone") {
		t.Fatalf("after the timeout: %s %q", resultOf(r), r.Message)
	}
	if r := cell(t, s.ID, "z = 5\nz * 2", api.Limits{}); resultOf(r) != "10" || r.Message != "" {
		t.Fatalf("the new interpreter: %s %q", resultOf(r), r.Message)
	}
	// A repl session runs code, not files.
	status, data := sessionReq(t, http.MethodPost, "/v1/sessions/"+s.ID+"/run", `{"files":[{"name":"a.py","content":"print(1)"}]}`)
	expectAPIError(t, status, data, http.StatusBadRequest, api.CodeInvalidRequest)
	// Nor is repl a mode for every language.
	status, data = sessionReq(t, http.MethodPost, "/v1/sessions", `{"language":"c","mode":"repl"}`)
	expectAPIError(t, status, data, http.StatusBadRequest, api.CodeInvalidRequest)
}

// TestSessionReplJavaScript: the same for JavaScript.
func TestSessionReplJavaScript(t *testing.T) {
	s := newSession(t, `{"language":"javascript","mode":"repl"}`)
	if r := cell(t, s.ID, "let x = 41", api.Limits{}); r.Status != api.StatusOK {
		t.Fatalf("let: %+v", r.Run)
	}
	r := cell(t, s.ID, "console.log('side'); x + 1", api.Limits{})
	if r.Status != api.StatusOK || resultOf(r) != "42" || r.Run.Stdout != "side\n" {
		t.Fatalf("x + 1: %s %+v", resultOf(r), r.Run)
	}
	r = cell(t, s.ID, "null.f", api.Limits{})
	if r.Status != api.StatusRuntimeError || !strings.Contains(r.Run.Stderr, "TypeError") {
		t.Fatalf("exception: %+v", r.Run)
	}
	if r := cell(t, s.ID, "[x, typeof require('fs').readFileSync]", api.Limits{}); resultOf(r) != "[ 41, 'function' ]" {
		t.Fatalf("state after the exception: %s %+v", resultOf(r), r.Run)
	}
	r = cell(t, s.ID, "while (true) {}", api.Limits{WallTimeMS: 1000})
	if r.Status != api.StatusTimeout {
		t.Fatalf("timeout: %+v", r.Run)
	}
	r = cell(t, s.ID, "typeof x", api.Limits{})
	if resultOf(r) != "'undefined'" || !strings.Contains(r.Message, "names defined before are gone") {
		t.Fatalf("after the timeout: %s %q", resultOf(r), r.Message)
	}
}
