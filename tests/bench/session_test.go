//go:build integration

package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runtimed/runtimed/pkg/api"
	"github.com/runtimed/runtimed/tests/harness"
)

// SessionReport is the sessions cell: what a session costs to open, what
// a run in one costs beside a /v1/run of the same program, and what idle
// sessions hold.
type SessionReport struct {
	Date   string `json:"date"`
	Rounds int    `json:"rounds"`
	// CreateMS: POST /v1/sessions (Python, a new sandbox: no pool).
	CreateMS float64 `json:"create_p50_ms"`
	// SessionRunMS: print(1) in an open session; RunMS: the same through
	// /v1/run, alternately.
	SessionRunMS float64 `json:"session_run_p50_ms"`
	RunMS        float64 `json:"run_p50_ms"`
	// CellMS: x = x + 1 in a Python repl session.
	CellMS float64 `json:"repl_cell_p50_ms"`
	// Idle: this many sessions open at once, each answering a run, and
	// the host memory they hold (MemTotal - MemAvailable, after - before).
	Idle             int     `json:"idle_sessions"`
	IdleMemoryMiB    float64 `json:"idle_memory_mib"`
	IdlePerSessionMB float64 `json:"idle_memory_per_session_mib"`
}

// hostUsedMiB is the host's memory in use, MemTotal - MemAvailable.
func hostUsedMiB(b *testing.B) float64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var total, avail float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(fs[1], 64)
		switch fs[0] {
		case "MemTotal:":
			total = v
		case "MemAvailable:":
			avail = v
		}
	}
	return (total - avail) / 1024
}

// BenchmarkSessions measures the sessions cell. BENCH_SESSION_ROUNDS sets
// the rounds (default 15), BENCH_IDLE_SESSIONS the idle ones (default 50).
func BenchmarkSessions(b *testing.B) {
	rounds, idle := 15, 50
	if v, err := strconv.Atoi(os.Getenv("BENCH_SESSION_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	if v, err := strconv.Atoi(os.Getenv("BENCH_IDLE_SESSIONS")); err == nil && v > 0 {
		idle = v
	}
	in, _ := harness.StartInstance(b, "sessions-bench", fmt.Sprintf(`
[pool]
enabled = false
[sessions]
max_open = %d
max_per_client = %d
memory_bytes = 68719476736
`, idle+4, idle+4))
	c := api.NewClient(in.Socket, "")
	ctx := context.Background()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

	var create, inSession, run []float64
	for r := range rounds + 1 {
		start := time.Now()
		s, err := c.CreateSession(ctx, &api.SessionRequest{Language: "python"})
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if r > 0 {
			create = append(create, ms(d))
		}
		if err := c.DeleteSession(ctx, s.ID); err != nil {
			b.Fatal(err)
		}
	}
	s, err := c.CreateSession(ctx, &api.SessionRequest{Language: "python"})
	if err != nil {
		b.Fatal(err)
	}
	for r := range rounds + 1 {
		start := time.Now()
		resp, err := c.SessionRun(ctx, s.ID, &api.SessionRunRequest{Code: "print(1)"})
		d1 := time.Since(start)
		if err != nil || resp.Status != api.StatusOK || resp.Run.Stdout != "1\n" {
			b.Fatalf("session run: %v %+v", err, resp)
		}
		start = time.Now()
		resp, err = c.Run(ctx, &api.RunRequest{Language: "python", Files: harness.Files("main.py", "print(1)")})
		d2 := time.Since(start)
		if err != nil || resp.Status != api.StatusOK {
			b.Fatalf("run: %v %+v", err, resp)
		}
		if r > 0 {
			inSession = append(inSession, ms(d1))
			run = append(run, ms(d2))
		}
	}
	if err := c.DeleteSession(ctx, s.ID); err != nil {
		b.Fatal(err)
	}
	var cells []float64
	s, err = c.CreateSession(ctx, &api.SessionRequest{Language: "python", Mode: api.SessionModeRepl})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.SessionRun(ctx, s.ID, &api.SessionRunRequest{Code: "x = 0"}); err != nil {
		b.Fatal(err)
	}
	for r := range rounds + 1 {
		start := time.Now()
		resp, err := c.SessionRun(ctx, s.ID, &api.SessionRunRequest{Code: "x = x + 1\nx"})
		d := time.Since(start)
		if err != nil || resp.Status != api.StatusOK || resp.Result == nil || *resp.Result != strconv.Itoa(r+1) {
			b.Fatalf("cell: %v %+v", err, resp)
		}
		if r > 0 {
			cells = append(cells, ms(d))
		}
	}
	if err := c.DeleteSession(ctx, s.ID); err != nil {
		b.Fatal(err)
	}

	// Idle sessions, opened two at a time, each then running once.
	time.Sleep(2 * time.Second)
	before := hostUsedMiB(b)
	ids := make([]string, idle)
	var wg sync.WaitGroup
	errs := make(chan error, idle)
	sem := make(chan struct{}, 2)
	for i := range idle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s, err := c.CreateSession(ctx, &api.SessionRequest{Language: "python"})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = s.ID
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	for _, id := range ids {
		resp, err := c.SessionRun(ctx, id, &api.SessionRunRequest{Code: "x = 1"})
		if err != nil || resp.Status != api.StatusOK {
			b.Fatalf("idle session %s: %v %+v", id, err, resp)
		}
	}
	time.Sleep(2 * time.Second)
	after := hostUsedMiB(b)
	list, err := c.Sessions(ctx)
	if err != nil || len(list.Sessions) != idle {
		b.Fatalf("%d sessions open, want %d: %v", len(list.Sessions), idle, err)
	}
	for _, id := range ids {
		if err := c.DeleteSession(ctx, id); err != nil {
			b.Fatal(err)
		}
	}

	rep := SessionReport{
		Date: time.Now().UTC().Format(time.RFC3339), Rounds: rounds,
		CreateMS: median(create), SessionRunMS: median(inSession), RunMS: median(run), CellMS: median(cells),
		Idle: idle, IdleMemoryMiB: after - before, IdlePerSessionMB: (after - before) / float64(idle),
	}
	fmt.Printf("\nsessions cell (python, no pool), %d rounds, medians\n", rounds)
	fmt.Printf("  create a session: %6.0f ms\n", rep.CreateMS)
	fmt.Printf("  print(1) in a session: %6.0f ms; through /v1/run: %6.0f ms (%.2fx)\n", rep.SessionRunMS, rep.RunMS, rep.RunMS/rep.SessionRunMS)
	fmt.Printf("  a repl cell (x = x + 1): %6.1f ms\n", rep.CellMS)
	fmt.Printf("  %d idle sessions open at once, each answering: host memory +%.0f MiB, %.1f MiB a session\n", idle, rep.IdleMemoryMiB, rep.IdlePerSessionMB)
	writeReport(b, "sessions.json", rep)
}
