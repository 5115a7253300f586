//go:build integration

package integration

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// proxy is a real nginx with packaging/nginx/runtimed.conf in front of
// runtimed instances.
type proxy struct {
	url  string
	http *http.Client
}

// startNGINX runs nginx with the packaged site, its upstream lines
// replaced by the instances' sockets and its TLS placeholders by a fresh
// self-signed certificate.
func startNGINX(t *testing.T, instances []harness.Instance) *proxy {
	t.Helper()
	dir := t.TempDir()
	// NGINX's workers (www-data, group runtimed) must reach the sockets.
	for _, d := range []string{env.Dir, dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN=localhost", "-keyout", key, "-out", cert).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	site, err := os.ReadFile(filepath.Join(harness.RepoRoot(), "packaging", "nginx", "runtimed.conf"))
	if err != nil {
		t.Fatal(err)
	}
	addr := harness.FreeAddr(t)
	var servers []string
	for _, in := range instances {
		if err := os.Chmod(filepath.Dir(in.Socket), 0o711); err != nil {
			t.Fatal(err)
		}
		servers = append(servers, fmt.Sprintf("server unix:%s max_fails=1 fail_timeout=10s;", in.Socket))
	}
	text := string(site)
	for old, repl := range map[string]string{
		"server unix:/run/runtimed/runtimed.sock max_fails=1 fail_timeout=10s;": strings.Join(servers, "\n    "),
		"listen 443 ssl;":                           "listen " + addr + " ssl;",
		"listen [::]:443 ssl;":                      "",
		"/etc/ssl/certs/runtimed.example.com.pem":   cert,
		"/etc/ssl/private/runtimed.example.com.key": key,
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("the packaged site lacks %q", old)
		}
		text = strings.ReplaceAll(text, old, repl)
	}
	sitePath := filepath.Join(dir, "site.conf")
	if err := os.WriteFile(sitePath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`daemon off;
user www-data runtimed;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 512; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    include %[2]s;
}
`, dir, sitePath)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nginx", "-c", conf, "-p", dir)
	out, _ := os.Create(filepath.Join(dir, "nginx.out"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		_ = cmd.Wait()
		out.Close()
	})
	p := &proxy{url: "https://" + addr, http: &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		Timeout:   2 * time.Minute,
	}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := p.http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not answer: %v\n%s", err, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// run posts req through the proxy with request id id and returns the
// HTTP status and the decoded body.
func (p *proxy) run(id string, req *api.RunRequest) (int, *api.RunResponse, *api.ErrorBody, error) {
	body, _ := json.Marshal(req)
	hreq, _ := http.NewRequest(http.MethodPost, p.url+"/v1/run", strings.NewReader(string(body)))
	hreq.Header.Set("X-Request-Id", id)
	resp, err := p.http.Do(hreq)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	if got := resp.Header.Get("X-Request-Id"); got != id {
		return 0, nil, nil, fmt.Errorf("X-Request-Id %q came back as %q", id, got)
	}
	if resp.StatusCode == 200 {
		var rr api.RunResponse
		return 200, &rr, nil, json.Unmarshal(data, &rr)
	}
	var eb api.ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil || eb.Error.Code == "" {
		return resp.StatusCode, nil, nil, fmt.Errorf("status %d without a JSON error: %q", resp.StatusCode, data)
	}
	return resp.StatusCode, nil, &eb, nil
}

// servedBy counts, per instance, the executions its log shows for the
// request ids with prefix.
func servedBy(t *testing.T, instances []harness.Instance, prefix string) []int {
	t.Helper()
	counts := make([]int, len(instances))
	for i, in := range instances {
		f, err := os.Open(in.Log)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct {
				Msg       string `json:"msg"`
				RequestID string `json:"request_id"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "execution" && strings.HasPrefix(line.RequestID, prefix) {
				counts[i]++
			}
		}
		f.Close()
	}
	return counts
}

// TestNGINX runs code through a real nginx with the packaged site in
// front of three runtimed instances sharing one containerd: the requests
// spread across them, and the death of one loses no request.
func TestNGINX(t *testing.T) {
	var instances []harness.Instance
	var daemons []*harness.Daemon
	for i := 1; i <= 3; i++ {
		in, err := harness.NewInstance(fmt.Sprintf("ngx%d", i), "")
		if err != nil {
			t.Fatal(err)
		}
		d, err := harness.Start(in, nil)
		if err != nil {
			t.Fatal(err)
		}
		instances, daemons = append(instances, in), append(daemons, d)
	}
	defer func() {
		for _, d := range daemons {
			if d != nil {
				d.Stop()
			}
		}
	}()
	p := startNGINX(t, instances)

	t.Run("code runs through nginx, with its request id", func(t *testing.T) {
		status, resp, _, err := p.run("ngx-hello", &api.RunRequest{Language: "python", Files: files("a.py", "print('via nginx')")})
		if err != nil || status != 200 || resp.Run.Stdout != "via nginx\n" {
			t.Fatalf("%d %v %+v", status, err, resp)
		}
		if n := servedBy(t, instances, "ngx-hello"); n[0]+n[1]+n[2] != 1 {
			t.Fatalf("the request id reached the instances' logs %v times", n)
		}
	})

	t.Run("a WebSocket through nginx", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		wsURL := "wss" + strings.TrimPrefix(p.url, "https") + "/api/v2/connect"
		conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: p.http})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.CloseNow() }()
		c := &wsConn{t: t, conn: conn}
		c.send(pistonInitFor(t, "python", twoLines, nil))
		c.expect(`{"type":"runtime","language":"python","version":"3.13.5"}`, `{"type":"stage","stage":"run"}`)
		// A pause longer than none of nginx's timeouts should cut.
		time.Sleep(2 * time.Second)
		c.send(`{"type":"data","stream":"stdin","data":"one\n"}`)
		c.expect(`{"type":"data","stream":"stdout","data":"got one\n"}`)
		c.send(`{"type":"data","stream":"stdin","data":"two\n"}`)
		c.expect(`{"type":"data","stream":"stdout","data":"got two\n"}`, `{"type":"exit","stage":"run","code":0,"signal":null}`)
		c.closed(api.CloseJobCompleted, "Job Completed")

		// runtimed's own protocol, with its Go client.
		s, err := api.NewHTTPClient(p.url, "", p.http).Connect(ctx, &api.RunRequest{Language: "python", Files: files("a.py", "print(input().upper())")})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Stdin(ctx, "via nginx\n"); err != nil {
			t.Fatal(err)
		}
		for {
			ev, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Event == api.EventDone {
				if ev.Response.Run.Stdout != "VIA NGINX\n" {
					t.Fatalf("stdout %q", ev.Response.Run.Stdout)
				}
				break
			}
		}
	})

	// Concurrent executions of a second each, with the same pause between
	// batches as NGINX's per-address rate lets through.
	batch := func(prefix string, n int, seconds string, during func()) []error {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				status, resp, eb, err := p.run(fmt.Sprintf("%s-%d", prefix, i), sleepRun(seconds))
				switch {
				case err != nil:
					errs[i] = err
				case status != 200:
					errs[i] = fmt.Errorf("%d %s: %s", status, eb.Error.Code, eb.Error.Message)
				case resp.Status != api.StatusOK || resp.Run.Stdout != "slept\n":
					errs[i] = fmt.Errorf("%s %+v", resp.Status, resp.Run)
				}
			}(i)
		}
		if during != nil {
			during()
		}
		wg.Wait()
		return errs
	}

	t.Run("requests spread across the instances", func(t *testing.T) {
		for i, err := range batch("ngx-spread", 9, "1", nil) {
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}
		n := servedBy(t, instances, "ngx-spread")
		for i, c := range n {
			if c == 0 {
				t.Fatalf("instance %d served none of the requests: %v", i+1, n)
			}
		}
		t.Logf("served per instance: %v", n)
	})

	time.Sleep(2 * time.Second)
	t.Run("the death of an instance loses no request", func(t *testing.T) {
		errs := batch("ngx-death", 9, "2", func() {
			waitTasks(t, 6)
			daemons[1].Kill()
			daemons[1] = nil
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
		}
		// The dead instance's share was run again elsewhere.
		n := servedBy(t, instances, "ngx-death")
		if n[0]+n[2] != 9 {
			t.Fatalf("the living instances answered %v of 9", n)
		}
	})

	t.Run("with every instance gone, a clear error", func(t *testing.T) {
		for i, d := range daemons {
			if d != nil {
				d.Stop()
				daemons[i] = nil
			}
		}
		status, _, eb, err := p.run("ngx-none", &api.RunRequest{Language: "python", Files: files("a.py", "")})
		if err != nil || status != http.StatusServiceUnavailable || eb.Error.Code != api.CodeUnavailable {
			t.Fatalf("%d %v %+v", status, err, eb)
		}
	})

	// The killed instance's sandboxes are removed when it starts again.
	d, err := harness.Start(instances[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	daemons[1] = d
	waitNoLeftovers(t, 5*time.Second)
	if _, err := api.NewClient(instances[1].Socket, "").Health(context.Background()); errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
}
