//go:build integration

package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

func TestTCPListenerNeedsAToken(t *testing.T) {
	ctx := context.Background()
	for _, token := range []string{"", "rtd_wrong"} {
		_, err := api.NewClient("http://"+env.TCP, token).Runtimes(ctx)
		var aerr *api.Error
		if !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusUnauthorized || aerr.Code != api.CodeUnauthorized {
			t.Fatalf("token %q: %v, want 401", token, err)
		}
		if strings.Contains(aerr.Message, "containerd") {
			t.Fatalf("a 401 told more than it should: %q", aerr.Message)
		}
	}
	// The probes need none (load balancers and Kubernetes carry none).
	if _, err := api.NewClient("http://"+env.TCP, "").Health(ctx); err != nil {
		t.Fatalf("/healthz without a token: %v", err)
	}
	// (503 here: this suite's "noimage" language has no image.)
	if status, body := harness.Do(t, http.DefaultClient, http.MethodGet, "http://"+env.TCP+"/readyz", "", "", ""); status == http.StatusUnauthorized || !strings.Contains(string(body), `"checks"`) {
		t.Fatalf("/readyz without a token: %d %s", status, body)
	}
	c := api.NewClient("http://"+env.TCP, harness.TestToken)
	resp, err := c.Run(ctx, &api.RunRequest{Language: "python", Files: files("t.py", "print('over tcp')")})
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, resp, api.StatusOK)
	if resp.Run.Stdout != "over tcp\n" {
		t.Fatalf("stdout %q", resp.Run.Stdout)
	}
}

func TestTokenConcurrencyOverTCP(t *testing.T) {
	// The test token may run two executions at once; a third is refused
	// while they run, not queued.
	c := api.NewClient("http://"+env.TCP, harness.TestToken)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			_, err := c.Run(ctx, &api.RunRequest{Language: "python", Files: files("s.py", "import time\ntime.sleep(3)")})
			done <- err
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		left := leftovers()
		if strings.Count(fmt.Sprint(left), "task ") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two executions did not start: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err := c.Run(context.Background(), &api.RunRequest{Language: "python", Files: files("x.py", "")})
	var aerr *api.Error
	if !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusTooManyRequests || aerr.Code != api.CodeTooManyConcurrent {
		t.Fatalf("third execution: %v, want 429 too_many_concurrent", err)
	}
	for i := 0; i < 2; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnixPeerIsLogged(t *testing.T) {
	const id = "peer-uid-test"
	req, _ := http.NewRequest(http.MethodGet, "http://runtimed/healthz", nil)
	req.Header.Set("X-Request-Id", id)
	resp, err := unixHTTP().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	f, err := os.Open(env.Daemon.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["request_id"] == id {
			if uid, ok := line["peer_uid"].(float64); ok && int(uid) == os.Getuid() {
				return
			}
			t.Fatalf("log line without the peer's uid: %s", sc.Text())
		}
	}
	t.Fatal("no log line for the request")
}

// TestSlowClientsHoldNothing: clients that trickle their headers or body
// are cut off by the read timeouts and never take an execution slot, so
// a normal request goes through meanwhile.
func TestSlowClientsHoldNothing(t *testing.T) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// More tricklers than execution slots (4) and queue places matter.
	for i := 0; i < 8; i++ {
		c, err := net.Dial("unix", env.Socket)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			fmt.Fprintf(c, "POST /v1/run HTTP/1.1\r\nHost: runtimed\r\nContent-Length: 100000\r\n\r\n{\"language\": ")
		} else {
			fmt.Fprintf(c, "POST /v1/run HTTP/1.1\r\nHost: run")
		}
	}
	start := time.Now()
	resp := runOK(t, &api.RunRequest{Language: "python", Files: files("ok.py", "print('through')")})
	expectStatus(t, resp, api.StatusOK)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a normal request took %s beside slow clients", took)
	}
	// Each slow connection is closed by runtimed within its timeout
	// (1 s for headers, 3 s for the whole request) plus slack.
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(6 * time.Second))
		data, err := io.ReadAll(c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("slow connection %d still open after its timeout", i)
		}
		_ = data // a 408 or nothing: either way, closed
	}
	if left := leftovers(); len(left) > 0 {
		t.Fatalf("slow clients created %v", left)
	}
}

