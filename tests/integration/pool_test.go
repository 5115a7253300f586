//go:build integration

package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/runtimed/runtimed/internal/config"
	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

const pythonImage = "runtimed.local/python:3.13"

// TestWarmPool runs a runtimed of its own with the default pools and
// shows that a request takes a ready sandbox, which is destroyed after
// and never used again; that the pool refills and grows when requests
// find it empty; and that a request with other limits gets a sandbox of
// its own.
func TestWarmPool(t *testing.T) {
	// The runtime binary logs each call, then is the default one.
	dir := t.TempDir()
	calls, wrapper := filepath.Join(dir, "runsc-calls"), filepath.Join(dir, "runsc-logged")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nexec %s \"$@\"\n", calls, config.Default().Runtime.Binary)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := harness.NewInstance("pool", fmt.Sprintf("[runtime]\nbinary = %q\n", wrapper))
	if err != nil {
		t.Fatal(err)
	}
	d, err := harness.Start(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		d.Stop()
		waitNoLeftovers(t, 10*time.Second)
	}()
	client := api.NewClient(in.Socket, "")
	ctx := context.Background()

	python := func() api.Pool {
		t.Helper()
		ps, err := client.Pools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps.Pools {
			if p.Image == pythonImage && p.MemoryBytes == 128<<20 {
				return p
			}
		}
		t.Fatalf("no pool for %s at the default limits: %+v", pythonImage, ps)
		return api.Pool{}
	}
	waitFor := func(what string, ok func(api.Pool) bool) api.Pool {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			p := python()
			if ok(p) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: pool %+v", what, p)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	hello := &api.RunRequest{Language: "python", Files: files("main.py", "print('hello')")}

	// A request takes a ready sandbox.
	before := waitFor("a ready sandbox", func(p api.Pool) bool { return p.Ready >= 1 && p.Creating == 0 })
	if before.Size != 4 || before.IdleBytes <= 0 {
		t.Fatalf("pool %+v: want size 4 and a measured idle size", before)
	}
	resp, err := client.Run(ctx, hello)
	if err != nil || resp.Status != api.StatusOK || resp.Run.Stdout != "hello\n" {
		t.Fatalf("run: %v %+v", err, resp)
	}
	after := python()
	var taken []string
	for _, id := range before.Sandboxes {
		if !contains(after.Sandboxes, id) {
			taken = append(taken, id)
		}
	}
	if len(taken) != 1 {
		t.Fatalf("sandboxes before %v, after %v: want exactly one taken", before.Sandboxes, after.Sandboxes)
	}
	if n := poolTakes(t, in.Socket, "hit"); n != 1 {
		t.Fatalf("pool hits %d, want 1", n)
	}
	// The sandbox that ran the request is destroyed, and the pool makes
	// a new one.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := env.Ctr.LoadContainer(namespaces.WithNamespace(ctx, harness.Namespace), taken[0])
		if errdefs.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the used sandbox %s still exists: %v", taken[0], err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// It ended by itself, its agent gone after its report: it was
	// deleted, never killed.
	log, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	var deleted bool
	for _, line := range strings.Split(string(log), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[len(f)-1] != taken[0] && f[len(f)-2] != taken[0] {
			continue
		}
		if slices.Contains(f, "kill") {
			t.Fatalf("the used sandbox was killed: runsc %s", line)
		}
		deleted = deleted || slices.Contains(f, "delete")
	}
	if !deleted {
		t.Fatalf("no runsc delete of the used sandbox %s in:\n%s", taken[0], log)
	}
	refilled := waitFor("refilled", func(p api.Pool) bool { return p.Ready >= 1 && p.Creating == 0 })
	if contains(refilled.Sandboxes, taken[0]) {
		t.Fatalf("the used sandbox %s is back in the pool", taken[0])
	}

	// A request with other limits does not take from the pool.
	hits := poolTakes(t, in.Socket, "hit")
	ready := python().Sandboxes
	big := &api.RunRequest{Language: "python", Files: files("main.py", "print('hello')"), Limits: api.Limits{MemoryBytes: 256 << 20}}
	if resp, err := client.Run(ctx, big); err != nil || resp.Status != api.StatusOK {
		t.Fatalf("run with other limits: %v %+v", err, resp)
	}
	if n := poolTakes(t, in.Socket, "hit"); n != hits {
		t.Fatalf("a request with other limits took from the pool (hits %d → %d)", hits, n)
	}
	for _, id := range ready {
		if !contains(python().Sandboxes, id) {
			t.Fatalf("pooled sandbox %s went to a request with other limits", id)
		}
	}

	// Requests that find the pool empty grow it.
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := client.Run(ctx, hello); err != nil || resp.Status != api.StatusOK {
				t.Errorf("concurrent run: %v %+v", err, resp)
			}
		}()
	}
	wg.Wait()
	if n := poolTakes(t, in.Socket, "miss"); n == 0 {
		t.Fatal("six requests at once found the pool never empty")
	}
	grown := waitFor("grown", func(p api.Pool) bool { return p.Target >= 2 && p.Ready >= 2 && p.Creating == 0 })
	if grown.Target > grown.Size {
		t.Fatalf("target %d over size %d", grown.Target, grown.Size)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

var takesLine = regexp.MustCompile(`runtimed_pool_takes_total\{image="runtimed.local/python:3.13",result="(hit|miss)"\} (\d+)`)

// poolTakes reads the python pool's hits or misses from /metrics.
func poolTakes(t *testing.T, socket, result string) int {
	t.Helper()
	resp, err := harness.UnixHTTPTo(socket).Get("http://runtimed/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, m := range takesLine.FindAllStringSubmatch(string(body), -1) {
		if m[1] == result {
			n, _ := strconv.Atoi(m[2])
			return n
		}
	}
	return 0
}