func TestHeaderCap(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://runtimed/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("h", 64<<10))
	resp, err := unixHTTP().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB of headers: %d, want 431", resp.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	runOK(t, &api.RunRequest{Language: "python", Files: files("m.py", "print(1)")})
	runOK(t, &api.RunRequest{Language: "c", Files: files("m.c", "int main(void) { return 0; }\n")})
	get := func(c *http.Client, url string, token string) (int, string) {
		status, data := harness.Do(t, c, http.MethodGet, url, "", token, "")
		return status, string(data)
	}
	status, body := get(unixHTTP(), "http://runtimed/metrics", "")
	if status != 200 {
		t.Fatalf("unix /metrics: %d", status)
	}
	for _, want := range []string{
		`runtimed_executions_total{language="python",status="ok"}`,
		`runtimed_executions_total{language="c",status="ok"}`,
		`runtimed_phase_duration_seconds_count{phase="queue"}`,
		`runtimed_phase_duration_seconds_count{phase="sandbox_create"}`,
		`runtimed_phase_duration_seconds_count{phase="compile"}`,
		`runtimed_phase_duration_seconds_count{phase="run"}`,
		`runtimed_phase_duration_seconds_count{phase="cleanup"}`,
		`runtimed_executions_in_flight`, `runtimed_executions_queued`,
		`runtimed_sandbox_failures_total`, `go_goroutines`, `process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if status, _ := get(http.DefaultClient, "http://"+env.TCP+"/metrics", ""); status != http.StatusUnauthorized {
		t.Fatalf("TCP /metrics without a token: %d", status)
	}
	if status, body := get(http.DefaultClient, "http://"+env.TCP+"/metrics", harness.TestToken); status != 200 || !strings.Contains(body, "runtimed_executions_total") {
		t.Fatalf("TCP /metrics with the token: %d", status)
	}

	// metrics_listen: /metrics and the probes, without a token.
	addr := harness.FreeAddr(t)
	harness.StartInstance(t, "metrics", fmt.Sprintf("metrics_listen = %q", addr))
	if status, body := get(http.DefaultClient, "http://"+addr+"/metrics", ""); status != 200 || !strings.Contains(body, "runtimed_executions_in_flight") {
		t.Fatalf("metrics_listen /metrics: %d", status)
	}
	if status, body := get(http.DefaultClient, "http://"+addr+"/v1/runtimes", ""); status != http.StatusNotFound || !strings.Contains(body, `"not_found"`) {
		t.Fatalf("metrics_listen serves more than /metrics and the probes: %d %s", status, body)
	}
	if status, body := get(http.DefaultClient, "http://"+addr+"/healthz", ""); status != 200 || !strings.Contains(body, `"ok"`) {
		t.Fatalf("metrics_listen /healthz: %d %s", status, body)
	}
}

// TestTokenRevoke: runtimectl token ls lists a token with its session;
// token revoke refuses it at once, ends its session, and it stays
// refused after a restart.
func TestTokenRevoke(t *testing.T) {
	const secret = "rtd_revoke-test-token"
	sum := sha256.Sum256([]byte(secret))
	addr := harness.FreeAddr(t)
	in, err := harness.NewInstance("revoke", fmt.Sprintf("listen_tcp = %q\n\n[[tokens]]\nname = \"revokee\"\nsha256 = %q\n", addr, hex.EncodeToString(sum[:])))
	if err != nil {
		t.Fatal(err)
	}
	d, err := harness.Start(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	running := true
	t.Cleanup(func() {
		if running {
			d.Stop()
		}
	})
	ctx := context.Background()
	c := api.NewClient("http://"+addr, secret)
	if _, err := c.CreateSession(ctx, &api.SessionRequest{Language: "python"}); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runtimectlAt(t, in.Socket, "", "token", "ls")
	if code != 0 || !regexp.MustCompile(`(?m)^revokee +active +`+hex.EncodeToString(sum[:])[:12]+`….* 1 +\S+ ago$`).MatchString(out) {
		t.Fatalf("token ls: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = runtimectlAt(t, in.Socket, "", "token", "revoke", "revokee")
	if code != 0 || !strings.Contains(out, "revoked revokee (1 sessions ended)") {
		t.Fatalf("token revoke: exit %d\n%s%s", code, out, errOut)
	}
	var aerr *api.Error
	if _, err := c.Runtimes(ctx); !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusUnauthorized {
		t.Fatalf("the revoked token: %v", err)
	}
	// Its session ended: root on the unix socket sees it nowhere, and
	// nothing of its sandbox is left.
	root := api.NewClient(in.Socket, "")
	if list, err := root.Sessions(ctx); err != nil || len(list.Sessions) != 0 {
		t.Fatalf("sessions %+v %v", list, err)
	}
	out, _, _ = runtimectlAt(t, in.Socket, "", "token", "ls", "-o", "json")
	if !strings.Contains(out, `"revoked": true`) || !strings.Contains(out, `"sessions": 0`) {
		t.Fatalf("token ls after the revocation: %s", out)
	}

	// A restart keeps it revoked.
	d.Stop()
	running = false
	d2, err := harness.Start(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d2.Stop)
	if _, err := c.Runtimes(ctx); !errors.As(err, &aerr) || aerr.HTTPStatus != http.StatusUnauthorized {
		t.Fatalf("the revoked token after a restart: %v", err)
	}
	if log, _ := os.ReadFile(in.Log); !strings.Contains(string(log), "the token is revoked") {
		t.Errorf("the restart did not log the revoked token")
	}
}
